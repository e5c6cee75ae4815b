"""Batched embedding with the flip-sum of the evaluation protocol: ``f(x) + f(hflip(x))`` (not normalised).

The one embedding loop of the package (evaluation, held-out checks, the quickstart and
:class:`facelivt.inference.FaceRecognizer` all embed through it), and the one probe of a model's
embedding dimension (:func:`embedding_dim`, also used by training). It lives beside
:class:`~facelivt.models.preprocess.Preprocess`, which turns the images into the model's input.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from facelivt.devices import resolve_device
from facelivt.errors import InvalidInputError
from facelivt.models.preprocess import DEFAULT_PREPROCESS, Preprocess, preprocess_of


def _as_batch(batch: np.ndarray | torch.Tensor, preprocess: Preprocess = DEFAULT_PREPROCESS) -> torch.Tensor:
    """uint8 NxHxWx3 RGB -> float Nx3xHxW normalised by ``preprocess``; a float tensor Nx3xHxW is taken
    as already normalised."""
    if isinstance(batch, torch.Tensor):
        if batch.dtype == torch.uint8:
            raise InvalidInputError("uint8 tensors are ambiguous: pass uint8 images as a numpy NxHxWx3 array")
        if batch.ndim != 4 or batch.shape[1] != 3:
            raise InvalidInputError(f"expected a normalised Nx3xHxW tensor, got shape {tuple(batch.shape)}")
        return batch.float()
    arr = np.asarray(batch)
    if arr.dtype != np.uint8:
        raise InvalidInputError(f"expected uint8 NxHxWx3 RGB images, got dtype {arr.dtype}")
    return preprocess.batch(arr)


@torch.inference_mode()
def embed_batches(
    model: nn.Module,
    batches: Iterable[np.ndarray | torch.Tensor],
    device: str | torch.device | None = "auto",
    flip: bool = True,
    total: int | None = None,
    progress: bool = True,
    desc: str = "embed",
) -> np.ndarray:
    """Embed every image of ``batches`` (each uint8 NxHxWx3 RGB, normalised by the model's
    ``preprocess``, or an already normalised Nx3xHxW tensor).

    Returns float32 (N, D): ``f(x) + f(flip(x))`` with ``flip``, else ``f(x)``. The model is moved to
    ``device`` and run in eval mode; its train/eval mode is restored afterwards. ``total`` (number of
    images) sizes the progress bar."""
    dev = resolve_device(device)
    pre = preprocess_of(model)
    was_training = model.training
    model.to(dev).eval()
    out: list[np.ndarray] = []
    bar = tqdm(total=total, desc=desc, unit="img", disable=not progress)
    try:
        for batch in batches:
            x = _as_batch(batch, pre).to(dev, non_blocking=True)
            if x.shape[0] == 0:
                continue
            n = x.shape[0]
            e = model(torch.cat([x, torch.flip(x, dims=[-1])]) if flip else x)  # the images and their mirror images
            if e.ndim != 2 or e.shape[0] != (2 * n if flip else n):
                raise RuntimeError(f"model returned shape {tuple(e.shape)} for a batch of {e.shape[0]} images; expected N x D")
            if flip:
                e = e[:n] + e[n:]  # one forward pass for the images and their flips
            out.append(e.float().cpu().numpy())
            bar.update(x.shape[0])
    finally:
        bar.close()
        model.train(was_training)
    if not out:
        raise InvalidInputError("no images to embed")
    return np.concatenate(out, axis=0)


@torch.inference_mode()
def embedding_dim(model: nn.Module, device: str | torch.device | None = None, size: int | None = None) -> int:
    """Embedding dimension D of ``model``, found by running it once on zeros in eval mode (its
    train/eval mode is restored; no statistics change). ``device``: where the model is (default: the
    device of its first parameter); ``size``: input side (default: the model's, ``model.preprocess``)."""
    if size is None:
        size = preprocess_of(model).input_size
    if device is None:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
    was_training = model.training
    model.eval()
    try:
        out = model(torch.zeros(2, 3, size, size, device=device))
    finally:
        model.train(was_training)
    if out.ndim != 2:
        raise InvalidInputError(f"the model must return [batch, dim] embeddings, got shape {tuple(out.shape)}")
    return int(out.shape[1])


def embed_images(
    model: nn.Module,
    images: np.ndarray | torch.Tensor,
    batch_size: int = 64,
    device: str | torch.device | None = "auto",
    flip: bool = True,
    progress: bool = True,
) -> np.ndarray:
    """Embed a uint8 NxHxWx3 RGB array (or normalised Nx3xHxW tensor) ``batch_size`` at a time (see
    :func:`embed_batches`)."""
    if batch_size < 1:
        raise InvalidInputError(f"batch_size must be >= 1, got {batch_size}")
    n = len(images)
    if n == 0:
        raise InvalidInputError("no images to embed")
    batches = (images[i : i + batch_size] for i in range(0, n, batch_size))
    return embed_batches(model, batches, device=device, flip=flip, total=n, progress=progress)
