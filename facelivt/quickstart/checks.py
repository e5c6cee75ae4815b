"""Quickstart checks after training, each a composition of the library: held-out verification
(:meth:`facelivt.training.HeldoutPairs.verify`), the deploy form with its parity, also of the exported weights (:mod:`facelivt.models`,
:mod:`facelivt.deploy.parity`), the ONNX export (:func:`facelivt.deploy.export.export_model`) and the
interleaved latency measurement (:func:`facelivt.deploy.benchmark.measure_at_batch`)."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
from torch import nn
from tqdm import tqdm

from facelivt.data.transforms import to_tensor_batch
from facelivt.deploy.benchmark import measure_at_batch
from facelivt.deploy.counting import count_macs, count_params
from facelivt.deploy.export import export_model
from facelivt.deploy.parity import Parity, compare_embeddings, pytorch_embeddings
from facelivt.deploy.sessions import eager_runner, ort_runner
from facelivt.models import count_batchnorm, load_model, reparameterize_model
from facelivt.training import HeldoutPairs

VERIFICATION_FARS = (1e-3, 1e-2, 1e-1)  # a FAR is reported when there are at least 1/FAR mismatched pairs


@dataclass
class Verification:
    """Held-out verification of one model (10-fold protocol): ``results.json``'s ``verification.<model>``."""

    metrics: dict[str, Any]  # evaluate_embeddings(): accuracy, accuracy_std, auc, eer, tar_at_far, ...
    seconds: float
    fpr: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))
    tpr: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))
    embeddings: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))  # flip-sum, not normalised

    accuracy = property(lambda self: self.metrics["accuracy"])
    accuracy_std = property(lambda self: self.metrics["accuracy_std"])
    auc = property(lambda self: self.metrics.get("auc"))
    eer = property(lambda self: self.metrics.get("eer"))
    tar_at_far = property(lambda self: self.metrics.get("tar_at_far", {}))

    def to_json(self) -> dict[str, Any]:
        return {**self.metrics, "seconds": self.seconds}


def verify(model: nn.Module, pairs: HeldoutPairs, *, batch_size: int = 64, progress: bool = True) -> Verification:
    """:meth:`facelivt.training.HeldoutPairs.verify` (metrics, ROC, embeddings) at :data:`VERIFICATION_FARS`, timed."""
    start = time.perf_counter()
    v = pairs.verify(model, batch_size, "cpu", fars=VERIFICATION_FARS, progress=progress)
    return Verification(v.metrics, time.perf_counter() - start, v.fpr, v.tpr, v.embeddings)


@dataclass
class DeployCheck:
    """Reparameterization of one model: sizes, parity with the train form, weight files."""

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
    heldout_accuracy_deploy: Optional[float] = None  # verification accuracy recomputed with the deploy form
    heldout_max_abs_diff: Optional[float] = None

    def passed(self, min_cosine: float = 0.9999) -> bool:
        return self.batchnorm_deploy == 0 and self.parity.passed(min_cosine) and self.reload_parity.passed(min_cosine)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed()}


def reparameterize_and_check(name: str, model: nn.Module, images: np.ndarray, weights: Path, deploy_weights: Path) -> tuple[nn.Module, DeployCheck]:
    """The deploy form of ``model`` and its parity with the train form on ``images`` (uint8 crops); the
    deploy weights file (the trainer's export) loaded back with :func:`facelivt.models.load_model`
    and checked against it too."""
    model = model.eval()
    deploy = reparameterize_model(model)
    x = to_tensor_batch(images)
    out = pytorch_embeddings(deploy, x)
    reloaded = pytorch_embeddings(load_model(name, deploy_weights, deploy=True), x)
    check = DeployCheck(name, count_params(model), count_params(deploy), count_macs(model), count_macs(deploy),
                        count_batchnorm(model), count_batchnorm(deploy), compare_embeddings(pytorch_embeddings(model, x), out),
                        compare_embeddings(out, reloaded), str(weights), str(deploy_weights))
    return deploy, check


def deploy_verification(deploy: nn.Module, pairs: HeldoutPairs, reference: Verification, check: DeployCheck, *, batch_size: int = 64, progress: bool = True) -> None:
    """The held-out verification again with the deploy form: its accuracy and the largest embedding
    difference to the train form go into ``check``."""
    again = verify(deploy, pairs, batch_size=batch_size, progress=progress)
    check.heldout_accuracy_deploy = float(again.metrics["accuracy"])
    check.heldout_max_abs_diff = float(np.abs(again.embeddings - reference.embeddings).max())


@dataclass
class OnnxCheck:
    """The ONNX export of the distilled student and its parity in ONNX Runtime."""

    path: str
    size_bytes: int
    parity: Optional[Parity]
    error: Optional[str] = None

    def passed(self) -> bool:
        return self.error is None and self.parity is not None and self.parity.passed()

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed()}


def export_and_check(deploy: nn.Module, path: Path, images: np.ndarray, threads: int | None = None) -> OnnxCheck:
    """The deploy form to ONNX (dynamic batch), ONNX Runtime's embeddings compared with PyTorch's on
    ``images`` (whole batch and one by one). A failed export or parity is recorded, not raised."""
    try:
        report = export_model(deploy, "onnx", path, images=to_tensor_batch(images), threads=threads)
    except (RuntimeError, ValueError, ImportError) as exc:
        return OnnxCheck(str(path), path.stat().st_size if path.is_file() else 0, None, f"{type(exc).__name__}: {exc}")
    return OnnxCheck(report.path, report.size_bytes, report.parity)


@dataclass
class LatencyRow:
    """One row of the latency table (``results.json``'s ``benchmark``)."""

    label: str
    model: str
    form: str  # train | deploy
    runtime: str  # PyTorch eager | TorchScript | ONNX Runtime
    params_m: float
    macs_m: float
    latency_ms: dict[str, float] = field(default_factory=dict)  # batch size (as text, JSON keys) -> median ms
    p10_ms: dict[str, float] = field(default_factory=dict)
    p90_ms: dict[str, float] = field(default_factory=dict)


@dataclass
class Candidate:
    """One row of the latency table: what runs (a module or an ONNX file) and the module it counts."""

    model: str
    form: str
    runtime: str
    runs: nn.Module | Path
    counted: nn.Module


def benchmark(candidates: dict[str, Candidate], batch_sizes: list[int], threads: int, warmup: int, runs: int,
              rounds: int, progress: bool = True) -> list[LatencyRow]:
    """Median latency of every candidate, measured interleaved round by round so that load changes hit
    all alike, with the benchmark tables' schedule (:func:`facelivt.deploy.benchmark.measure_at_batch`)."""
    rows = {label: LatencyRow(label, c.model, c.form, c.runtime, count_params(c.counted) / 1e6, count_macs(c.counted) / 1e6)
            for label, c in candidates.items()}
    for b in tqdm(batch_sizes, desc="benchmark", unit="batch size", disable=not progress):
        runners = {label: ort_runner(c.runs, b, threads) if isinstance(c.runs, Path) else eager_runner(c.runs, b, "cpu")
                   for label, c in candidates.items()}
        stats = measure_at_batch(runners, b, warmup, runs, rounds)
        for label, s in stats.items():
            row, key = rows[label], str(b)
            row.latency_ms[key], row.p10_ms[key], row.p90_ms[key] = s.median_ms, s.p10_ms, s.p90_ms
    return list(rows.values())
