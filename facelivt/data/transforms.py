"""Pixel conventions shared by every part of the project (SPEC section 1).

Images enter the network as RGB, 3x112x112, scaled to ``(pixel / 255 - 0.5) / 0.5``.
"""
from __future__ import annotations

import numpy as np
import torch

MEAN = 0.5
STD = 0.5
INPUT_SIZE = 112


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 RGB array -> 3xHxW float32 tensor normalised as SPEC section 1."""
    if not isinstance(image, np.ndarray):
        image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB image, got array of shape {tuple(image.shape)}")
    t = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float()
    return (t / 255.0 - MEAN) / STD


def to_tensor_batch(images: np.ndarray) -> torch.Tensor:
    """NxHxWx3 uint8 RGB -> Nx3xHxW normalised float32."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[3] != 3:
        raise ValueError(f"expected NxHxWx3 RGB images, got array of shape {tuple(images.shape)}")
    t = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    return (t / 255.0 - MEAN) / STD


def to_uint8(tensor: torch.Tensor) -> np.ndarray:
    """Inverse of :func:`to_tensor` (3xHxW or Nx3xHxW) -> uint8 HxWx3 / NxHxWx3."""
    t = (tensor.detach().cpu() * STD + MEAN).clamp(0, 1) * 255.0
    t = t.round().to(torch.uint8)
    if t.ndim == 3:
        return t.permute(1, 2, 0).numpy()
    return t.permute(0, 2, 3, 1).numpy()


def hflip(batch: torch.Tensor) -> torch.Tensor:
    """Horizontal flip of an (N)CHW tensor."""
    return torch.flip(batch, dims=[-1])
