"""The one image decoder: photos (``facelivt.inference``), image folders, ``.bin`` pairs, RecordIO
records and the sources of ``make-bin`` and ``pack`` all become pixels through :func:`decode`.

The policy, the same on every path:

* The pixel count is read from the image header (Pillow opens files lazily) and an image above the
  limit is refused with :class:`ImageTooLargeError` before any pixel is decoded. The limit is the
  ``max_pixels`` argument when given, else ``$FACELIVT_MAX_PIXELS``, else :data:`DEFAULT_MAX_PIXELS`
  (80 MP). Pillow's own decompression-bomb limit (twice ``PIL.Image.MAX_IMAGE_PIXELS``) applies
  above that.
* The first frame, with its EXIF orientation applied.
* Every mode becomes ``uint8`` RGB: grey, palette, CMYK, ... by Pillow's conversion; 16- and 32-bit
  integer and float grey are scaled to 0..255 (values up to 255 are kept as they are, 16-bit ranges
  are divided by 257, wider ones by their maximum; float in 0..1 is multiplied by 255); transparency
  (RGBA, LA, PA, a palette's transparent colour) is composited over :data:`BACKGROUND`, white, so a
  fully transparent image is white whatever its hidden colour channels hold.

Arrays carry no colour order: the decoder takes them as RGB (RGBA), the order of
``np.asarray(PIL.Image)``. An OpenCV ``cv2.imread`` array is BGR: :func:`rgb_order` turns a
``color="bgr"`` array into RGB first (the public API, :mod:`facelivt.inference.api`, does so for
every array it is given, BGR by default).

An image that cannot be used raises :class:`ImageLoadError` (a ``ValueError``) naming it; a missing
path raises :class:`facelivt.errors.InputNotFoundError` (a ``FileNotFoundError``).
"""
from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Union

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from facelivt.errors import InputNotFoundError, InvalidInputError

#: Images with more pixels than this are refused before decoding (decompression bombs, scans).
DEFAULT_MAX_PIXELS = 80_000_000
#: The environment variable that sets the pixel limit of every path (a positive integer).
MAX_PIXELS_ENV = "FACELIVT_MAX_PIXELS"
#: Transparent pixels are composited over this colour.
BACKGROUND = (255, 255, 255)

_EXIF_ORIENTATION = 0x0112
_BLOCK_PIXELS = 1 << 22  # grey scaling works on row blocks of about this many pixels

ImageSource = Union[str, os.PathLike, bytes, bytearray, memoryview, Image.Image, np.ndarray]

#: The channel orders an image array may be given in.
COLORS = ("bgr", "rgb")
Color = Literal["bgr", "rgb"]


class ImageLoadError(InvalidInputError):
    """An image could not be read or used (not an image, truncated, too large, bad array)."""


class ImageTooLargeError(ImageLoadError):
    """An image has more pixels than the limit."""


@dataclass
class Decoded:
    """A decoded image: ``image`` (HxWx3 uint8 RGB) and its ``(width, height)`` after EXIF rotation,
    before any draft reduction."""

    image: np.ndarray
    original_size: tuple[int, int]


def max_pixels_limit(max_pixels: int | None = None) -> int:
    """The pixel limit: ``max_pixels`` when given, else ``$FACELIVT_MAX_PIXELS``, else the default."""
    if max_pixels is None:
        text = os.environ.get(MAX_PIXELS_ENV, "").strip().replace("_", "")
        if not text:
            return DEFAULT_MAX_PIXELS
        if not text.isdigit() or int(text) < 1:
            raise InvalidInputError(f"{MAX_PIXELS_ENV} must be a positive whole number of pixels, got {text!r}")
        return int(text)
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, (int, np.integer)) or max_pixels < 1:
        raise InvalidInputError(f"max_pixels must be a positive whole number of pixels, got {max_pixels!r}")
    return int(max_pixels)


def source_name(source: ImageSource) -> str:
    """How errors name ``source``: the path, or ``<bytes>``, ``<Image>``, ``<ndarray>``."""
    return str(source) if isinstance(source, (str, os.PathLike)) else f"<{type(source).__name__}>"


def _amount(pixels: int) -> str:
    return f"{pixels / 1e6:.1f} MP" if pixels >= 100_000 else f"{pixels} pixels"


