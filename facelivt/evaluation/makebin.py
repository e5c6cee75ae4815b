"""Build a ``.bin`` verification set from an image folder and a pairs list."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

from PIL import Image
from tqdm import tqdm

from facelivt.data.decode import decode_rgb
from facelivt.errors import InvalidInputError
from facelivt.evaluation.binset import write_bin
from facelivt.evaluation.pairs import PairSpec, parse_pairs, resolve_pairs

FORMATS = {"jpg": "JPEG", "png": "PNG"}


def encode_image_file(path: Path, size: int | None = 112, fmt: str = "jpg", quality: int = 95) -> bytes:
    """Read an image (the one decoder, :mod:`facelivt.data.decode`: pixel limit, any mode to RGB, alpha
    over white), resize to ``size`` x ``size`` (None/0: keep), encode. ``ImageLoadError`` names the file."""
    if fmt not in FORMATS:
        raise InvalidInputError(f"unknown image format {fmt!r}; choose one of {', '.join(FORMATS)}")
    im = Image.fromarray(decode_rgb(path, name=f"image {path}"))
    if size and im.size != (size, size):
        im = im.resize((size, size), Image.BILINEAR)
    buf = io.BytesIO()
    if fmt == "jpg":
        im.save(buf, format="JPEG", quality=quality)
    else:
        im.save(buf, format="PNG")
    return buf.getvalue()


def make_bin(
    images_root: str | Path,
    pairs: str | Path | Sequence[PairSpec],
    out: str | Path,
    size: int | None = 112,
    fmt: str = "jpg",
    quality: int = 95,
    progress: bool = True,
) -> Path:
    """Write ``out`` (.bin) holding both images of every pair of ``pairs`` (a pairs-list path or parsed specs),
    images converted to RGB, resized to ``size`` x ``size`` and encoded as ``fmt``."""
    if size is not None and size < 0:
        raise InvalidInputError(f"size must be positive (or 0 to keep the original size), got {size}")
    specs = parse_pairs(pairs) if isinstance(pairs, (str, Path)) else list(pairs)
    if not specs:
        raise InvalidInputError("no pairs given")
    resolved = resolve_pairs(images_root, specs)
    cache: dict[Path, bytes] = {}
    encoded: list[bytes] = []
    labels: list[bool] = []
    it = tqdm(resolved, desc="make-bin", unit="pair", disable=not progress)
    for f1, f2, same in it:
        for f in (f1, f2):
            if f not in cache:
                cache[f] = encode_image_file(f, size=size, fmt=fmt, quality=quality)
            encoded.append(cache[f])
        labels.append(bool(same))
    return write_bin(out, encoded, labels)
