"""The service's audit log: who changed which gallery identity (enrol, rename, delete), and when.

:meth:`AuditLog.record` writes one JSON object per line to the log file, if there is one::

    {"time": "2026-12-07T14:02:42.123Z", "key_id": "3f9a0c1d2e4b", "action": "enroll",
     "gallery": "staff", "identity": "Ada", "added": 3}

and one line to the logger ``facelivt.serve.audit`` (level INFO). Each line is appended with a single
``write()`` to a file opened with ``O_APPEND``: it lands whole at the end of the file even when several
server processes write at once (on a local file system). It names the key by its public id only; a string
that looks like a key token is replaced by ``"[redacted]"``, so no secret reaches the log.
"""
from __future__ import annotations

import datetime
import json
import logging
import os
import re
import threading
from pathlib import Path

from facelivt.errors import InvalidInputError, OutputWriteError

logger = logging.getLogger("facelivt.serve.audit")

#: The fields every line has, in this order; extras follow.
FIELDS = ("time", "key_id", "action", "gallery", "identity")
REDACTED = "[redacted]"
_TOKEN = re.compile(r"flvt_[0-9a-f]{12}_[A-Za-z0-9_-]+")


class AuditLogWriteError(OutputWriteError):
    """The audit log file cannot be opened or written."""


def utc_now() -> str:
    """The current UTC time, ISO 8601 with milliseconds and ``Z``."""
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def _scrub(value):
    """``value`` with any key token in its strings replaced by :data:`REDACTED` (also inside lists/dicts)."""
    if isinstance(value, str):
        return _TOKEN.sub(REDACTED, value)
    if isinstance(value, (list, tuple)):
        return [_scrub(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _scrub(v) for k, v in value.items()}
    return value


class AuditLog:
    """The audit log: appended to file ``path`` (made with mode 0600 if new, opened now so that a path
    that cannot be written fails at start) and logged; ``path`` None: logged only."""

    def __init__(self, path: str | os.PathLike | None) -> None:
        self.path = None if path is None else Path(path)
        self._fd: int | None = None
        self._lock = threading.Lock()
        if self.path is not None:
            if self.path.is_dir():
                raise InvalidInputError(f"audit log {self.path} is a folder, not a file")
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError as exc:
                raise AuditLogWriteError(self.path, exc) from exc

    def record(self, *, key_id: str | None, action: str, gallery: str, identity: str, **extra) -> None:
        """Write one line: the time (UTC), ``key_id`` (None: no keys are configured), ``action``
        (``enroll``, ``rename``, ``delete``, ...), ``gallery``, ``identity``, then ``extra`` (JSON values)."""
        clash = sorted(set(extra) & set(FIELDS))
        if clash:
            raise InvalidInputError(f"audit extras may not replace the fields {', '.join(clash)}")
        entry = {"time": utc_now(), "key_id": key_id, "action": action, "gallery": gallery, "identity": identity}
        entry.update(extra)
        entry = _scrub(entry)
        line = json.dumps(entry, ensure_ascii=False, default=str) + "\n"
        if self._fd is not None:
            self._append(line.encode("utf-8"))
        logger.info("audit: %s gallery=%r identity=%r key=%s%s", entry["action"], entry["gallery"],
                    entry["identity"], entry["key_id"] or "-",
                    "".join(f" {k}={entry[k]!r}" for k in extra))

    def _append(self, data: bytes) -> None:
        """``data`` at the end of the file in one ``write()`` (a short write, rare, is finished)."""
        with self._lock:
            try:
                written = os.write(self._fd, data)
                while written < len(data):
                    written += os.write(self._fd, data[written:])
            except OSError as exc:
                raise AuditLogWriteError(self.path, exc) from exc

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> "AuditLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
