"""Photos for the detector and the recognizer: the project's one decoder
(:mod:`facelivt.data.decode`: pixel limit, any mode, EXIF rotation, alpha over white), then
downscaling of large photos (detection cost grows with area).

Every image leaves here as an HxWx3 ``uint8`` RGB array. Files that cannot be used raise
:class:`facelivt.data.decode.ImageLoadError` (a ``ValueError``) with a message naming the file and
the problem, so that folder runs can catch it, report the file and go on.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from facelivt.data.decode import ImageSource, decode, source_name

#: Images whose longest side exceeds this are downscaled after decoding (detection cost grows with area).
DEFAULT_MAX_SIDE = 4096

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm", ".pnm")


@dataclass
class LoadedImage:
    """A decoded image: ``image`` (HxWx3 uint8 RGB), its size before downscaling and the scale applied."""

    image: np.ndarray
    original_size: tuple[int, int]  # (width, height) after EXIF rotation
    scale: float = 1.0
    name: str = "<image>"

    @property
    def downscaled(self) -> bool:
        return self.scale != 1.0


def is_image_file(path: str | os.PathLike) -> bool:
    """True when the file name has a known image extension."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def open_image(
    source: ImageSource,
    *,
    max_pixels: int | None = None,
    max_side: int | None = DEFAULT_MAX_SIDE,
) -> LoadedImage:
    """Read ``source`` (path, encoded bytes, PIL image, or uint8 array in RGB order) as RGB.

    Decoded by :func:`facelivt.data.decode.decode`: images above ``max_pixels`` (default: the
    project's limit, ``$FACELIVT_MAX_PIXELS`` or 80 MP) are refused with ``ImageTooLargeError``
    before decoding; EXIF orientation is applied; every mode becomes RGB, transparency over white.
    Images with a side above ``max_side`` are downscaled (``LoadedImage.scale`` < 1 says so).
    Unreadable, truncated or non-image files raise ``ImageLoadError``; a missing path raises
    ``FileNotFoundError``.
    """
    name = source_name(source)
    decoded = decode(source, name=name, max_pixels=max_pixels, draft_side=max_side)
    rgb, size = decoded.image, decoded.original_size
    height, width = rgb.shape[:2]
    if max_side is not None and max(height, width) > max_side:
        scale = max_side / max(height, width)
        new = (max(1, round(width * scale)), max(1, round(height * scale)))
        rgb = np.asarray(Image.fromarray(rgb).resize(new, Image.Resampling.BOX))
    scale = rgb.shape[1] / size[0]
    return LoadedImage(np.ascontiguousarray(rgb, dtype=np.uint8), size, scale, name)


def load_image(
    source: ImageSource,
    *,
    max_pixels: int | None = None,
    max_side: int | None = DEFAULT_MAX_SIDE,
) -> np.ndarray:
    """Like :func:`open_image` but returns only the HxWx3 uint8 RGB array."""
    return open_image(source, max_pixels=max_pixels, max_side=max_side).image