def _bomb(name: str, limit: int, exc: Exception) -> ImageTooLargeError:
    """The error for an image Pillow itself refuses to open (more than twice its MAX_IMAGE_PIXELS)."""
    cap = 2 * (Image.MAX_IMAGE_PIXELS or 0)
    if cap and limit > cap:
        why = f"above Pillow's decompression-bomb limit of {_amount(cap)}, which ${MAX_PIXELS_ENV} cannot raise"
    else:
        why = f"above the limit of {_amount(limit)} (${MAX_PIXELS_ENV} sets it)"
    return ImageTooLargeError(f"{name}: too large to decode safely, {why}; Pillow: {exc}")


def _open(source: ImageSource, name: str, limit: int) -> Image.Image:
    """Pillow's lazy open: the header is read, no pixel is decoded."""
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise ImageLoadError(f"{name} could not be decoded: it is empty")
        fp: object = io.BytesIO(source)
    else:
        path = Path(source)
        if not path.exists():
            raise InputNotFoundError(f"image not found: {path}")
        if path.is_dir():
            raise ImageLoadError(f"{name}: is a folder, not an image file")
        fp = path
    try:
        with warnings.catch_warnings():  # the limit is checked by the caller
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(fp)
    except UnidentifiedImageError:
        raise ImageLoadError(f"{name} could not be decoded: not an image (or a format Pillow cannot read)") from None
    except Image.DecompressionBombError as exc:
        raise _bomb(name, limit, exc) from None
    except OSError as exc:
        raise ImageLoadError(f"{name} could not be opened: {exc}") from None


def check_size(width: int, height: int, name: str, limit: int) -> None:
    """ImageLoadError for an image without pixels, ImageTooLargeError for one above ``limit``."""
    if width <= 0 or height <= 0:
        raise ImageLoadError(f"{name}: image has no pixels ({width}x{height})")
    if width * height > limit:
        raise ImageTooLargeError(
            f"{name}: {width}x{height} = {_amount(width * height)} exceeds the limit of {_amount(limit)} "
            f"(${MAX_PIXELS_ENV} sets it)"
        )


