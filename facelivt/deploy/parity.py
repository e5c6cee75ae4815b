"""Parity checks (layer 1 of :mod:`facelivt.deploy`): how closely a runner reproduces PyTorch's embeddings."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from facelivt.deploy.sessions import Runner, run_batched
from facelivt.errors import FaceLiVTError


class ParityError(FaceLiVTError, RuntimeError):
    """An exported model's embeddings do not match PyTorch's on the check images."""


FP32_MIN_COSINE = 0.9999


@dataclass
class Parity:
    """Agreement of an exported model with PyTorch on the same images."""

    images: int
    max_abs_diff: float
    min_cosine: float
    mean_cosine: float

    def passed(self, min_cosine: float = FP32_MIN_COSINE) -> bool:
        return self.min_cosine >= min_cosine

    def describe(self) -> str:
        return f"{self.images} crops: max |diff| = {self.max_abs_diff:.3g}, min cosine = {self.min_cosine:.7f}, mean cosine = {self.mean_cosine:.7f}"

    def worst(self, other: "Parity") -> "Parity":
        """The worse figure of each kind of two checks on the same images."""
        return Parity(self.images, max(self.max_abs_diff, other.max_abs_diff), min(self.min_cosine, other.min_cosine), min(self.mean_cosine, other.mean_cosine))


def compare_embeddings(reference: np.ndarray, other: np.ndarray) -> Parity:
    """Max absolute difference and per-row cosine similarity of two (N, D) embedding arrays."""
    reference = np.asarray(reference, dtype=np.float64)
    other = np.asarray(other, dtype=np.float64)
    if reference.shape != other.shape or reference.ndim != 2:
        raise ValueError(f"embeddings to compare must have the same (N, D) shape, got {reference.shape} and {other.shape}")
    num = (reference * other).sum(1)
    den = np.linalg.norm(reference, axis=1) * np.linalg.norm(other, axis=1)
    cos = num / np.maximum(den, 1e-30)
    return Parity(len(reference), float(np.abs(reference - other).max()), float(cos.min()), float(cos.mean()))


def pytorch_embeddings(model: nn.Module, images: torch.Tensor, batch: int = 64) -> np.ndarray:
    """``model``'s (eval mode) embeddings of ``images``, ``batch`` at a time on the model's device, as float32 numpy."""
    model = model.eval()
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    outs = []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            outs.append(model(images[i : i + batch].to(device)).float().cpu().numpy())
    return np.concatenate(outs)


def runner_parity(model: nn.Module, run: Runner, images: torch.Tensor, fixed_batch: int | None = None) -> Parity:
    """Parity of ``run`` with ``model`` on ``images``: a fixed-batch runner in (padded) chunks of its batch;
    a dynamic-batch one at the full batch and image by image, the worse of the two."""
    ref = pytorch_embeddings(model, images)
    x = images.numpy()
    parity = compare_embeddings(ref, run_batched(run, x, fixed_batch))
    if fixed_batch is None and len(x) > 1:
        parity = parity.worst(compare_embeddings(ref, run_batched(run, x, 1)))
    return parity


def require_parity(parity: Parity, min_cosine: float, what: str) -> Parity:
    """``parity`` when it passed ``min_cosine``; else RuntimeError naming ``what`` and the figures."""
    if not parity.passed(min_cosine):
        raise ParityError(f"{what} output does not match PyTorch: {parity.describe()} (need min cosine >= {min_cosine})")
    return parity
