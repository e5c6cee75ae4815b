"""Robust image loading: any file PIL reads, any mode, EXIF rotation, size limits.

Every image leaves here as an HxWx3 ``uint8`` RGB array. Files that cannot be used raise
:class:`ImageLoadError` (a ``ValueError``) with a message naming the file and the problem, so
that folder runs can catch it, report the file and go on.
"""
from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from facelivt.errors import InputNotFoundError, InvalidInputError

#: Images with more pixels than this are refused before decoding (decompression bombs, scans).
DEFAULT_MAX_PIXELS = 80_000_000
#: Images whose longest side exceeds this are downscaled after decoding (detection cost grows with area).
DEFAULT_MAX_SIDE = 4096

_EXIF_ORIENTATION = 0x0112

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm", ".pnm")

ImageSource = Union[str, os.PathLike, bytes, Image.Image, np.ndarray]


class ImageLoadError(InvalidInputError):
    """An image could not be read or used (missing, not an image, truncated, too large, bad array)."""


class ImageTooLargeError(ImageLoadError):
    """An image has more pixels than the configured cap."""


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


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB; transparent pixels are composited over white."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "RGBa", "La", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode in ("I", "F") or mode.startswith("I;16"):
        arr = np.asarray(img, dtype=np.float64)
        top = arr.max() if arr.size else 0.0
        if mode == "F" and top <= 1.0:
            arr = arr * 255.0
        elif top > 255.0:
            arr = arr * (255.0 / (65535.0 if top <= 65535.0 else top))
        grey = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    return img.convert("RGB")  # L, 1, P, CMYK, YCbCr, LAB, HSV


def _from_array(arr: np.ndarray, name: str) -> np.ndarray:
    if arr.dtype != np.uint8:
        raise ImageLoadError(f"{name}: expected a uint8 image array, got dtype {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4) or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageLoadError(f"{name}: expected an HxW, HxWx1, HxWx3 (RGB) or HxWx4 (RGBA) array, got shape {arr.shape}")
    if arr.shape[2] == 1:
        return np.ascontiguousarray(np.repeat(arr, 3, axis=2))
    if arr.shape[2] == 4:
        return np.asarray(_to_rgb(Image.fromarray(np.ascontiguousarray(arr), "RGBA")))
    return np.ascontiguousarray(arr)


def _open(source: ImageSource, name: str) -> Image.Image:
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, (bytes, bytearray)):
        fp: object = io.BytesIO(source)
    else:
        path = Path(source)
        if not path.exists():
            raise InputNotFoundError(f"image not found: {path}")
        if path.is_dir():
            raise ImageLoadError(f"{name}: is a folder, not an image file")
        fp = path
    try:
        with warnings.catch_warnings():  # the size cap is checked by the caller
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(fp)
    except UnidentifiedImageError as exc:
        raise ImageLoadError(f"{name}: not an image file (or a format PIL cannot read)") from exc
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"{name}: image too large to decode safely ({exc})") from exc
    except OSError as exc:
        raise ImageLoadError(f"{name}: cannot open image: {exc}") from exc


def open_image(
    source: ImageSource,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    max_side: int | None = DEFAULT_MAX_SIDE,
) -> LoadedImage:
    """Read ``source`` (path, encoded bytes, PIL image, or uint8 array in RGB order) as RGB.

    EXIF orientation is applied; every mode (grey, palette, RGBA, CMYK, 16-bit) becomes RGB;
    images above ``max_pixels`` are refused with :class:`ImageTooLargeError` before decoding;
    images with a side above ``max_side`` are downscaled (``LoadedImage.scale`` < 1 says so).
    Unreadable, truncated or non-image files raise :class:`ImageLoadError`; a missing path raises
    ``FileNotFoundError``.
    """
    name = str(source) if isinstance(source, (str, os.PathLike)) else f"<{type(source).__name__}>"
    if isinstance(source, np.ndarray):
        rgb = _from_array(source, name)
        size = (rgb.shape[1], rgb.shape[0])
        img = None
    else:
        img = _open(source, name)
        w, h = img.size
        if w <= 0 or h <= 0:
            raise ImageLoadError(f"{name}: image has no pixels ({w}x{h})")
        if max_pixels is not None and w * h > max_pixels:
            raise ImageTooLargeError(
                f"{name}: {w}x{h} = {w * h / 1e6:.1f} MP exceeds the limit of {max_pixels / 1e6:.1f} MP"
            )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                img.seek(0)  # first frame of animations
                orientation = img.getexif().get(_EXIF_ORIENTATION, 1)
                if max_side is not None and img.format == "JPEG" and max(w, h) > 2 * max_side:
                    img.draft("RGB", (max(1, w * max_side // max(w, h)), max(1, h * max_side // max(w, h))))
                img.load()
                img = ImageOps.exif_transpose(img) or img
                img = _to_rgb(img)
                rgb = np.asarray(img)
        except Image.DecompressionBombError as exc:
            raise ImageTooLargeError(f"{name}: image too large to decode safely ({exc})") from exc
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            # PIL reports truncated data as OSError("image file is truncated ...").
            raise ImageLoadError(f"{name}: cannot decode image (corrupt or truncated file): {exc}") from exc
        # Size before any draft reduction, after EXIF rotation.
        size = (h, w) if orientation in (5, 6, 7, 8) else (w, h)
    scale = 1.0
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
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    max_side: int | None = DEFAULT_MAX_SIDE,
) -> np.ndarray:
    """Like :func:`open_image` but returns only the HxWx3 uint8 RGB array."""
    return open_image(source, max_pixels=max_pixels, max_side=max_side).image
