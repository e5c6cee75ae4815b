"""What a model expects of its input pixels, carried by the model as data.

Every registry model has a ``preprocess`` attribute (:class:`Preprocess`): the input side, the
colour order and the normalisation ``(pixel / 255 - mean) / std``. Export writes it into the model
file's metadata, and evaluation, inference, the parity checks and the benchmark crops turn images
into tensors with it, instead of each writing the formula or probing the input size. FaceLiVT, the
EdgeFace and MobileFaceNet peers and the insightface recognition models they are compared with all
take 112x112 RGB crops scaled to [-1, 1] (mean = std = 0.5 on [0, 1]); FaceLiVT paper (ICIP 2025).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
from torch import nn

from facelivt.errors import InvalidInputError

COLORS = ("RGB", "BGR")


@dataclass(frozen=True)
class Preprocess:
    """Input side in pixels, per-channel-equal ``mean``/``std`` on [0, 1] pixels, and colour order."""

    input_size: int = 112
    mean: float = 0.5
    std: float = 0.5
    color: str = "RGB"

    def __post_init__(self) -> None:
        if self.input_size < 1 or self.std <= 0 or self.color not in COLORS:
            raise InvalidInputError(f"invalid preprocessing {self}: need input_size >= 1, std > 0, color in {COLORS}")

    def at_size(self, input_size: int) -> "Preprocess":
        """The same preprocessing for ``input_size`` x ``input_size`` inputs."""
        return self if input_size == self.input_size else replace(self, input_size=int(input_size))

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        """A float tensor of 0..255 pixel values -> the network's input values."""
        return (pixels / 255.0 - self.mean) / self.std

    def denormalize(self, tensor: torch.Tensor) -> np.ndarray:
        """Inverse of :meth:`image` / :meth:`batch` (3xHxW or Nx3xHxW) -> uint8 HxWx3 / NxHxWx3."""
        t = (tensor.detach().cpu() * self.std + self.mean).clamp(0, 1) * 255.0
        t = t.round().to(torch.uint8)
        if t.ndim == 3:
            return t.permute(1, 2, 0).numpy()
        return t.permute(0, 2, 3, 1).numpy()

    def image(self, image: np.ndarray) -> torch.Tensor:
        """HxWx3 uint8 image (in :attr:`color` order) -> normalised 3xHxW float32 tensor."""
        if not isinstance(image, np.ndarray):
            image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3:
            raise InvalidInputError(f"expected an HxWx3 RGB image, got array of shape {tuple(image.shape)}")
        return self.normalize(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float())

    def batch(self, images: np.ndarray) -> torch.Tensor:
        """NxHxWx3 uint8 images (in :attr:`color` order) -> normalised Nx3xHxW float32 tensor."""
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[3] != 3:
            raise InvalidInputError(f"expected NxHxWx3 RGB images, got array of shape {tuple(images.shape)}")
        return self.normalize(torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float())

    def describe(self) -> str:
        """One line for model metadata, e.g. ``RGB 112x112, (pixel/255 - 0.5) / 0.5``."""
        return f"{self.color} {self.input_size}x{self.input_size}, (pixel/255 - {self.mean:g}) / {self.std:g}"

    def to_dict(self) -> dict:
        return asdict(self)


DEFAULT_PREPROCESS = Preprocess()


def preprocess_of(model: nn.Module, input_size: int | None = None) -> Preprocess:
    """The preprocessing ``model`` carries; for a model built outside the registry, the default one at
    its configured input size (``model.cfg.input_size``, else 112). ``input_size`` overrides the side."""
    pre = getattr(model, "preprocess", None)
    if not isinstance(pre, Preprocess):
        size = getattr(getattr(model, "cfg", None), "input_size", None)
        pre = DEFAULT_PREPROCESS if size is None else Preprocess(input_size=int(size))
    return pre if input_size is None else pre.at_size(input_size)
