"""What a model runs in on a device: the autocast dtype (``train.amp``) and the memory layout
(``model.channels_last``), the ``auto`` of each decided per device and, on a CPU, per machine
(:func:`facelivt.cpu.machine_defaults`).

Used by the trainer and by the quickstart, which times a training step in the layout the trainer
will use. This module imports nothing of facelivt but :mod:`facelivt.errors` and :mod:`facelivt.cpu`.
"""
from __future__ import annotations

import warnings
from contextlib import nullcontext
from typing import Callable, ContextManager, Optional

import torch

from facelivt.cpu import CpuDefaults, machine_defaults
from facelivt.errors import InvalidInputError

AMP_MODES = ("auto", "none", "bf16", "fp16")


def resolve_amp(amp: str, device: torch.device, cpu: CpuDefaults | None = None) -> Optional[torch.dtype]:
    """``train.amp`` -> autocast dtype (None = full precision). ``auto`` on a CPU follows ``cpu``
    (default: this machine's :func:`facelivt.cpu.machine_defaults`): bf16 only with native bf16."""
    if amp == "none":
        return None
    if amp == "auto":
        if device.type == "cpu":
            return torch.bfloat16 if (cpu or machine_defaults()).amp == "bf16" else None
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if amp == "bf16":
        return torch.bfloat16
    if amp == "fp16":
        if device.type not in ("cuda", "cpu"):
            raise InvalidInputError(f"train.amp=fp16 runs on CUDA (or a CPU); not on {device.type}: use bf16 or none")
        if device.type == "cpu":
            # Same path as on a GPU (float16 autocast + loss scaling), but most CPUs only emulate float16
            warnings.warn("train.amp=fp16 on a CPU is emulated (slow) unless it has AMX-FP16; bf16 or none are the fast choices there",
                          stacklevel=2)
        return torch.float16
    raise InvalidInputError(f"train.amp must be {', '.join(AMP_MODES[:-1])} or {AMP_MODES[-1]}; got {amp!r}")


def resolve_channels_last(value: Optional[bool], device: torch.device, cpu: CpuDefaults | None = None) -> bool:
    """``model.channels_last``: as set, or (None, auto) channels-last on CUDA and, on a CPU, as ``cpu``
    (default: this machine's :func:`facelivt.cpu.machine_defaults`) says for training."""
    if value is not None:
        return bool(value)
    if device.type == "cpu":
        return (cpu or machine_defaults()).train_channels_last
    return True


def autocast_factory(device: torch.device, dtype: Optional[torch.dtype]) -> Callable[[], ContextManager]:
    """A function that opens an autocast context to ``dtype`` on ``device`` (a no-op one for None)."""
    if dtype is None:
        return nullcontext
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)
