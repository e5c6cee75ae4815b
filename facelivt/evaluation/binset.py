"""Read and write insightface verification sets (``lfw.bin``, ``cfp_fp.bin``, ``agedb_30.bin``, ...).

A ``.bin`` file is a pickle of ``(list_of_encoded_images, list_of_bools)`` with two images per pair
(the insightface format). A file that is no pickle at all (a text file or an image under a ``.bin`` name) is
told so by its first bytes (:class:`NotAPickleError`), a cut-short one as truncated. A pickle can run
arbitrary code when loaded, so these files are read in two steps:

1. every opcode of the stream is checked against a whitelist that can only build lists, tuples,
   byte strings and booleans (no ``GLOBAL``/``STACK_GLOBAL``/``REDUCE``/``BUILD``/``INST``/``OBJ``/
   ``NEWOBJ``/extension/persistent-id opcodes: nothing can be imported or called);
2. only then is the stream unpickled, by an unpickler whose ``find_class`` and ``persistent_load``
   refuse everything (a second lock behind the first).

Admitted encodings of the data: Python 3 ``bytes`` (protocol >= 3), Python 2 ``str`` (read as
bytes), protocol-5 ``bytearray`` (read as bytes); bools as ``NEWTRUE``/``NEWFALSE`` or the
protocol-0/1 ``I01``/``I00`` form. Files whose labels were pickled as numpy bools, or whose bytes
were written by Python 3 with protocol < 3 (which goes through ``_codecs.encode``), need a global
and are refused: rewrite them with a trusted tool, or rebuild them with ``facelivt make-bin``.
"""
from __future__ import annotations

import io
import pickle
import pickletools
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np
from tqdm import tqdm

from facelivt.data.decode import decode_rgb
from facelivt.errors import FaceLiVTError, InvalidInputError, check_input_file
from facelivt.files import atomic_open

# Opcodes that cannot import, call or build anything but the admitted builtin containers.
_ADMITTED_OPCODES = frozenset(
    {
        # framing / control
        "PROTO", "FRAME", "STOP", "MARK",
        # lists and tuples
        "EMPTY_LIST", "LIST", "APPEND", "APPENDS",
        "EMPTY_TUPLE", "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3",
        # booleans (INT only when it encodes a bool, checked below)
        "NEWTRUE", "NEWFALSE", "INT",
        # byte strings: Python 3 bytes, Python 2 str, protocol-5 bytearray
        "BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8",
        "STRING", "BINSTRING", "SHORT_BINSTRING",
        # memo (references to already-built admitted objects)
        "PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE", "GET", "BINGET", "LONG_BINGET",
    }
)
# Text strings are harmless data but not an admitted type; when one is seen the scan goes on,
# so that the error can name the global a following STACK_GLOBAL would have imported.
_TEXT_OPCODES = frozenset({"UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8"})


class UnsafePickleError(FaceLiVTError, ValueError):
    """The file is a pickle that would build objects other than lists, tuples, bytes and bools."""


class NotAPickleError(FaceLiVTError, ValueError):
    """The file is no pickle at all (a text file, an image, ... under a ``.bin`` name)."""


class _NoObjectsUnpickler(pickle.Unpickler):
    """Unpickler that can import nothing (second line of defence after the opcode scan)."""

    def find_class(self, module: str, name: str):  # noqa: D401 - pickle API
        raise UnsafePickleError(f"refusing to import {module}.{name}: only lists, tuples, bytes and bools are admitted")

    def persistent_load(self, pid):  # noqa: D401 - pickle API
        raise UnsafePickleError("refusing a persistent id: only lists, tuples, bytes and bools are admitted")


def _is_pickle(data: bytes) -> bool:
    """Whether ``data`` is a pickle stream: protocol 2+ starts with the byte 0x80; a protocol 0/1
    stream (Python 2 era, no marker) must at least parse up to its STOP opcode. Nothing is executed."""
    if data[:1] == b"\x80":
        return True
    try:
        return any(op.name == "STOP" for op, _, _ in pickletools.genops(data))
    except Exception:  # genops raises ValueError / EOFError / struct errors on non-pickle bytes
        return False