def _scaled_grey(img: Image.Image) -> np.ndarray:
    """A 16-/32-bit integer or float grey image as uint8, scaled block by block (bounded memory)."""
    arr = np.asarray(img)
    if arr.dtype.kind == "f":
        top = float(np.max(arr, initial=0.0, where=np.isfinite(arr)))
    else:
        top = float(arr.max(initial=0))
    factor = 1.0
    if img.mode == "F" and top <= 1.0:
        factor = 255.0
    elif top > 255.0:
        factor = 255.0 / (65535.0 if top <= 65535.0 else top)
    out = np.empty(arr.shape, np.uint8)
    step = max(1, _BLOCK_PIXELS // max(1, arr.shape[1]))
    for row in range(0, arr.shape[0], step):
        block = np.nan_to_num(arr[row:row + step].astype(np.float64) * factor, nan=0.0, posinf=255.0, neginf=0.0)
        out[row:row + step] = np.clip(np.rint(block), 0, 255)
    return out


def to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode as an RGB image; transparent pixels are composited over :data:`BACKGROUND`."""
    mode = img.mode
    if mode in ("P", "L", "RGB") and "transparency" in img.info:  # a transparent index or colour key
        img, mode = img.convert("RGBA"), "RGBA"
    if mode == "RGB":
        return img
    if mode in ("RGBA", "LA", "RGBa", "La", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode in ("I", "F") or mode.startswith("I;16"):
        return Image.fromarray(_scaled_grey(img), "L").convert("RGB")
    return img.convert("RGB")  # L, 1, P, CMYK, YCbCr, ...


def from_array(arr: np.ndarray, name: str) -> np.ndarray:
    """A uint8 HxW / HxWx1 / HxWx3 (RGB) / HxWx4 (RGBA) array as HxWx3 RGB, alpha composited."""
    if arr.dtype != np.uint8:
        raise ImageLoadError(f"{name}: expected a uint8 image array (0..255), got dtype {arr.dtype}; "
                             "convert it first, e.g. (img * 255).astype(np.uint8) for floats in 0..1")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4) or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageLoadError(f"{name}: expected an HxW, HxWx1, HxWx3 (RGB) or HxWx4 (RGBA) array, got shape {arr.shape}")
    if arr.shape[2] == 1:
        return np.ascontiguousarray(np.repeat(arr, 3, axis=2))
    if arr.shape[2] == 4:
        return np.asarray(to_rgb(Image.fromarray(np.ascontiguousarray(arr), "RGBA")))
    return np.ascontiguousarray(arr)


def check_color(color: str) -> str:
    """``color`` when it names a channel order of :data:`COLORS`, else :class:`InvalidInputError`."""
    if color not in COLORS:
        raise InvalidInputError(f"color must be 'bgr' (OpenCV, cv2.imread) or 'rgb' (PIL, matplotlib), got {color!r}")
    return color


def rgb_order(source: ImageSource, color: str) -> ImageSource:
    """``source`` with an array's channels in RGB order: a ``color="bgr"`` HxWx3 (BGR) or HxWx4 (BGRA)
    array is reversed to RGB (RGBA); grey arrays, ``"rgb"`` arrays and every other source (a path,
    bytes, a PIL image: their files say their order) are returned as they are. Bad arrays raise
    :class:`ImageLoadError` naming the problem."""
    check_color(color)
    if not isinstance(source, np.ndarray) or color == "rgb":
        return source
    if source.dtype != np.uint8:
        raise ImageLoadError(f"<ndarray>: expected a uint8 image array (0..255), got dtype {source.dtype}; "
                             "convert it first, e.g. (img * 255).astype(np.uint8) for floats in 0..1")
    if source.ndim == 3 and source.shape[2] in (3, 4):
        order = [2, 1, 0, 3][: source.shape[2]]
        return np.ascontiguousarray(source[:, :, order])
    return source


def _plain_jpeg(img: Image.Image, source: ImageSource, orientation: int, drafted: bool) -> np.ndarray | None:
    """The pixels of an 8-bit grey or RGB JPEG file or bytes without EXIF rotation, decoded by OpenCV
    (the same libjpeg-turbo pixels as Pillow's, in about half the time: the bulk of every data set);
    None for any other image, which Pillow decodes."""
    if img.format != "JPEG" or img.mode not in ("L", "RGB") or orientation != 1 or drafted:
        return None
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = np.frombuffer(source, np.uint8)
    elif isinstance(source, Image.Image) or img.fp is None:
        return None
    else:
        img.fp.seek(0)
        data = np.frombuffer(img.fp.read(), np.uint8)
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if bgr is None or bgr.shape[:2] != (img.size[1], img.size[0]):
        return None  # let Pillow decode it and say what is wrong
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB, dst=bgr)


def _pixels(img: Image.Image, source: ImageSource, name: str, draft_side: int | None) -> Decoded:
    """Decode an opened image whose size was checked: first frame, EXIF rotation, RGB."""
    w, h = img.size
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img.seek(0)  # first frame of animations
            orientation = img.getexif().get(_EXIF_ORIENTATION, 1)
            drafted = draft_side is not None and img.format == "JPEG" and max(w, h) > 2 * draft_side
            rgb = _plain_jpeg(img, source, orientation, drafted)
            if rgb is None:
                if drafted:
                    img.draft("RGB", (max(1, w * draft_side // max(w, h)), max(1, h * draft_side // max(w, h))))
                img.load()
                if orientation in (2, 3, 4, 5, 6, 7, 8):
                    img = ImageOps.exif_transpose(img) or img
                rgb = np.asarray(to_rgb(img))
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"{name}: too large to decode safely: {exc}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # Pillow reports truncated data as OSError("image file is truncated ...").
        raise ImageLoadError(f"{name} could not be decoded (corrupt or truncated file): {exc}") from None
    size = (h, w) if orientation in (5, 6, 7, 8) else (w, h)
    return Decoded(np.ascontiguousarray(rgb, dtype=np.uint8), size)


def decode(
    source: ImageSource,
    *,
    name: str | None = None,
    max_pixels: int | None = None,
    draft_side: int | None = None,
) -> Decoded:
    """Decode ``source`` (a path, encoded bytes, a Pillow image, or a uint8 array in RGB order) as RGB
    under the policy of this module. ``name`` names it in errors (default: the path, or the type);
    ``max_pixels``: the limit (default: :func:`max_pixels_limit`); ``draft_side``: a JPEG larger than
    twice this side may be decoded at a reduced scale (photos that are downscaled anyway)."""
    name = source_name(source) if name is None else name
    if isinstance(source, np.ndarray):
        rgb = from_array(source, name)
        return Decoded(rgb, (rgb.shape[1], rgb.shape[0]))
    limit = max_pixels_limit(max_pixels)
    img = _open(source, name, limit)
    try:
        check_size(*img.size, name, limit)
        return _pixels(img, source, name, draft_side)
    finally:
        if img is not source:
            img.close()


def decode_rgb(source: ImageSource, *, name: str | None = None, max_pixels: int | None = None) -> np.ndarray:
    """Like :func:`decode` but returns only the HxWx3 uint8 RGB array."""
    return decode(source, name=name, max_pixels=max_pixels).image
