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
- :func:`reserve_file` for files written in place through a memory map: every block allocated up front.
- :func:`check_not_input` to refuse an output that is one of the command's inputs, before any work.
- :func:`cleanup_new_folders` so that a run which fails before writing leaves no empty output folder.
- :func:`scratch_dir` for intermediate files of a write (an ONNX graph before its checks): beside the
  output, on its file system, never under ``TMPDIR``.

Temporaries are named ``.NAME.facelivt-PID-XXXXXXXX.tmp`` (files and folders alike), PID being the
writer's process. A process killed with ``kill -9`` cannot remove its own; the first write of a later
process to that folder does (:func:`sweep_stale_temporaries`): those older than that process whose
PID no longer runs.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import IO, Any, Iterator, Mapping, Sequence

from facelivt.errors import InvalidInputError, OutputWriteError

log = logging.getLogger(__name__)

_UMASK: int | None = None
# When this process loaded this module (it started no later): a temporary older than this, whose
# writer's PID no longer runs, was left by a process that was killed.
_LOADED = time.time()
_TEMP_NAME = re.compile(r"^\..+\.facelivt-(?P<pid>\d+)-[a-z0-9_]+\.tmp$")
_SWEPT: set[str] = set()


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


def _temp_prefix(path: Path) -> str:
    """``.NAME.facelivt-PID-`` (NAME cut to 64 characters: a temporary of a temporary stays a valid name)."""
    return f".{path.name[:64]}.facelivt-{os.getpid()}-"


def _new_temp(path: Path) -> Path:
    sweep_stale_temporaries(path.parent)
    try:
        fd, name = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=str(path.parent))
    except OSError as exc:
        raise OutputWriteError(path, exc) from exc
    os.close(fd)
    return Path(name)


