"""Real aligned face crops for parity checks, int8 calibration and benchmarks."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from facelivt.data.decode import decode_rgb
from facelivt.errors import InputNotFoundError, InvalidInputError
from facelivt.models.preprocess import DEFAULT_PREPROCESS, Preprocess

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
CROPS_SUBDIR = Path("data") / "celeba_subset_112"


def default_crops_dir() -> Path:
    """``../shared/data/celeba_subset_112`` next to the working directory or next to the repository."""
    repo = Path(__file__).resolve().parents[2]
    candidates = [Path.cwd() / ".." / "shared" / CROPS_SUBDIR, repo / ".." / "shared" / CROPS_SUBDIR]
    for c in candidates:
        if c.is_dir():
            return c.resolve()
    raise InputNotFoundError(
        "no aligned face crops found (looked for " + ", ".join(str(c) for c in candidates) + "); pass a folder of 112x112 aligned crops"
    )


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
    model's, ``model.preprocess``); ``size`` defaults to ``preprocess.input_size``.

    Images are taken at an even stride over the sorted list (so they span many identities), starting
    at position ``offset`` within each stride: different offsets give disjoint sets (calibration vs
    held-out). Crops of another size are resized.
    """
    if count < 1:
        raise InvalidInputError(f"count must be positive, got {count}")
    files = list_crops(root if root is not None else default_crops_dir())
    stride = max(1, len(files) // count)
    if offset < 0 or offset >= stride:
        raise InvalidInputError(f"offset must be in [0, {stride}) for {count} of {len(files)} images, got {offset}")
    picked = files[offset::stride][:count]
    if len(picked) < count:
        raise InvalidInputError(f"asked for {count} crops but {root} has only {len(files)} images")
    size = preprocess.input_size if size is None else size
    images = []
    for p in picked:
        im = Image.fromarray(decode_rgb(p))  # the one decoder: pixel limit, any mode to RGB
        if im.size != (size, size):
            im = im.resize((size, size), Image.BILINEAR)
        images.append(np.asarray(im, dtype=np.uint8))
    return preprocess.batch(np.stack(images))