def check_pickle_opcodes(data: bytes, source: str = "<bytes>") -> None:
    """Raise :class:`UnsafePickleError` unless every opcode of ``data`` is on the whitelist,
    :class:`NotAPickleError` if ``data`` is no pickle at all, ``ValueError`` if the pickle is
    truncated or corrupt. Nothing is executed."""
    if not _is_pickle(data):
        raise NotAPickleError(
            f"{source} is not a pickle file (a verification .bin is a pickle and starts with the protocol "
            f"byte 0x80; this file starts with {bytes(data[:16])!r})"
        )
    texts: list[str] = []
    deferred: str | None = None
    try:
        for op, arg, pos in pickletools.genops(data):
            name = op.name
            if name in _ADMITTED_OPCODES:
                if name == "INT" and not isinstance(arg, bool):
                    raise UnsafePickleError(
                        f"refusing to load {source}: it contains an integer ({arg!r}) at byte {pos}; "
                        "only lists, tuples, bytes and bools are admitted"
                    )
                continue
            if name in _TEXT_OPCODES:
                texts.append(str(arg))
                if deferred is None:
                    deferred = (
                        f"refusing to load {source}: it contains a text string ({str(arg)[:40]!r}, opcode {name}) "
                        f"at byte {pos}; only lists, tuples, bytes and bools are admitted"
                    )
                continue
            if name == "GLOBAL":
                what = f"the global {str(arg).replace(' ', '.')!r}"
            elif name == "STACK_GLOBAL" and len(texts) >= 2:
                what = f"the global {texts[-2] + '.' + texts[-1]!r}"
            else:
                what = f"an object (opcode {name})"
            hint = ""
            if "numpy" in what:
                hint = " (numpy values, e.g. numpy bools, are not admitted: store Python bools)"
            elif "_codecs" in what:
                hint = " (bytes pickled by Python 3 with protocol < 3: rewrite the file with protocol >= 3)"
            raise UnsafePickleError(
                f"refusing to load {source}: the pickle asks for {what} at byte {pos}{hint}; "
                "only lists, tuples, bytes and bools are admitted and no code of the file was run"
            )
    except UnsafePickleError:
        raise
    except Exception as exc:  # genops raises ValueError / EOFError / struct errors on garbage
        raise InvalidInputError(_broken(source, data, exc)) from None
    if deferred is not None:
        raise UnsafePickleError(deferred)


def safe_loads(data: bytes, source: str = "<bytes>") -> object:
    """Unpickle ``data`` admitting only lists, tuples, bytes (and bytearray, as bytes) and bools."""
    check_pickle_opcodes(data, source)
    try:
        return _NoObjectsUnpickler(io.BytesIO(data), encoding="bytes").load()
    except UnsafePickleError:
        raise
    except Exception as exc:
        raise InvalidInputError(_broken(source, data, exc)) from None


def _broken(source: str, data: bytes, exc: Exception) -> str:
    return (f"{source} is a pickle that is truncated or corrupt ({len(data)} bytes; {exc or type(exc).__name__}): "
            "copy or download it again, or rebuild it with `facelivt make-bin`")


@dataclass
class BinSet:
    """A verification set: encoded images (two per pair) and the pair labels."""

    images: list[bytes]
    issame: np.ndarray
    source: str = "<memory>"

    def __post_init__(self) -> None:
        self.issame = np.asarray(self.issame, dtype=bool).reshape(-1)
        if len(self.issame) == 0:
            raise InvalidInputError(f"{self.source} holds no pairs")
        if len(self.images) != 2 * len(self.issame):
            raise InvalidInputError(
                f"{self.source} has {len(self.images)} images but {len(self.issame)} pair labels: "
                "a verification set needs exactly 2 images per pair"
            )

    @property
    def num_pairs(self) -> int:
        return int(len(self.issame))

    @property
    def num_images(self) -> int:
        return len(self.images)

    def decode(self, index: int, size: int | None = 112) -> np.ndarray:
        """Image ``index`` as HxWx3 uint8 RGB, resized to ``size`` x ``size`` unless ``size`` is None."""
        return decode_image(self.images[index], size=size, what=f"image {index} of {self.source}")

    def iter_batches(self, batch_size: int, size: int | None = 112) -> Iterator[np.ndarray]:
        """Decoded images in order, ``batch_size`` at a time (NxHxWx3 uint8)."""
        if batch_size < 1:
            raise InvalidInputError(f"batch_size must be >= 1, got {batch_size}")
        for start in range(0, self.num_images, batch_size):
            stop = min(start + batch_size, self.num_images)
            yield np.stack([self.decode(i, size) for i in range(start, stop)])

    def decode_all(self, size: int | None = 112, progress: bool = False) -> np.ndarray:
        """All images as one NxHxWx3 uint8 array (``size`` must not be None unless all images share a size)."""
        it = range(self.num_images)
        if progress:
            it = tqdm(it, desc=f"decode {Path(self.source).name}", unit="img")
        out = [self.decode(i, size) for i in it]
        shapes = {im.shape for im in out}
        if len(shapes) != 1:
            raise InvalidInputError(f"images of {self.source} have different sizes {sorted(shapes)}: pass a size to resize them")
        return np.stack(out)


