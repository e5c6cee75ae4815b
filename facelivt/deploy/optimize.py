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
"""
from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

from facelivt.cpu import machine_defaults
from facelivt.deploy.onnx_export import export_onnx
from facelivt.deploy.sessions import OnnxRuntimeModule, onnx_session, trace_frozen
from facelivt.errors import InvalidInputError, UnavailableError
from facelivt.models.preprocess import preprocess_of
from facelivt.models.reparam import reparameterize_model

__all__ = ["BACKENDS", "InferenceModule", "optimize_for_inference"]

BACKENDS = ("auto", "onnxruntime", "torchscript", "compile", "eager")


class InferenceModule(nn.Module):
    """Runs a prepared module without autograd, feeding it inputs in the memory format it was built for."""

    def __init__(self, module: nn.Module, backend: str, channels_last: bool):
        super().__init__()
        self.module = module
        self.backend = backend
        self.channels_last = channels_last

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
) -> nn.Module:
    """Return a module computing the same function as ``model`` (eval mode), as fast as this machine allows.

    ``model`` may be in train or deploy form; it is not modified. ``example_input`` (default a 1x3x112x112
    batch on the model's device) is used to trace/compile; other batch sizes work too.
    """
    if backend not in BACKENDS:
        raise InvalidInputError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
    if channels_last is None:
        channels_last = machine_defaults().infer_channels_last
    deploy, example_input = _prepare(model, example_input, channels_last)
    errors = []
    for name in _order(backend, example_input.device):
        try:
            return _build(name, deploy, example_input, channels_last)
        except Exception as exc:  # noqa: BLE001 - each backend may fail for reasons of its own
            errors.append(f"{name}: {type(exc).__name__}: {exc}")
            if backend != "auto":
                raise UnavailableError(f"optimize_for_inference: backend {name!r} failed: {exc}") from exc
            warnings.warn(f"optimize_for_inference: backend {name!r} unavailable ({exc}); trying the next one", RuntimeWarning)
    raise UnavailableError("optimize_for_inference: every backend failed: " + " | ".join(errors))


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
