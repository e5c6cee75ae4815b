"""The one place a device name (``--device``, ``device=``, ``train.device``) becomes a ``torch.device``.

:func:`resolve_device` checks that the device can be used *before* any work starts, so that asking
for CUDA on a CPU-only PyTorch build, for a GPU index that does not exist, or for MPS where there is
none gives one clear :class:`DeviceError` instead of torch's ``AssertionError: Torch not compiled
with CUDA enabled`` half-way through a command.

Accepted: ``auto`` (CUDA when usable, else CPU), ``cpu``, ``cuda``, ``cuda:N``, ``mps`` (and a
``torch.device`` of those types). This module imports nothing of facelivt but :mod:`facelivt.errors`.
"""
from __future__ import annotations

import torch

from facelivt.errors import FaceLiVTError

ACCEPTED = "auto, cpu, cuda, cuda:N or mps"


class DeviceError(FaceLiVTError, ValueError):
    """A device name that is not a device facelivt can run on."""


class DeviceUnavailableError(DeviceError, RuntimeError):
    """A valid device that this machine or this PyTorch build cannot provide."""


def _asked(spec: str, option: str | None) -> str:
    """How the user wrote it: ``--device cuda``, ``train.device=cuda`` or ``device='cuda'``."""
    if option is None:
        return f"device={spec!r}"
    return f"{option} {spec}" if option.startswith("-") else f"{option}={spec}"


def _instead(option: str | None) -> str:
    return "; use " + _asked("cpu", option)


def _check_cuda(dev: torch.device, asked: str, option: str | None) -> None:
    if not torch.backends.cuda.is_built():
        raise DeviceUnavailableError(
            f"CUDA was asked for ({asked}) but this PyTorch build has no CUDA support "
            f"(torch {torch.__version__}){_instead(option)}"
        )
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise DeviceUnavailableError(
            f"CUDA was asked for ({asked}) but no CUDA GPU is usable here (torch {torch.__version__}, "
            f"CUDA {torch.version.cuda or torch.version.hip}: no GPU, no driver, or CUDA_VISIBLE_DEVICES "
            f"hides them){_instead(option)}"
        )
    if dev.index is not None and dev.index >= count:
        visible = "cuda:0" if count == 1 else f"cuda:0 .. cuda:{count - 1}"
        raise DeviceUnavailableError(
            f"GPU {dev.index} was asked for ({asked}) but only {count} CUDA GPU{'s are' if count > 1 else ' is'} "
            f"visible ({visible})"
        )


def _parse(spec: str, option: str | None) -> torch.device:
    text = spec.strip().lower()
    try:
        dev = torch.device(text)
    except (RuntimeError, TypeError, ValueError):
        raise DeviceError(f"invalid device ({_asked(spec, option)}): expected {ACCEPTED}") from None
    if dev.type not in ("cpu", "cuda", "mps"):
        raise DeviceError(f"unsupported device ({_asked(spec, option)}): facelivt runs on {ACCEPTED}")
    return dev


def resolve_device(
    spec: str | torch.device | None = "auto",
    local_rank: int | None = None,
    *,
    option: str | None = None,
) -> torch.device:
    """``spec`` as a usable ``torch.device``, or a :class:`DeviceError` saying why not.

    ``"auto"`` / None: CUDA when a GPU is usable, else CPU. With ``local_rank`` (a distributed
    run), ``auto`` and a bare ``cuda`` mean ``cuda:<local_rank>``. ``option`` names where the value
    came from in messages: ``"--device"`` (a command-line option) or ``"train.device"`` (a config
    key); None (a library call) reads ``device='cuda'``.
    """
    if spec is None or (isinstance(spec, str) and spec.strip().lower() == "auto"):
        if not (torch.cuda.is_available() and torch.cuda.device_count() > 0):
            return torch.device("cpu")
        dev = torch.device("cuda" if local_rank is None else f"cuda:{local_rank}")
        _check_cuda(dev, _asked("auto", option), option)  # more processes than GPUs
        return dev
    if isinstance(spec, torch.device):
        dev = spec
        if dev.type not in ("cpu", "cuda", "mps"):
            raise DeviceError(f"unsupported device {str(dev)!r}: facelivt runs on {ACCEPTED}")
    elif isinstance(spec, str):
        dev = _parse(spec, option)
    else:
        raise DeviceError(f"invalid device {spec!r}: expected a string ({ACCEPTED}) or a torch.device")
    asked = _asked(str(spec), option)
    if dev.type == "cuda":
        if dev.index is None and local_rank is not None:
            dev = torch.device(f"cuda:{local_rank}")
        _check_cuda(dev, asked, option)
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        built = "is not built with MPS" if not torch.backends.mps.is_built() else "finds no usable Apple GPU"
        raise DeviceUnavailableError(
            f"MPS was asked for ({asked}) but this PyTorch (torch {torch.__version__}) {built}{_instead(option)}"
        )
    return dev
