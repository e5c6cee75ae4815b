"""Evaluate a model on ``.bin`` sets and IJB releases; the work behind ``facelivt eval``."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from facelivt.devices import resolve_device
from facelivt.errors import InputNotFoundError, InvalidInputError, check_input_file
from facelivt.evaluation.binset import read_bin
from facelivt.evaluation.ijb import evaluate_scores, ijb_scores
from facelivt.evaluation.metrics import evaluate_embeddings, pair_distances, roc_curve
from facelivt.evaluation.report import results_json, roc_png, write_outputs
from facelivt.files import check_writable
from facelivt.models import create_model, load_model, reparameterize_model
from facelivt.files import file_sha256
from facelivt.models.embed import embed_batches

log = logging.getLogger(__name__)


def build_model(
    name: str,
    weights: str | Path | None = None,
    deploy: bool = True,
    device: str = "auto",
    seed: int = 0,
    **overrides,
) -> nn.Module:
    """Model ``name`` in eval mode on ``device``: with ``weights`` (this project's safetensors, the authors'
    ``.pt``, a pretrained name or a remote reference) through :func:`facelivt.models.load_model`; without, randomly initialised (a warning is logged).
    ``deploy`` (default) returns the reparameterised form; ``seed`` fixes the random initialisation."""
    dev = resolve_device(device)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if weights is None:
        log.warning("no weights given: %s is randomly initialised, its figures mean nothing", name)
        with torch.random.fork_rng(devices=[]):  # reproducible random init; the caller's RNG state is left alone
            torch.manual_seed(seed)
            model = create_model(name, **overrides).eval()
        if deploy:
            model = reparameterize_model(model).eval()
        return model.to(dev)
    return load_model(name, weights, deploy=deploy, device=str(dev), **overrides).eval()


def describe_model(model: nn.Module, name: str | None = None, weights: str | Path | None = None) -> dict:
    """What ``results.json`` names: the model, the weights reference given, the file read and its sha256
    (None for random weights)."""
    path = getattr(model, "weights_path", None)
    return {
        "model": name or getattr(model, "model_name", None) or type(model).__name__,
        "weights": str(weights) if weights is not None else getattr(model, "weights_source", None),
        "weights_file": str(path) if path is not None else None,
        "weights_sha256": file_sha256(path) if path is not None else None,
    }


def embed_bin(
    model: nn.Module,
    path: str | Path,
    batch_size: int = 64,
    device: str = "auto",
    flip: bool = True,
    progress: bool = True,
    image_size: int = 112,
) -> tuple[np.ndarray, np.ndarray]:
    """(flip-sum embeddings, one row per image; issame) of the ``.bin`` set at ``path``; images are decoded
    batch by batch (resized to ``image_size`` when they differ)."""
    bs = read_bin(path)
    emb = embed_batches(
        model,
        bs.iter_batches(batch_size, size=image_size),
        device=device,
        flip=flip,
        total=bs.num_images,
        progress=progress,
        desc=f"embed {Path(path).name}",
    )
    return emb, bs.issame.copy()


def evaluate_bin(
    model: nn.Module,
    path: str | Path,
    batch_size: int = 64,
    device: str = "auto",
    flip: bool = True,
    progress: bool = False,
) -> dict:
    """Verification figures of ``model`` on a ``.bin`` set (see :func:`facelivt.evaluation.evaluate_embeddings`).
    Training can call this for periodic validation: the model's train/eval mode is restored."""
    emb, issame = embed_bin(model, path, batch_size=batch_size, device=device, flip=flip, progress=progress)
    return evaluate_embeddings(emb, issame)


def check_sets(bins: Sequence[str | Path] = (), ijb: str | Path | None = None, ijb_name: str = "IJBC") -> None:
    """Fail early (before any model is built) on missing inputs and on result names that would collide."""
    if not bins and ijb is None:
        raise InvalidInputError("nothing to evaluate: give at least one .bin set or an IJB folder")
    keys = [Path(b).stem for b in bins] + ([ijb_name] if ijb is not None else [])
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        raise InvalidInputError(f"several sets would be reported under the same name: {', '.join(dup)}")
    for b in bins:
        check_input_file(b, "verification set")
    if ijb is not None:
        if not ijb_name or not ijb_name.replace("-", "").replace("_", "").isalnum():
            raise InvalidInputError(f"--ijb-name must be a plain name such as IJBB or IJBC, got {ijb_name!r}")
        if not Path(ijb).is_dir():
            raise InputNotFoundError(f"IJB folder not found: {ijb}")


def evaluate_sets(
    model: nn.Module,
    bins: Sequence[str | Path] = (),
    out_dir: str | Path | None = None,
    ijb: str | Path | None = None,
    ijb_name: str = "IJBC",
    batch_size: int = 64,
    device: str = "auto",
    flip: bool = True,
    workers: int = 2,
    progress: bool = True,
    about: dict | None = None,
) -> dict[str, dict]:
    """Evaluate on every ``.bin`` of ``bins`` (keyed by file stem) and optionally the IJB release at ``ijb``
    (keyed by ``ijb_name``); with ``out_dir``, write ``results.json`` and ``<key>_roc.png`` there, as one
    set at the end (a failed write leaves the files of an earlier run as they were). ``about``: what
    ``results.json`` says was evaluated (default :func:`describe_model` of ``model``)."""
    check_sets(bins, ijb, ijb_name)
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        check_writable(out / "results.json")  # a file in the way or no permission: fail before the work
    results: dict[str, dict] = {}
    files: dict[Path, bytes] = {}
    for b in bins:
        key = Path(b).stem
        emb, issame = embed_bin(model, b, batch_size=batch_size, device=device, flip=flip, progress=progress)
        results[key] = evaluate_embeddings(emb, issame)
        if out is not None:
            fpr, tpr, _ = roc_curve(-pair_distances(emb), issame)
            files[out / f"{key}_roc.png"] = roc_png(fpr, tpr, f"{key} ROC", n_negative=results[key]["n_negative"])
    if ijb is not None:
        scores, labels, meta = ijb_scores(
            model, ijb, ijb_name, batch_size=batch_size, device=device, flip=flip, workers=workers, progress=progress
        )
        res = evaluate_scores(scores, labels)
        res["n_images"] = len(meta.names)
        res["n_templates"] = int(len(np.unique(meta.templates)))
        results[ijb_name] = res
        if out is not None:
            fpr, tpr, _ = roc_curve(scores, labels)
            files[out / f"{ijb_name}_roc.png"] = roc_png(fpr, tpr, f"{ijb_name} 1:1 ROC", n_negative=res["n_negative"])
    if out is not None:
        files[out / "results.json"] = results_json(results, about if about is not None else describe_model(model))
        write_outputs(files)
    return results

