"""Reading weight files by what they hold, not by their name, and ``torch.load`` that refuses code clearly.

:func:`sniff_format` looks at the first bytes of a file:

- safetensors: an 8-byte little-endian header length, then the JSON header, which starts with ``{``;
- a torch checkpoint as ``torch.save`` writes it since PyTorch 1.6: a zip archive (``PK``);
- a legacy torch checkpoint (or a bare pickle): the pickle protocol byte ``0x80``.

:func:`safe_torch_load` is ``torch.load(weights_only=True)`` whose refusal of a pickle that asks
to import or call something reads as a refusal (naming what it asks for), instead of torch's advice
to re-run with ``weights_only=False``, which would run that code. Both the model weights
(:mod:`facelivt.models.weights`) and the training checkpoints use it. A file it cannot read that
starts as a ``.bin`` verification set does (:func:`looks_like_binset`) is named as one.
"""
from __future__ import annotations

import io
import os
import pickle
import pickletools
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from facelivt.errors import FaceLiVTError

SAFETENSORS = "safetensors"
TORCH_ZIP = "torch-zip"
TORCH_PICKLE = "torch-pickle"

_MAX_SAFETENSORS_HEADER = 100 << 20  # the safetensors format caps its JSON header at 100 MB
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
# What torch's weights-only unpickler names when it refuses (torch/_weights_only_unpickler.py).
_ASKS = (
    (re.compile(r"GLOBAL (\S+?)\.? (?:was not an allowed global|whose module)"), "it asks to run code: {}"),
    (re.compile(r"call reduce for unrecognized function (.+?)(?: which belongs to|\n|$)"), "it asks to call {}"),
    (re.compile(r"(?:create new object|build) .*but got (.+?)(?:\n|$)"), "it asks to build {}"),
)


class WeightsFormatError(FaceLiVTError, ValueError):
    """A file is neither safetensors nor a torch checkpoint."""


class CheckpointReadError(FaceLiVTError, ValueError):
    """A torch checkpoint could not be read (corrupt or truncated)."""


class UnsafeCheckpointError(FaceLiVTError, ValueError):
    """A torch checkpoint that asks to import or call code: refused, nothing of it was run."""


def sniff_format(path: str | os.PathLike) -> str:
    """:data:`SAFETENSORS`, :data:`TORCH_ZIP` or :data:`TORCH_PICKLE`, from the first bytes of ``path``.

    Raises :class:`WeightsFormatError` (naming the first bytes) for anything else, e.g. a text file."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(16)
    if not head:
        raise WeightsFormatError(f"{path} is empty: not a weights file")
    if len(head) > 8 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") <= _MAX_SAFETENSORS_HEADER:
        return SAFETENSORS
    if head[:4] in _ZIP_MAGIC:
        return TORCH_ZIP
    if head[:1] == b"\x80":
        return TORCH_PICKLE
    raise WeightsFormatError(
        f"{path} is neither a safetensors file nor a torch checkpoint (it starts with {head!r}; safetensors "
        "starts with an 8-byte header length and '{', a torch checkpoint with 'PK' or the pickle byte 0x80)"
    )


def _pickle_bytes(path: Path) -> bytes:
    """The pickle stream(s) of a checkpoint: ``data.pkl`` of a zip checkpoint, else the whole file."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            names = [n for n in z.namelist() if n.endswith("data.pkl")]
            return z.read(names[0]) if names else b""
    return path.read_bytes()


def _globals_asked(path: Path, limit: int = 8) -> list[str]:
    """``module.name`` of every global the pickles of ``path`` import (read, never run). A legacy torch
    file holds several pickles one after the other; the scan stops at the first damaged byte."""
    found: list[str] = []
    try:
        stream = io.BytesIO(_pickle_bytes(path))
        for _ in range(limit):
            texts: list[str] = []
            for op, arg, _pos in pickletools.genops(stream):
                if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"):
                    texts.append(str(arg))
                elif op.name == "GLOBAL":
                    found.append(str(arg).replace(" ", "."))
                elif op.name == "STACK_GLOBAL" and len(texts) >= 2:
                    found.append(f"{texts[-2]}.{texts[-1]}")
            if stream.tell() >= len(stream.getbuffer()):
                break
    except Exception:  # a damaged stream: what was found so far is all there is
        pass
    return found