def sweep_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporaries in ``folder`` that a killed writer left (named as this module names them,
    older than this process, their writer's PID gone); once per folder and process. Returns them."""
    key = os.path.realpath(folder)
    if key in _SWEPT:
        return []
    _SWEPT.add(key)
    try:
        entries = [e for e in os.scandir(key) if _TEMP_NAME.match(e.name)]
    except OSError:
        return []  # no folder yet, or not readable: the write itself reports what matters
    stale = [Path(e.path) for e in entries if _is_stale(e)]
    for path in stale:
        _remove_stale(path)
        log.info("removed %s, left by a writer that was killed", path)
    return stale


def _is_stale(entry: os.DirEntry) -> bool:
    try:
        if entry.is_symlink() or entry.stat(follow_symlinks=False).st_mtime >= _LOADED:
            return False
    except OSError:
        return False
    return not _pid_runs(int(_TEMP_NAME.match(entry.name)["pid"]))


def _pid_runs(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it runs, as another user
        return True
    return True


def _remove_stale(path: Path) -> None:
    """Remove a stale temporary file or folder. A staging folder of :func:`atomic_dir` killed while
    swapping holds the earlier output as ``NAME.old``: put back where ``NAME`` is missing, not removed."""
    if not path.is_dir():
        _remove_quietly(path)
        return
    for old in path.glob("*.old"):
        target = path.parent / old.name[: -len(".old")]
        if not os.path.lexists(target):
            with contextlib.suppress(OSError):
                os.rename(old, target)
    shutil.rmtree(path, ignore_errors=True)


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


def _new_temp_dir(target: Path) -> Path:
    """A new hidden temporary folder beside ``target`` (its folder made, stale temporaries swept first)."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        sweep_stale_temporaries(target.parent)
        return Path(tempfile.mkdtemp(prefix=_temp_prefix(target), suffix=".tmp", dir=str(target.parent)))
    except OSError as exc:
        raise OutputWriteError(target, exc) from exc


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
    staging = _new_temp_dir(path)
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


@contextlib.contextmanager
def cleanup_new_folders(*outputs: str | os.PathLike | None) -> Iterator[None]:
    """When the block fails, remove the folders that it created for ``outputs`` (each output and its
    parents that did not exist when it began) and that hold no file at its end: a run refused before it
    wrote anything leaves no empty output folder. A folder that holds a file, or that existed before, stays.
    """
    created = [folder for out in outputs if out is not None for folder in _missing_folders(out)]
    try:
        yield
    except BaseException:
        for folder in created:  # deepest first
            _remove_if_no_file(folder)
        raise


def _missing_folders(path: str | os.PathLike) -> list[Path]:
    """``path`` and its parents that do not exist (symlinks and ``..`` resolved), the deepest first."""
    missing, p = [], Path(os.path.realpath(path))
    while not os.path.lexists(p) and p != p.parent:
        missing.append(p)
        p = p.parent
    return missing


def _remove_if_no_file(folder: Path) -> None:
    """Remove ``folder`` and its (empty) subfolders when no file lies anywhere in it."""
    if folder.is_symlink() or not folder.is_dir():
        return
    tree = []
    for dirpath, _, filenames in os.walk(folder):
        if filenames:
            return
        tree.append(dirpath)
    for dirpath in reversed(tree):
        with contextlib.suppress(OSError):  # something appeared meanwhile: it stays
            os.rmdir(dirpath)


def check_not_input(output: str | os.PathLike, inputs: Mapping[str, Any], *, inside_input: bool = False,
                    holds_input: bool = False) -> None:
    """Refuse, before any work, an ``output`` that is one of a command's ``inputs``: the same file or
    folder, also through a symlink, a hard link or ``..``.

    ``inputs``: the option (or argument) name -> its path, a list of paths, or None. Inputs that are not
    local files or folders (None, a pretrained name, an ``hf://`` or ``https://`` reference, a missing
    file) are skipped: nothing of theirs can be overwritten. ``inside_input``: ``output`` must not lie
    inside an input folder either (a command that reads its input folders whole would read its own
    output). ``holds_input``: the output folder must not hold an input (a command that fills or replaces
    that folder). Raises :class:`InvalidInputError`, one line naming both.
    """
    out = Path(output)
    for label, given in _named_inputs(inputs):
        reason = _overlap(out, Path(given), inside_input, holds_input)
        if reason is not None:
            raise InvalidInputError(f"refusing to write {output}: {reason} {label} {given}; choose another output")


def _named_inputs(inputs: Mapping[str, Any]) -> Iterator[tuple[str, str | os.PathLike]]:
    for label, value in inputs.items():
        for given in value if isinstance(value, (list, tuple)) else [value]:
            if given is not None and os.path.exists(given):
                yield label, given


def _overlap(out: Path, src: Path, inside_input: bool, holds_input: bool) -> str | None:
    if _same_node(out, src):
        return "it is the input"
    if inside_input and _lies_inside(out, src):
        return "it lies inside the input"
    if holds_input and _lies_inside(src, out):
        return "that folder holds the input"
    return None


def _node(path: str | os.PathLike) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _same_node(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` are one file or folder (its device and inode: symlinks, hard links and ``..`` included)."""
    node = _node(a)
    return node is not None and node == _node(b)


def _lies_inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` (which need not exist) lies inside the folder ``folder``, symlinks resolved."""
    node = _node(folder)
    if node is None or not folder.is_dir():
        return False
    return any(_node(parent) == node for parent in Path(os.path.realpath(path)).parents)


@contextlib.contextmanager
def scratch_dir(beside: str | os.PathLike) -> Iterator[Path]:
    """A hidden temporary folder beside the output ``beside``, for the intermediate files of writing it
    (on the output's file system: a full ``TMPDIR`` is no concern); removed on leaving the block.

    An ``OSError`` about a file in it becomes :class:`OutputWriteError` naming ``beside``."""
    target = Path(beside)
    folder = _new_temp_dir(target)
    try:
        yield folder
    except OutputWriteError:
        raise
    except OSError as exc:
        if exc.filename is None or not str(exc.filename).startswith(str(folder)):
            raise
        raise OutputWriteError(target, exc) from exc
    finally:
        shutil.rmtree(folder, ignore_errors=True)


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


def reserve_file(path: str | os.PathLike, size: int) -> None:
    """Make ``path`` a file of ``size`` bytes whose every block is allocated on disk, for files that
    are then written in place through a memory map (the teacher-embedding cache): a write through a
    map into a hole of a sparse file on a full disk kills the process with SIGBUS, with no message.

    ``os.posix_fallocate`` reserves the blocks (existing data stays; holes of an existing file are
    filled with zeros); where the file system or the platform does not support it, the file is
    extended by writing zeros. A full disk raises :class:`OutputWriteError` and leaves the file as it
    was: a file this call created is removed, an existing one keeps its size.
    """
    path = Path(path)
    _check_target(path)
    existed = path.exists()
    try:
        fd = os.open(str(path), os.O_RDWR | os.O_CREAT, _default_mode())
    except OSError as exc:
        raise OutputWriteError(path, exc) from exc
    old_size = os.fstat(fd).st_size
    try:
        try:
            os.posix_fallocate(fd, 0, size)
        except (AttributeError, OSError) as exc:
            if isinstance(exc, OSError) and exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise
            _extend_with_zeros(fd, old_size, size)
        os.fsync(fd)
    except OSError as exc:
        os.close(fd)
        if existed:
            with contextlib.suppress(OSError):
                os.truncate(path, old_size)
        else:
            _remove_quietly(path)
        raise OutputWriteError(path, exc) from exc
    os.close(fd)


def _extend_with_zeros(fd: int, start: int, size: int) -> None:
    zeros = bytes(1 << 20)
    os.lseek(fd, start, os.SEEK_SET)
    while start < size:
        start += os.write(fd, zeros[: min(len(zeros), size - start)])


#: Block size in which files are read to hash them.
HASH_BLOCK = 1 << 20


def hash_rest(f: IO[bytes], digest: Any) -> None:
    """Feed the rest of the open binary file ``f`` to ``digest`` (a hashlib object), block by block."""
    for block in iter(lambda: f.read(HASH_BLOCK), b""):
        digest.update(block)


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a file's bytes, read block by block (the one file hash of the project)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        hash_rest(f, digest)
    return digest.hexdigest()
