"""Faces held in memory: a data set decoded once into a uint8 array, so that a training loop reads no
files and renders nothing (a thousand 112x112 faces are about 40 MB)."""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from facelivt.errors import InvalidInputError

from .transforms import INPUT_SIZE, to_tensor, to_uint8


class FaceArray(Dataset):
    """Aligned faces in memory: ``images`` uint8 N x 112 x 112 x 3 RGB, ``labels`` int64 N.

    Items are ``(normalised 3x112x112 tensor, label)`` like every data set of :mod:`facelivt.data`;
    ``classes[label]`` names the identity.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, classes: list[str], source: str = "") -> None:
        images = np.asarray(images)
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        if images.ndim != 4 or images.shape[1:] != (INPUT_SIZE, INPUT_SIZE, 3) or images.dtype != np.uint8:
            raise InvalidInputError(f"expected uint8 N x {INPUT_SIZE} x {INPUT_SIZE} x 3 images, got {images.dtype} {images.shape}")
        if labels.shape[0] != images.shape[0]:
            raise InvalidInputError(f"{images.shape[0]} images but {labels.shape[0]} labels")
        if labels.size and (labels.min() < 0 or labels.max() >= len(classes)):
            raise InvalidInputError(f"labels must lie in [0, {len(classes)}), got [{labels.min()}, {labels.max()}]")
        self.images, self.labels, self.classes, self.source = images, labels, list(classes), source
        self.num_classes = len(self.classes)

    @classmethod
    def from_dataset(cls, dataset: Dataset, source: str = "", progress: bool = False) -> "FaceArray":
        """Decode every item of ``dataset`` (a data set of :mod:`facelivt.data` with ``labels`` and
        ``classes``) once; ``image(i)`` is used where the data set has it (no normalise round trip)."""
        image = getattr(dataset, "image", None) or (lambda i: to_uint8(dataset[i][0]))
        images = np.empty((len(dataset), INPUT_SIZE, INPUT_SIZE, 3), dtype=np.uint8)
        for i in tqdm(range(len(dataset)), desc="decode faces", unit="img", disable=not progress):
            images[i] = image(i)
        return cls(images, np.asarray(dataset.labels).copy(), dataset.classes, source or repr(dataset))

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return to_tensor(self.images[index]), int(self.labels[index])

    @property
    def num_identities(self) -> int:
        """Identities that have at least one image here."""
        return int(np.unique(self.labels).size)

    def subset(self, indices: np.ndarray) -> "FaceArray":
        """The items ``indices`` (labels and class names unchanged)."""
        indices = np.asarray(indices, dtype=np.int64)
        return FaceArray(self.images[indices], self.labels[indices], self.classes, self.source)

    def __repr__(self) -> str:
        return f"FaceArray({len(self)} images, {self.num_identities} identities, source={self.source!r})"
