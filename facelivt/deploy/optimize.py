"""``optimize_for_inference`` (layer 3 of :mod:`facelivt.deploy`): the fastest runnable form of a model
for CPU/GPU inference.

Starts from the deploy form (reparameterized, eval mode, channels-last) and then, by ``backend``:

- ``"torchscript"``: trace, freeze and ``torch.jit.optimize_for_inference`` (folds constants, fuses
  conv/add/activation through oneDNN on CPU). No compiler needed.
- ``"compile"``: ``torch.compile`` (Inductor; needs a working C++ compiler on CPU, Triton on GPU).
- ``"onnxruntime"``: the shape-free export graph of :mod:`facelivt.deploy.onnx_export` run by ONNX Runtime
  (CPU; inputs and outputs cross as numpy arrays).
- ``"eager"``: the deploy form as is.
- ``"auto"`` (default): on CPU in the order ``facelivt.cpu.cpu_defaults`` measured for this machine's
  ISA (ONNX Runtime first, then TorchScript, ``torch.compile`` and eager, each where the one before
  fails, unless the measurements there say otherwise: see ``facelivt.cpu.MEASURED``); on other devices
  TorchScript first.

The returned module computes the same function as the input model in eval mode (float32 round-off);
the ``"onnxruntime"`` backend returns a :class:`facelivt.deploy.sessions.OnnxRuntimeModule`.

``int8=True``: ONNX Runtime static int8 (:mod:`facelivt.deploy.quantize`, calibrated on ``calibration``,
real aligned face crops) where :func:`facelivt.deploy.int8_choice.int8_choice` says it pays for this
model on this CPU's int8 ISA; elsewhere the float32 module as without it, with a ``RuntimeWarning`` saying
why. ``int8="force"`` quantises whatever was measured. The module's ``int8`` attribute holds the choice.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
import warnings
from pathlib import Path

import numpy as np

import torch
from torch import nn

from facelivt.cpu import machine_defaults
from facelivt.deploy.crops import list_crops, load_crops
from facelivt.deploy.int8_choice import Int8Choice, int8_choice
from facelivt.deploy.onnx_export import export_onnx
from facelivt.deploy.quantize import check_calibration, quantize_onnx_int8
from facelivt.deploy.sessions import OnnxRuntimeModule, onnx_session, trace_frozen
from facelivt.errors import InvalidInputError, UnavailableError
from facelivt.models.preprocess import preprocess_of
from facelivt.models.reparam import reparameterize_model

__all__ = ["BACKENDS", "InferenceModule", "optimize_for_inference"]

BACKENDS = ("auto", "onnxruntime", "torchscript", "compile", "eager")
INT8_CALIBRATION_IMAGES = 128  # crops read from a calibration folder (fewer if it has fewer)


class InferenceModule(nn.Module):
    """Runs a prepared module without autograd, feeding it inputs in the memory format it was built for."""

    def __init__(self, module: nn.Module, backend: str, channels_last: bool, int8: Int8Choice | None = None):
        super().__init__()
        self.module = module
        self.backend = backend
        self.channels_last = channels_last
        self.int8 = int8  # the int8 choice when int8 was asked for (int8.use: the module is int8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            return self.module(x)


def _is_deploy_form(model: nn.Module) -> bool:
    return bool(getattr(model, "deploy_options", None))


def _torchscript(model: nn.Module, example: torch.Tensor) -> nn.Module:
    frozen = trace_frozen(model, example)
    with torch.no_grad():
        return torch.jit.optimize_for_inference(frozen)


def _onnxruntime(model: nn.Module, example: torch.Tensor) -> nn.Module:
    if example.device.type != "cpu":
        raise UnavailableError("the onnxruntime backend runs on CPU only")
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(model, Path(tmp) / "model.onnx")
        session = onnx_session(path, threads=torch.get_num_threads(), spin=False)
    return OnnxRuntimeModule(session)


def _onnxruntime_int8(model: nn.Module, example: torch.Tensor, calibration: np.ndarray) -> nn.Module:
    if example.device.type != "cpu":
        raise UnavailableError("int8 runs in ONNX Runtime, on CPU only")
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(model, Path(tmp) / "model.onnx")
        int8 = quantize_onnx_int8(fp32, Path(tmp) / "model.int8.onnx", calibration)
        session = onnx_session(int8, threads=torch.get_num_threads(), spin=False)
    return OnnxRuntimeModule(session)


def _compile(model: nn.Module, example: torch.Tensor) -> nn.Module:
    compiled = torch.compile(model, dynamic=False)
    with torch.no_grad():
        compiled(example)  # compile now, so failures surface here and not at the first real call
    return compiled


def optimize_for_inference(
    model: nn.Module,
    backend: str = "auto",
    *,
    example_input: torch.Tensor | None = None,
    channels_last: bool | None = None,
    int8: bool | str = False,
    calibration: torch.Tensor | np.ndarray | str | os.PathLike | None = None,
) -> nn.Module:
    """Return a module computing the same function as ``model`` (eval mode), as fast as this machine allows.

    ``model`` may be in train or deploy form; it is not modified. ``example_input`` (default a 1x3x112x112
    batch on the model's device) is used to trace/compile; other batch sizes work too. ``int8`` (True or
    ``"force"``, with ``backend`` ``"auto"`` or ``"onnxruntime"``): see the module docstring;
    ``calibration``: an (N, 3, H, W) batch normalised as the model's input, or a folder of aligned crops.
    """
    if backend not in BACKENDS:
        raise InvalidInputError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
    choice = _int8_request(model, backend, int8, calibration) if int8 else None
    if choice is not None and choice.choice.use:
        deploy, example_input = _prepare(model, example_input, False)
        return InferenceModule(_onnxruntime_int8(deploy, example_input, choice.calibration), "onnxruntime", False, choice.choice)
    if choice is not None:
        warnings.warn(f"optimize_for_inference: int8 skipped for {choice.choice.model}: {choice.choice.reason}; "
                      "int8='force' quantises anyway", RuntimeWarning)
    if channels_last is None:
        channels_last = machine_defaults().infer_channels_last
    deploy, example_input = _prepare(model, example_input, channels_last)
    errors = []
    for name in _order(backend, example_input.device):
        try:
            module = _build(name, deploy, example_input, channels_last)
            module.int8 = None if choice is None else choice.choice
            return module
        except Exception as exc:  # noqa: BLE001 - each backend may fail for reasons of its own
            errors.append(f"{name}: {type(exc).__name__}: {exc}")
            if backend != "auto":
                raise UnavailableError(f"optimize_for_inference: backend {name!r} failed: {exc}") from exc
            warnings.warn(f"optimize_for_inference: backend {name!r} unavailable ({exc}); trying the next one", RuntimeWarning)
    raise UnavailableError("optimize_for_inference: every backend failed: " + " | ".join(errors))


@dataclass
class _Int8Request:
    """A checked int8 request: the choice for the model and the calibration crops as an array."""

    choice: Int8Choice
    calibration: np.ndarray


def _int8_request(model: nn.Module, backend: str, int8: bool | str, calibration) -> _Int8Request:
    """Checks ``int8`` / ``calibration`` (before any work) and looks the model up in the measured table."""
    if int8 not in (True, "force"):
        raise InvalidInputError(f"int8 must be False, True (where it pays) or 'force', got {int8!r}")
    if backend not in ("auto", "onnxruntime"):
        raise InvalidInputError(f"int8 runs in ONNX Runtime: backend must be 'auto' or 'onnxruntime', got {backend!r}")
    if isinstance(calibration, (str, os.PathLike)):
        count = min(INT8_CALIBRATION_IMAGES, len(list_crops(calibration)))
        calibration = load_crops(calibration, count, preprocess=preprocess_of(model))
    crops = check_calibration(calibration)
    return _Int8Request(int8_choice(getattr(model, "model_name", None), force=int8 == "force"), crops)


def _prepare(model: nn.Module, example: torch.Tensor | None, channels_last: bool) -> tuple[nn.Module, torch.Tensor]:
    """The deploy form in eval mode (channels-last if asked) and the example input on its device, in its layout."""
    deploy = model if _is_deploy_form(model) else reparameterize_model(model)
    deploy = deploy.eval()
    param = next(deploy.parameters())
    if channels_last:
        deploy = deploy.to(memory_format=torch.channels_last)
    if example is None:
        size = preprocess_of(model).input_size
        example = torch.randn(1, 3, size, size, device=param.device)
    example = example.to(param.device)
    if channels_last:
        example = example.contiguous(memory_format=torch.channels_last)
    return deploy, example


def _order(backend: str, device: torch.device) -> list[str]:
    if backend != "auto":
        return [backend]
    if device.type == "cpu":
        return list(machine_defaults().backends)
    return ["torchscript", "compile", "eager"]


def _build(name: str, deploy: nn.Module, example: torch.Tensor, channels_last: bool) -> InferenceModule:
    """One backend's module (looked up in this module at call time, so tests can replace a backend)."""
    if name == "onnxruntime":
        return InferenceModule(_onnxruntime(deploy, example), name, channels_last=False)
    if name == "torchscript":
        module = _torchscript(deploy, example)
    elif name == "compile":
        module = _compile(deploy, example)
    else:
        module = deploy
    return InferenceModule(module, name, channels_last)