def decode_image(data: bytes, size: int | None = 112, what: str = "image") -> np.ndarray:
    """Encoded image bytes (JPEG/PNG/...) -> HxWx3 uint8 RGB, optionally resized to ``size`` x ``size``.

    Decoded by the project's one decoder (:mod:`facelivt.data.decode`: the pixel limit checked from
    the header first, every mode to RGB, alpha over white); ``ImageLoadError`` names ``what``."""
    if not isinstance(data, (bytes, bytearray, memoryview)) or len(data) == 0:
        raise InvalidInputError(f"{what} is empty or not a byte string")
    img = decode_rgb(data, name=what)
    if size is not None and img.shape[:2] != (size, size):
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_LINEAR)
    return img


def read_bin(path: str | Path) -> BinSet:
    """Read a ``.bin`` verification set safely (see module docstring); images stay encoded."""
    path = check_input_file(path, "verification set")
    data = path.read_bytes()
    if not data:
        raise InvalidInputError(f"{path} is empty")
    obj = safe_loads(data, source=str(path))
    if not isinstance(obj, (tuple, list)) or len(obj) != 2:
        raise InvalidInputError(f"{path} is not a verification set: expected a pair (images, labels), got {_describe(obj)}")
    images, issame = obj
    if not isinstance(images, (list, tuple)) or not isinstance(issame, (list, tuple)):
        raise InvalidInputError(f"{path} is not a verification set: expected two lists, got {_describe(images)} and {_describe(issame)}")
    for i, im in enumerate(images):
        if not isinstance(im, (bytes, bytearray)):
            raise InvalidInputError(f"{path}: entry {i} of the image list is {_describe(im)}, not encoded image bytes")
    for i, s in enumerate(issame):
        if not isinstance(s, bool):
            raise InvalidInputError(f"{path}: entry {i} of the label list is {_describe(s)}, not a bool")
    return BinSet([bytes(im) for im in images], np.array(issame, dtype=bool), source=str(path))


def load_bin(path: str | Path, image_size: int | None = 112, progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Read a ``.bin`` set: (uint8 Nx H x W x3 RGB images, N = 2 x pairs; bool issame of length pairs)."""
    bs = read_bin(path)
    return bs.decode_all(size=image_size, progress=progress), bs.issame.copy()


def write_bin(path: str | Path, images: Sequence[bytes], issame: Sequence[bool]) -> Path:
    """Write ``(list of encoded images, list of bools)`` as a ``.bin`` readable by insightface and :func:`read_bin`."""
    bs = BinSet([bytes(b) for b in images], np.asarray(issame, dtype=bool), source=str(path))
    for i, im in enumerate(bs.images):
        if not im:
            raise InvalidInputError(f"image {i} to write is empty")
    path = Path(path)
    payload = (list(bs.images), [bool(s) for s in bs.issame])
    with atomic_open(path, "wb") as f:  # a failed write leaves an earlier file of that name as it was
        pickle.dump(payload, f, protocol=4)
    return path


def _describe(obj: object) -> str:
    if isinstance(obj, (list, tuple)):
        return f"a {type(obj).__name__} of length {len(obj)}"
    return f"a {type(obj).__name__}"
