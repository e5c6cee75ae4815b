"""Quickstart checks after training: held-out verification, reparameterization (deploy form) with
its parity and weight files, ONNX export with ONNX Runtime parity, and the latency benchmark.

Every function uses the library (:mod:`facelivt.evaluation`, :mod:`facelivt.models`,
:mod:`facelivt.deploy`) and returns plain numbers for the report.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

import facelivt
from facelivt.data.transforms import to_tensor_batch
from facelivt.deploy.counting import count_macs, count_params
from facelivt.deploy.export import export_model
from facelivt.deploy.parity import Parity, compare_embeddings, pytorch_embeddings
from facelivt.deploy.sessions import eager_runner, ort_runner
from facelivt.deploy.timing import measure_interleaved
from facelivt.evaluation import embed_images, evaluate_embeddings, pair_distances, roc_curve
from facelivt.models import count_batchnorm, load_model, save_weights

from .data import VerificationPairs

VERIFICATION_FARS = (1e-3, 1e-2, 1e-1)  # a FAR is reported when there are at least 1/FAR mismatched pairs


# ------------------------------------------------------------------------------------ verification


@dataclass
class Verification:
    """Held-out verification of one model (SPEC section 6 protocol)."""

    metrics: dict[str, Any]  # evaluate_embeddings(): accuracy, accuracy_std, auc, eer, tar_at_far, ...
    fpr: np.ndarray
    tpr: np.ndarray
    embeddings: np.ndarray  # flip-sum embedding of every image of the pairs (not normalised)
    seconds: float


def verify(model: nn.Module, pairs: VerificationPairs, *, device: str = "cpu", batch_size: int = 64, progress: bool = True) -> Verification:
    """Embed every pair image with its flip, then the 10-fold protocol, AUC, EER, TAR@FAR and the ROC."""
    start = time.perf_counter()
    emb = embed_images(model, pairs.images, batch_size=batch_size, device=device, flip=True, progress=progress)
    rows = emb[pairs.pair_rows]
    metrics = evaluate_embeddings(rows, pairs.issame, fars=VERIFICATION_FARS)
    fpr, tpr, _ = roc_curve(-pair_distances(rows), pairs.issame)
    return Verification(metrics, fpr, tpr, emb, time.perf_counter() - start)


# ---------------------------------------------------------------------------------- deploy form


@dataclass
class DeployCheck:
    """Reparameterization of one model: sizes, parity with the train form, weight files."""

    key: str
    name: str
    params_train: int
    params_deploy: int
    macs_train: int
    macs_deploy: int
    batchnorm_train: int
    batchnorm_deploy: int
    parity: Parity  # deploy form vs train form (eval mode) on held-out crops
    reload_parity: Parity  # load_model(deploy weights file) vs the deploy form in memory
    weights: str
    deploy_weights: str
    weights_bytes: int
    deploy_weights_bytes: int
    seconds: float
    heldout_accuracy_deploy: Optional[float] = None  # verification accuracy recomputed with the deploy form
    heldout_max_abs_diff: Optional[float] = None

    def passed(self, min_cosine: float = 0.9999) -> bool:
        return self.batchnorm_deploy == 0 and self.parity.passed(min_cosine) and self.reload_parity.passed(min_cosine)

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["parity"], d["reload_parity"] = vars(self.parity), vars(self.reload_parity)
        d["passed"] = self.passed()
        return d


def reparameterize_and_check(
    key: str, name: str, model: nn.Module, images: np.ndarray, weights_dir: Path
) -> tuple[nn.Module, DeployCheck]:
    """Deploy form of ``model`` (:func:`facelivt.reparameterize_model`), its parity with the train form on
    ``images`` (uint8 crops), and both forms saved as safetensors (``<key>.safetensors``,
    ``<key>_deploy.safetensors``); the deploy file is loaded back with :func:`facelivt.models.load_model`
    and checked too."""
    start = time.perf_counter()
    model = model.eval()
    deploy = facelivt.reparameterize_model(model)
    x = to_tensor_batch(images)
    ref = pytorch_embeddings(model, x)
    out = pytorch_embeddings(deploy, x)
    weights_dir.mkdir(parents=True, exist_ok=True)
    w_train, w_deploy = weights_dir / f"{key}.safetensors", weights_dir / f"{key}_deploy.safetensors"
    save_weights(model, w_train)
    save_weights(deploy, w_deploy)
    reloaded = load_model(name, w_deploy, deploy=True)
    check = DeployCheck(
        key=key,
        name=name,
        params_train=count_params(model),
        params_deploy=count_params(deploy),
        macs_train=count_macs(model),
        macs_deploy=count_macs(deploy),
        batchnorm_train=count_batchnorm(model),
        batchnorm_deploy=count_batchnorm(deploy),
        parity=compare_embeddings(ref, out),
        reload_parity=compare_embeddings(out, pytorch_embeddings(reloaded, x)),
        weights=str(w_train),
        deploy_weights=str(w_deploy),
        weights_bytes=w_train.stat().st_size,
        deploy_weights_bytes=w_deploy.stat().st_size,
        seconds=0.0,
    )
    check.seconds = time.perf_counter() - start
    return deploy, check


def deploy_verification(deploy: nn.Module, pairs: VerificationPairs, reference: Verification, check: DeployCheck, *, batch_size: int = 64, progress: bool = True) -> None:
    """Recompute the held-out verification with the deploy form; store its accuracy and the largest
    embedding difference to the train form in ``check``."""
    again = verify(deploy, pairs, batch_size=batch_size, progress=progress)
    check.heldout_accuracy_deploy = float(again.metrics["accuracy"])
    check.heldout_max_abs_diff = float(np.abs(again.embeddings - reference.embeddings).max())


# ------------------------------------------------------------------------------------------ ONNX


@dataclass
class OnnxCheck:
    path: str
    size_bytes: int
    parity: Optional[Parity]
    seconds: float
    error: Optional[str] = None

    def passed(self) -> bool:
        return self.error is None and self.parity is not None and self.parity.passed()

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "size_bytes": self.size_bytes,
            "parity": vars(self.parity) if self.parity is not None else None,
            "seconds": self.seconds,
            "error": self.error,
            "passed": self.passed(),
        }


def export_and_check(deploy: nn.Module, path: Path, images: np.ndarray, threads: int | None = None) -> OnnxCheck:
    """Export the deploy form to ONNX (dynamic batch) with :func:`facelivt.deploy.export.export_model`
    and compare ONNX Runtime's embeddings with PyTorch's on ``images`` (whole batch and one by one).
    A failed export or parity is recorded, not raised."""
    start = time.perf_counter()
    try:
        report = export_model(deploy, "onnx", path, images=to_tensor_batch(images), threads=threads)
    except (RuntimeError, ValueError, ImportError) as exc:
        size = path.stat().st_size if path.is_file() else 0
        return OnnxCheck(str(path), size, None, time.perf_counter() - start, f"{type(exc).__name__}: {exc}")
    return OnnxCheck(report.path, report.size_bytes, report.parity, time.perf_counter() - start)


# ------------------------------------------------------------------------------------- benchmark


@dataclass
class BenchRow:
    label: str
    model: str
    form: str  # train | deploy
    runtime: str  # PyTorch eager | ONNX Runtime
    params_m: float
    macs_m: float
    latency_ms: dict[str, float] = field(default_factory=dict)  # batch size (as text, JSON keys) -> median ms
    p10_ms: dict[str, float] = field(default_factory=dict)
    p90_ms: dict[str, float] = field(default_factory=dict)


@dataclass
class BenchSettings:
    batch_sizes: tuple[int, ...] = (1,)
    warmup: int = 5
    runs: int = 30
    rounds: int = 3
    threads: int = 2


def benchmark(
    candidates: dict[str, tuple[str, str, str, nn.Module | Path, nn.Module]],
    settings: BenchSettings,
    progress: bool = True,
) -> list[BenchRow]:
    """Median latency of every candidate, measured interleaved (round by round) so that machine load
    changes hit all alike (:func:`facelivt.deploy.timing.measure_interleaved`).

    ``candidates``: ``label -> (model name, form, runtime, module or ONNX path, module to count)``.
    """
    rows = {
        label: BenchRow(label, name, form, runtime, count_params(counted) / 1e6, count_macs(counted) / 1e6)
        for label, (name, form, runtime, _, counted) in candidates.items()
    }
    torch.set_num_threads(settings.threads)
    for b in tqdm(settings.batch_sizes, desc="benchmark", unit="batch size", disable=not progress):
        runners = {}
        for label, (_, _, runtime, obj, _) in candidates.items():
            if isinstance(obj, Path):
                runners[label] = ort_runner(obj, b, settings.threads)
            else:
                runners[label] = eager_runner(obj, b, "cpu")
        runs = settings.runs if b == 1 else max(3, settings.runs // 4)
        stats = measure_interleaved(runners, settings.warmup if b == 1 else 1, runs, settings.rounds)
        for label, s in stats.items():
            rows[label].latency_ms[str(b)] = s.median_ms
            rows[label].p10_ms[str(b)] = s.p10_ms
            rows[label].p90_ms[str(b)] = s.p90_ms
    return list(rows.values())
