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
- :func:`atomic_paths` for files that belong together (a RecordIO ``.rec`` and its ``.idx``): all are
  written and fsynced before the first is renamed.
- :func:`atomic_dir` for outputs that are folders (a Core ML ``.mlpackage``).
- :func:`new_path` for a file that must not replace one (the first of several writers wins).
- :func:`check_writable` to fail before long work when the output cannot be written at all.
"""
from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator, Sequence

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
    with atomic_paths(path, mode=mode) as (tmp,):
        yield tmp


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


def _new_temp(path: Path) -> Path:
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    except OSError as exc:
        raise OutputWriteError(path, exc) from exc
    os.close(fd)
    return Path(name)


def _write_error(targets: Sequence[Path], temps: Sequence[Path], exc: OSError) -> OutputWriteError:
    """``exc`` as an OutputWriteError naming the target whose temporary failed (else the first).

    An OutputWriteError about one of the temporaries (a nested atomic write into it) is renamed to
    its target: the user never sees the temporary's name."""
    if isinstance(exc, OutputWriteError):
        for target, tmp in zip(targets, temps):
            if exc.path == str(tmp):
                return OutputWriteError(target, exc.cause)
        return exc
    failed = str(exc.filename) if exc.filename else None
    for target, tmp in zip(targets, temps):
        if failed in (str(tmp), str(target)):
            return OutputWriteError(target, exc)
    return OutputWriteError(targets[0], exc)


@contextlib.contextmanager
def atomic_paths(*paths: str | os.PathLike, mode: int | None = None) -> Iterator[list[Path]]:
    """Temporary paths beside each of ``paths``, committed together: all are fsynced, then renamed in
    the order given.

    Any failure while writing or syncing removes every temporary and leaves all of ``paths`` as
    they were. Only a crash during the renames themselves (no data is written then) can leave some
    of the set renamed and others not.
    """
    targets = [Path(p) for p in paths]
    for target in targets:
        _check_target(target)
    temps: list[Path] = []
    try:
        for target in targets:
            temps.append(_new_temp(target))
        yield list(temps)
        for tmp in temps:
            os.chmod(tmp, _default_mode() if mode is None else mode)
            _fsync_file(tmp)
        for tmp, target in zip(temps, targets):
            os.replace(tmp, target)
    except OSError as exc:
        for tmp in temps:
            _remove_quietly(tmp)
        error = _write_error(targets, temps, exc)
        if error is exc:
            raise
        raise error from exc
    except BaseException:
        for tmp in temps:
            _remove_quietly(tmp)
        raise
    for folder in dict.fromkeys(t.parent for t in targets):
        fsync_dir(folder)


@contextlib.contextmanager
def new_path(path: str | os.PathLike) -> Iterator[Path]:
    """Like :func:`atomic_path` for a file that must not exist yet: on success the temporary is fsynced
    and hard-linked to ``path``, never replacing a file there. ``FileExistsError`` when one appeared
    meanwhile (another writer made it first). The temporary is removed in every case, so a failure
    leaves nothing behind; a file system without hard links fails with :class:`OutputWriteError`."""
    target = Path(path)
    _check_target(target)
    tmp = _new_temp(target)
    try:
        try:
            yield tmp
            os.chmod(tmp, _default_mode())
            _fsync_file(tmp)
            os.link(tmp, target)
        except FileExistsError as exc:
            if exc.filename2 == str(target):  # from the link: another writer's file is there
                raise
            raise _write_error([target], [tmp], exc) from exc
        except OSError as exc:
            error = _write_error([target], [tmp], exc)
            if error is exc:
                raise
            raise error from exc
    finally:
        _remove_quietly(tmp)
    fsync_dir(target.parent)


def _fsync_tree(root: Path) -> None:
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            _fsync_file(Path(dirpath) / name)
        fsync_dir(dirpath)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a path with the same name as ``path`` inside a hidden staging folder beside it; write a
    folder (or file) there. On success it is fsynced and takes the place of ``path``.

    An existing folder at ``path`` is moved aside, the new one renamed in, then the old one removed;
    on any failure before that the old folder is untouched and the staging folder is removed.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputWriteError(path, NotADirectoryError(errno.ENOTDIR, "a file is in the way of the output folder", str(path)))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent)))
    except OSError as exc:
        raise OutputWriteError(path, exc) from exc
    try:
        yield staging / path.name
        built = staging / path.name
        if not built.exists():
            raise FileNotFoundError(errno.ENOENT, "nothing was written", str(built))
        _fsync_tree(built)
        _swap_in(built, path, staging)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, OutputWriteError) and not exc.path.startswith(str(staging)):
            raise
        raise OutputWriteError(path, getattr(exc, "cause", exc)) from exc
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(staging, ignore_errors=True)
    fsync_dir(path.parent)


def _swap_in(built: Path, path: Path, staging: Path) -> None:
    """Rename ``built`` to ``path``; an existing ``path`` is moved into ``staging`` first (put back on failure)."""
    if not path.exists():
        os.rename(built, path)
        return
    old = staging / f"{path.name}.old"
    os.rename(path, old)
    try:
        os.rename(built, path)
    except OSError:
        os.rename(old, path)
        raise


def check_writable(path: str | os.PathLike) -> None:
    """Raise :class:`OutputWriteError` now if ``path`` cannot be written at all (a folder in the way,
    a parent that cannot be created, no permission to create files there), before long work.

    Creates the parent folders. Free space is not checked: a full disk still fails at the write,
    which then leaves the old file as it was.
    """
    path = Path(path)
    _check_target(path)
    tmp = _new_temp(path)
    _remove_quietly(tmp)
