"""Run logs: a JSONL file, TensorBoard scalars (optional) and a tqdm progress bar."""
from __future__ import annotations

import json
import math
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from tqdm import tqdm

from facelivt.errors import OutputWriteError
from facelivt.extras import install_hint


def plain(value: Any) -> Any:
    """``value`` as JSON-ready data: non-finite floats and other objects become strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        try:
            return plain(value.item())
        except (ValueError, RuntimeError):
            return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _drop_torn_tail(fd: int) -> None:
    """Cut a last line that lacks its newline (a run killed while writing it)."""
    size = os.fstat(fd).st_size
    if size == 0:
        return
    pos = size
    while pos > 0:
        start = max(0, pos - 4096)
        chunk = os.pread(fd, pos - start, start)
        if pos == size and chunk.endswith(b"\n"):
            return
        cut = chunk.rfind(b"\n")
        if cut >= 0:
            os.ftruncate(fd, start + cut + 1)
            return
        pos = start
    os.ftruncate(fd, 0)


def _scalars(prefix: str, record: dict[str, Any]):
    for key, value in record.items():
        name = f"{prefix}/{key}" if prefix else key
        if isinstance(value, bool):
            continue
        if isinstance(value, (int, float)) and math.isfinite(float(value)):
            yield name, float(value)
        elif isinstance(value, dict):
            yield from _scalars(name, value)


class RunLogger:
    """Writes events to ``<output>/log.jsonl`` (appended, one JSON object a line) and, when
    ``tensorboard`` and the package is installed, to ``<output>/tensorboard``. Rank 0 only.

    Each line is written whole or not at all: a failed write (a full disk) is cut back and raised
    as :class:`facelivt.errors.OutputWriteError`; a line torn by a killed run is dropped on opening."""

    def __init__(self, output: str | Path, enabled: bool = True, tensorboard: bool = True) -> None:
        self.enabled = enabled
        self.path = Path(output) / "log.jsonl"
        self._tb = None
        self._fd: int | None = None
        if not enabled:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
            _drop_torn_tail(self._fd)
        except OSError as exc:
            self.close()
            raise OutputWriteError(self.path, exc) from exc
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(Path(output) / "tensorboard"))
            except ImportError:
                warnings.warn(f"tensorboard is not installed: no TensorBoard logs ({install_hint('torch.utils.tensorboard')})", RuntimeWarning)

    def log(self, event: str, step: int, **fields: Any) -> None:
        if not self.enabled:
            return
        record = {"event": event, "step": int(step), "time": round(time.time(), 3)}
        record.update(plain(fields))
        self._append((json.dumps(record) + "\n").encode())
        if self._tb is not None:
            prefix = "train" if event == "train" else event
            for name, value in _scalars(prefix, fields):
                self._tb.add_scalar(name, value, step)

    def _append(self, data: bytes) -> None:
        fd = self._fd
        if fd is None:
            raise ValueError(f"{self.path} is closed")
        size = os.fstat(fd).st_size
        try:
            written = os.write(fd, data)
            if written != len(data):
                raise OSError(28, os.strerror(28))  # a short write: the disk filled up mid-line
        except OSError as exc:
            try:
                os.ftruncate(fd, size)
            except OSError:
                pass
            raise OutputWriteError(self.path, exc) from exc

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
        if self._tb is not None:
            self._tb.close()
            self._tb = None


class Progress:
    """tqdm bar over optimiser steps with loss parts, lr and images/s; ETA from tqdm."""

    def __init__(self, total: int, initial: int = 0, enabled: bool = True, desc: str = "train", messages: bool | None = None) -> None:
        self.messages = enabled if messages is None else messages
        self.bar = tqdm(total=total, initial=initial, desc=desc, unit="step", disable=not enabled, dynamic_ncols=True, file=sys.stderr)

    def update(self, n: int = 1, **postfix: Any) -> None:
        if postfix:
            self.bar.set_postfix({k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in postfix.items()}, refresh=False)
        self.bar.update(n)

    def write(self, text: str) -> None:
        """A message above the bar (``messages``: rank 0 only, also without a bar)."""
        if self.messages:
            self.bar.write(text, file=sys.stderr)

    def close(self) -> None:
        self.bar.close()
