"""Aligned face crops for parity checks, int8 calibration and benchmarks: a folder of real crops, or the
bundled synthetic faces (:mod:`facelivt.data.synthetic`) when none is given."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from facelivt.data.decode import decode_rgb
from facelivt.data.synthetic import SyntheticIdentities
from facelivt.errors import InputNotFoundError, InvalidInputError
from facelivt.models.preprocess import DEFAULT_PREPROCESS, Preprocess

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
SYNTHETIC_SEED = 0  # the synthetic faces used when no crops folder is given
SYNTHETIC_VIEWS = 2  # views per synthetic identity: the offsets that give disjoint sets


def synthetic_crops(count: int, offset: int = 0) -> np.ndarray:
    """``count`` synthetic 112x112 faces (uint8 N x 112 x 112 x 3), one per identity, view ``offset``
    (0 or 1: disjoint sets, e.g. calibration vs held-out). Always the same pixels; nothing is read."""
    if not 0 <= offset < SYNTHETIC_VIEWS:
        raise InvalidInputError(f"offset must be in [0, {SYNTHETIC_VIEWS}) for synthetic faces, got {offset}")
    faces = SyntheticIdentities(count, SYNTHETIC_VIEWS, seed=SYNTHETIC_SEED)
    return np.stack([faces.image(k * SYNTHETIC_VIEWS + offset) for k in range(count)])


def list_crops(root: str | os.PathLike) -> list[Path]:
    """Every image under ``root`` (``root/<identity>/<image>`` or flat), sorted."""
    root = Path(root)
    if not root.is_dir():
        raise InputNotFoundError(f"crops folder not found: {root}")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise InvalidInputError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {root}")
    return files


def load_crops(
    root: str | os.PathLike | None = None,
    count: int = 32,
    offset: int = 0,
    size: int | None = None,
    preprocess: Preprocess = DEFAULT_PREPROCESS,
) -> torch.Tensor:
    """``count`` crops as an ``(count, 3, size, size)`` batch normalised by ``preprocess`` (pass the
    model's, ``model.preprocess``); ``size`` defaults to ``preprocess.input_size``. ``root`` None: the
    bundled synthetic faces (:func:`synthetic_crops`), no folder needed.

    Images are taken at an even stride over the sorted list (so they span many identities), starting
    at position ``offset`` within each stride: different offsets give disjoint sets (calibration vs
    held-out). Crops of another size are resized.
    """
    if count < 1:
        raise InvalidInputError(f"count must be positive, got {count}")
    size = preprocess.input_size if size is None else size
    if root is None:
        return preprocess.batch(np.stack([_resized(Image.fromarray(a), size) for a in synthetic_crops(count, offset)]))
    files = list_crops(root)
    stride = max(1, len(files) // count)
    if offset < 0 or offset >= stride:
        raise InvalidInputError(f"offset must be in [0, {stride}) for {count} of {len(files)} images, got {offset}")
    picked = files[offset::stride][:count]
    if len(picked) < count:
        raise InvalidInputError(f"asked for {count} crops but {root} has only {len(files)} images")
    # the one decoder: pixel limit, any mode to RGB
    return preprocess.batch(np.stack([_resized(Image.fromarray(decode_rgb(p)), size) for p in picked]))


def _resized(im: Image.Image, size: int) -> np.ndarray:
    if im.size != (size, size):
        im = im.resize((size, size), Image.BILINEAR)
    return np.asarray(im, dtype=np.uint8)

