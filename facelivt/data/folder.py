"""Image-folder data set: ``root/<identity>/<image>``."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Iterable, Union

import numpy as np
import torch

from facelivt.errors import InputNotFoundError, InvalidInputError
from .decode import ImageLoadError
from .imaging import BadSampleTracker, Transform, check_index, decode_image, image_to_sample, resolve_transform

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".ppm", ".pbm", ".gif", ".tif", ".tiff", ".webp")

PathLike = Union[str, os.PathLike]


def scan_image_folder(
    root: PathLike, extensions: Iterable[str] = IMAGE_EXTENSIONS
) -> tuple[list[str], list[tuple[str, int]]]:
    """List ``root/<identity>/<image>``.

    Returns ``(classes, samples)``: identity folder names in sorted order (folders
    without any image are left out, with a warning) and ``(path, label)`` pairs
    sorted by identity, then file name. Extensions match case-insensitively.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputNotFoundError(f"image folder not found: {root}")
    exts = tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions)
    if not exts:
        raise InvalidInputError("no image extensions given")
    classes: list[str] = []
    samples: list[tuple[str, int]] = []
    empty: list[str] = []
    for entry in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(
            f for f in entry.iterdir() if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in exts
        )
        if not files:
            empty.append(entry.name)
            continue
        label = len(classes)
        classes.append(entry.name)
        samples.extend((str(f), label) for f in files)
    if empty:
        shown = ", ".join(empty[:5]) + (" ..." if len(empty) > 5 else "")
        log.warning("%s: %d identity folder(s) without images left out: %s", root, len(empty), shown)
    if not samples:
        raise InvalidInputError(
            f"no images found under {root}: expected root/<identity>/<image> with extensions {', '.join(exts)}"
        )
    return classes, samples


#: What a folder sample can fail with: an unusable image, or a file gone since the folder was listed.
UNREADABLE = (ImageLoadError, InputNotFoundError)


def load_image(path: PathLike, size: int = 112) -> np.ndarray:
    """Any image Pillow reads -> RGB uint8 ``size x size x 3`` (the one decoder, :mod:`.decode`);
    ImageLoadError if it cannot be used (too large included), InputNotFoundError if it is gone."""
    return decode_image(path, size)


class ImageFolderDataset(torch.utils.data.Dataset):
    """Faces stored as ``root/<identity>/<image>``; identities labelled 0.. in sorted name order.

    Items are ``(3x112x112 float tensor, ``(pixel / 255 - 0.5) / 0.5``, int label)``;
    grey / RGBA / palette images become RGB and other sizes are resized to
    112x112 (meant for crops that are already aligned). ``transform``: None,
    ``"train"`` (random horizontal flip) or a callable on the normalised tensor.
    Unreadable files are skipped like corrupt RecordIO records (see
    :class:`facelivt.data.imaging.BadSampleTracker`).
    """

    def __init__(
        self,
        root: PathLike,
        transform: Transform = None,
        extensions: Iterable[str] = IMAGE_EXTENSIONS,
        max_bad_fraction: float = 0.01,
        min_reads: int = 1000,
    ) -> None:
        self.root = Path(root)
        self.transform = resolve_transform(transform)
        self.classes, self.samples = scan_image_folder(self.root, extensions)
        self.labels = np.array([label for _, label in self.samples], dtype=np.int64)
        self.num_classes = len(self.classes)
        self.tracker = BadSampleTracker(len(self.samples), max_bad_fraction, min_reads, f"image folder {self.root}")

    @property
    def bad_records(self) -> int:
        return self.tracker.count

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> tuple[np.ndarray, int]:
        """Decoded RGB uint8 112x112x3 image and label (errors raised, not skipped)."""
        path, label = self.samples[index]
        return load_image(path), label

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        index = check_index(index, len(self))
        image, label = self.tracker.first_good(
            index, self.load, UNREADABLE, lambda j: str(self.samples[j][0]), f"image folder {self.root}: no readable image left"
        )
        return image_to_sample(image, self.transform), label

    def __repr__(self) -> str:
        return f"ImageFolderDataset({str(self.root)!r}, images={len(self)}, classes={self.num_classes})"