def _refusal(message: str, path: Path) -> str | None:
    """What a weights-only refusal says the file asks for, or None when ``message`` is no refusal.

    torch names the global it refuses; where it stops earlier (an opcode it does not read), the
    globals of the pickle are read without running them, and the first one torch.save does not
    write (anything outside ``torch`` and ``collections``) is named."""
    for pattern, phrase in _ASKS:
        m = pattern.search(message)
        if m:
            return phrase.format(m.group(1).strip())
    foreign = [g for g in _globals_asked(path) if g.split(".")[0] not in ("torch", "collections", "_codecs")]
    return f"it asks to run code: {foreign[0]}" if foreign else None


def _detail(exc: Exception) -> str:
    """The gist of a torch.load error: its own words, without torch's advice to load unsafely."""
    parts = [p.strip() for p in str(exc).split("\n\n") if p.strip() and not p.strip().startswith("Check the documentation")]
    text = parts[-1] if parts else ""
    text = text.split("WeightsUnpickler error:")[-1].strip()
    if "weights_only" in text:  # only torch's advice is left
        text = ""
    if isinstance(exc, EOFError) and not text:
        return "the file ends too early"
    return text.split(". ")[0][:200] or type(exc).__name__


# The opcodes before the first image of an insightface ``.bin`` set: ``([image bytes, ...], [bools])``.
_BINSET_PRELUDE = frozenset({"PROTO", "FRAME", "MARK", "EMPTY_LIST", "EMPTY_TUPLE", "PUT", "BINPUT",
                             "LONG_BINPUT", "MEMOIZE"})
_BINSET_BYTES = frozenset({"BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8", "BINSTRING", "SHORT_BINSTRING"})
_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")  # JPEG, PNG


def looks_like_binset(path: str | os.PathLike) -> bool:
    """Whether ``path`` starts as a ``.bin`` verification set does: a pickle of lists whose first item
    is an encoded JPEG or PNG image (read, never run; a torch checkpoint starts with a number)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4 << 20)
        for op, arg, _pos in pickletools.genops(io.BytesIO(head)):
            if op.name in _BINSET_BYTES:  # pickletools gives Python 2's str as latin-1 text
                data = arg.encode("latin-1") if isinstance(arg, str) else bytes(arg)
                return data.startswith(_IMAGE_MAGIC)
            if op.name not in _BINSET_PRELUDE:
                return False
    except Exception:  # not a pickle, or the first image lies beyond the bytes read
        pass
    return False


def _unreadable(path: Path, what: str, exc: Exception) -> FaceLiVTError:
    """The error for a torch file that cannot be read: a ``.bin`` set is named as one, else corrupt."""
    if looks_like_binset(path):
        return WeightsFormatError(
            f"{path} is not a weights file or checkpoint: it looks like a .bin verification set (a pickle of "
            "encoded face images and pair labels; `facelivt eval --bin` reads those)")
    return CheckpointReadError(f"cannot read {what} {path}: corrupt or truncated? ({_detail(exc)})")


def safe_torch_load(path: str | os.PathLike, what: str = "checkpoint", mmap: bool = False) -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)`` with errors for people.

    A pickle that asks to import, call or build anything but tensors and plain containers raises
    :class:`UnsafeCheckpointError` (no code of the file runs); a corrupt or truncated file raises
    :class:`CheckpointReadError`. ``what`` names the file in messages ("checkpoint", "weights").
    ``mmap``: map the file instead of reading it (tensors are paged in when used)."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol")  # noise: the error says it
            if mmap:  # torch maps only a named file
                return torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
            # A file object, not the path: torch.load would take any "*.safetensors" name for safetensors.
            with open(path, "rb") as f:
                return torch.load(f, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        asks = _refusal(str(exc), path)
        if asks is not None:
            raise UnsafeCheckpointError(
                f"refusing to load {path} as unsafe: it is not a plain-tensor {what} ({asks}); "
                "facelivt never unpickles arbitrary objects"
            ) from None
        raise _unreadable(path, what, exc) from None
    except OSError:
        raise
    except Exception as exc:  # zip, EOF and struct errors of a damaged file
        raise _unreadable(path, what, exc) from None
