"""One training run per output folder: an exclusive lock on ``<output>/train.lock``.

The lock is a kernel ``flock`` on the file, so it is released the moment its process ends, however
it ends (a ``kill -9`` or a crash included): a lock left by a killed run is never in the way. The
file also holds the owner's PID and host, for the "in use by PID N" message; a run that ends
normally removes it, so a file found with a PID in it but no lock on it was left by a run that was
killed (the next run logs that it took the folder over). Under torchrun only rank 0 takes the lock: the
processes of one run share the folder; a second run's rank 0 finds the lock held and every rank of
that run stops with the same message.
"""
from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from facelivt.errors import FaceLiVTError, OutputWriteError

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks here
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

LOCK_NAME = "train.lock"


class OutputInUseError(FaceLiVTError, RuntimeError):
    """Another process is training into the same output folder."""


@dataclass(frozen=True)
class LockOwner:
    pid: int
    host: str

    def describe(self) -> str:
        here = socket.gethostname()
        return f"PID {self.pid}" + ("" if self.host in ("", here) else f" on {self.host}")


def _parse_owner(text: str) -> Optional[LockOwner]:
    parts = text.split()
    if not parts or not parts[0].isdigit():
        return None
    return LockOwner(int(parts[0]), parts[1] if len(parts) > 1 else "")


class OutputLock:
    """Exclusive lock of a run folder. ``acquire()`` raises :class:`OutputInUseError` when held;
    ``stale`` is the owner recorded by a previous run that ended without releasing it (None otherwise)."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._fd: Optional[int] = None
        self.stale: Optional[LockOwner] = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> "OutputLock":
        if self._fd is not None:
            return self
        if fcntl is None:  # pragma: no cover
            log.warning("no file locking on this platform: nothing stops two runs sharing %s", self.folder)
            return self
        for _ in range(100):
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = _parse_owner(_read(fd))
                os.close(fd)
                who = owner.describe() if owner else "another process"
                raise OutputInUseError(
                    f"output folder {self.folder} is in use by {who} (another `facelivt train` writing there); "
                    "wait for it to end, stop it, or choose another output=..."
                ) from None
            if self._still_there(fd):
                break
            os.close(fd)  # its owner removed the file while releasing it: lock the new one
        else:  # pragma: no cover - a hundred runs starting and ending under our feet
            raise OutputInUseError(f"output folder {self.folder} keeps changing hands; try again")
        self.stale = _parse_owner(_read(fd))
        try:
            _write_owner(fd)
        except OSError as exc:  # e.g. a full disk: the flock holds all the same, only the PID is not shown
            log.debug("cannot record the owner in %s: %s", self.path, exc)
        self._fd = fd
        if self.stale is not None:
            log.warning("%s: taking over the lock of %s, which ended without releasing it (killed?)", self.folder, self.stale.describe())
        return self

    def _open(self) -> int:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise OutputWriteError(self.path, exc) from exc

    def _still_there(self, fd: int) -> bool:
        """Whether the locked file is the one at ``path`` (a releasing owner unlinks it)."""
        try:
            here, locked = os.stat(self.path), os.fstat(fd)
        except FileNotFoundError:
            return False
        return (here.st_dev, here.st_ino) == (locked.st_dev, locked.st_ino)

    def release(self) -> None:
        """Remove the lock file and unlock (in this order, so a run waiting on the old file retries)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.unlink(self.path)
        except OSError:
            pass
        finally:
            os.close(fd)  # closing the descriptor drops the flock

    def __enter__(self) -> "OutputLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def __del__(self) -> None:  # pragma: no cover - normally released explicitly
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass


def _read(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return os.read(fd, 256).decode("ascii", "replace")
    except OSError:
        return ""


def _write_owner(fd: int) -> None:
    data = f"{os.getpid()} {socket.gethostname()}\n".encode()
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, data)
