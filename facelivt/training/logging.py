"""Run logs: a JSONL file, TensorBoard scalars (optional) and a tqdm progress bar."""
from __future__ import annotations

import json
import math
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from tqdm import tqdm


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        try:
            return _plain(value.item())
        except (ValueError, RuntimeError):
            return str(value)
    return value


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
    ``tensorboard`` and the package is installed, to ``<output>/tensorboard``. Rank 0 only."""

    def __init__(self, output: str | Path, enabled: bool = True, tensorboard: bool = True) -> None:
        self.enabled = enabled
        self.path = Path(output) / "log.jsonl"
        self._tb = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", buffering=1)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(Path(output) / "tensorboard"))
            except ImportError:
                warnings.warn("tensorboard is not installed: no TensorBoard logs (pip install tensorboard)", RuntimeWarning)

    def log(self, event: str, step: int, **fields: Any) -> None:
        if not self.enabled:
            return
        record = {"event": event, "step": int(step), "time": round(time.time(), 3)}
        record.update(_plain(fields))
        self._file.write(json.dumps(record) + "\n")
        if self._tb is not None:
            prefix = "train" if event == "train" else event
            for name, value in _scalars(prefix, fields):
                self._tb.add_scalar(name, value, step)

    def close(self) -> None:
        if not self.enabled:
            return
        self._file.close()
        if self._tb is not None:
            self._tb.close()


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
