"""Pixel conventions of the data sets: the default preprocessing of the registry models.

Images enter the network as RGB, 3x112x112, scaled to ``(pixel / 255 - 0.5) / 0.5``; the numbers
live in :class:`facelivt.models.preprocess.Preprocess`, which each model carries
(``model.preprocess``). These functions apply the default one.
"""
from __future__ import annotations

import numpy as np
import torch

from facelivt.models.preprocess import DEFAULT_PREPROCESS

MEAN = DEFAULT_PREPROCESS.mean
STD = DEFAULT_PREPROCESS.std
INPUT_SIZE = DEFAULT_PREPROCESS.input_size


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 RGB array -> 3xHxW float32 tensor, ``(pixel / 255 - 0.5) / 0.5``."""
    return DEFAULT_PREPROCESS.image(image)


def to_tensor_batch(images: np.ndarray) -> torch.Tensor:
    """NxHxWx3 uint8 RGB -> Nx3xHxW normalised float32."""
    return DEFAULT_PREPROCESS.batch(images)


def to_uint8(tensor: torch.Tensor) -> np.ndarray:
    """Inverse of :func:`to_tensor` (3xHxW or Nx3xHxW) -> uint8 HxWx3 / NxHxWx3."""
    return DEFAULT_PREPROCESS.denormalize(tensor)


def hflip(batch: torch.Tensor) -> torch.Tensor:
    """Horizontal flip of an (N)CHW tensor."""
    return torch.flip(batch, dims=[-1])
