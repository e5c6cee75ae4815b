"""Atomic file output: every file the project writes goes through here.

A file is written to a temporary file with a unique name in the same folder, flushed and
fsynced, then renamed over the final name with ``os.replace`` (atomic on POSIX). On any failure
the temporary file is removed. So an existing output is never damaged and no partial file is
ever left under the final name, whether the disk fills up, the process is killed, or two
writers race (the last rename wins, each file whole).

Errors become :class:`facelivt.errors.OutputWriteError` naming the path (ENOSPC, EACCES, EISDIR, ...).

- :func:`atomic_path` for libraries that write to a path (``onnx.save``, ``torch.jit.save``,
  ``savefig``, safetensors): it yields the temporary path to write to.
- :func:`atomic_open` for writing through a file object.
- :func:`write_text`, :func:`write_bytes`, :func:`write_json` for whole contents.
"""
from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator

from facelivt.errors import OutputWriteError

log = logging.getLogger(__name__)

_UMASK: int | None = None


def _default_mode() -> int:
    """0o666 less the process umask: the mode ``open()`` would give a new file."""
    global _UMASK
    if _UMASK is None:
        _UMASK = os.umask(0)
        os.umask(_UMASK)
    return 0o666 & ~_UMASK


def fsync_dir(path: str | os.PathLike) -> None:
    """fsync a folder so that a rename in it survives a power cut (best effort)."""
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _check_target(path: Path) -> None:
    if path.is_dir():
        raise OutputWriteError(path, IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path)))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputWriteError(path, exc) from exc


def _fsync_file(path: Path) -> None:
    fd = os.open(str(path), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:  # pragma: no cover - nothing more can be done
        log.warning("could not remove temporary file %s: %s", path, exc)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, mode: int | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is fsynced and renamed to ``path``.

    Any exception inside the block removes the temporary file and leaves ``path`` as it was;
    an ``OSError`` is re-raised as :class:`OutputWriteError`. ``mode`` defaults to what
    ``open()`` would create (0o666 less the umask), not the 0600 of ``mkstemp``.
    """
    path = Path(path)
    _check_target(path)
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    except OSError as exc:
        raise OutputWriteError(path, exc) from exc
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, _default_mode() if mode is None else mode)
        _fsync_file(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        _remove_quietly(tmp)
        if isinstance(exc, OutputWriteError):
            raise
        raise OutputWriteError(path, exc) from exc
    except BaseException:
        _remove_quietly(tmp)
        raise
    fsync_dir(path.parent)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8", **kwargs) -> Iterator[IO]:
    """``open(path, mode)`` that writes to a temporary file and renames it into place on success."""
    if mode not in ("w", "wb", "x", "xb"):
        raise ValueError(f"atomic_open writes whole files: mode 'w' or 'wb', not {mode!r}")
    binary = "b" in mode
    with atomic_path(path) as tmp:
        with open(tmp, "wb" if binary else "w", encoding=None if binary else encoding, **kwargs) as f:
            yield f
            f.flush()


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    with atomic_open(path, "w", encoding=encoding) as f:
        f.write(text)


def write_json(path: str | os.PathLike, obj: Any, indent: int | None = 1, allow_nan: bool = False, **kwargs) -> None:
    """JSON to ``path`` atomically. NaN and infinity are refused unless ``allow_nan`` (they are not JSON)."""
    text = json.dumps(obj, indent=indent, allow_nan=allow_nan, ensure_ascii=False, **kwargs) + "\n"
    write_text(path, text)
