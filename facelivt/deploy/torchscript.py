"""TorchScript format (layer 2 of :mod:`facelivt.deploy`): the export form traced and frozen into one
file, and its check against PyTorch."""
from __future__ import annotations

import io
import os
from pathlib import Path

import torch
from torch import nn

from facelivt.deploy.interface import parse_batch
from facelivt.deploy.parity import Parity, runner_parity
from facelivt.deploy.sessions import torchscript_runner, trace_frozen
from facelivt.files import write_bytes
from facelivt.models.export_form import export_form_model
from facelivt.models.preprocess import preprocess_of


def export_torchscript(model: nn.Module, path: str | os.PathLike, *, batch: str | int | None = "dynamic", input_size: int | None = None) -> Path:
    """Trace + freeze the export form. The traced graph has no shape-dependent ops, so it runs at any
    batch size; ``batch`` only sets the example batch used for tracing."""
    fixed = parse_batch(batch)
    size = preprocess_of(model, input_size).input_size
    path = Path(path)
    prepared = export_form_model(model, size).cpu()
    frozen = trace_frozen(prepared, torch.zeros(fixed or 2, 3, size, size))
    # Serialised in memory, then written atomically: torch.jit.save to a full disk aborts the process
    # (an uncaught c10::Error) instead of raising.
    buffer = io.BytesIO()
    torch.jit.save(frozen, buffer, _extra_files={"facelivt.json": _extra(model, size)})
    write_bytes(path, buffer.getvalue())
    return path



def _extra(model: nn.Module, size: int) -> str:
    return f'{{"model": "{getattr(model, "model_name", "")}", "input_size": {size}}}'


def check_torchscript(model: nn.Module, path: str | os.PathLike, images: torch.Tensor) -> Parity:
    """Parity of a TorchScript file with ``model`` on ``images``, at the full batch and image by image."""
    return runner_parity(model, torchscript_runner(path), images)
