"""Runtime sessions and runners (layer 0 of :mod:`facelivt.deploy`): the one place that opens an ONNX
Runtime session, traces and freezes a module, or loads a TorchScript file.

A *runner* is a callable ``(N, 3, H, W) float32 array -> (N, D) array``; :func:`run_batched` feeds a
fixed-batch runner in chunks. :func:`eager_runner` and :func:`ort_runner` return ``(fn, inputs)``
pairs on a fixed random batch, the form :mod:`facelivt.deploy.timing` measures.

onnxruntime is an optional dependency (``pip install facelivt[export]``): it is imported when a
session is opened.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from facelivt.errors import InputNotFoundError, InvalidInputError, check_input_file
from facelivt.extras import require

Runner = Callable[[np.ndarray], np.ndarray]


# ----------------------------------------------------------------------------------- ONNX Runtime


def session_options(threads: int | None = None, spin: bool = True, optimized_path: str | os.PathLike | None = None):
    """``SessionOptions`` with every graph optimisation on; ``threads`` intra-op threads (one inter-op);
    ``spin=False`` stops idle workers from busy-waiting; ``optimized_path``: write the optimised graph there."""
    ort = require("onnxruntime", "ONNX Runtime")

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    if threads:
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
    if not spin:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if optimized_path is not None:
        so.optimized_model_filepath = str(optimized_path)
    return so


def onnx_session(path: str | os.PathLike, threads: int | None = None, providers: list[str] | None = None, spin: bool = True,
                 *, optimized_path: str | os.PathLike | None = None):
    """An ONNX Runtime session with all graph optimisations (CPU unless ``providers`` say otherwise).

    ``spin=False`` stops idle worker threads from busy-waiting between runs, so that a session living
    beside PyTorch code does not take CPU away from it. ``optimized_path``: also write the graph after
    ONNX Runtime's optimisations there (see :func:`facelivt.deploy.onnx_graph.optimized_graph`)."""
    ort = require("onnxruntime", "ONNX Runtime")

    path = check_input_file(path, "ONNX model")
    options = session_options(threads, spin, optimized_path)
    state = ort.capi.onnxruntime_pybind11_state  # ONNX Runtime's errors (they share no base class of their own)
    try:
        return ort.InferenceSession(str(path), options, providers=providers or ["CPUExecutionProvider"])
    except (state.InvalidProtobuf, state.InvalidGraph, state.Fail) as exc:
        raise InvalidInputError(f"{path} is not an ONNX model that ONNX Runtime can load: {exc}") from exc


def onnx_input_shape(path: str | os.PathLike) -> tuple[int | None, int, int, int]:
    """``(batch, channels, height, width)`` of the first input of the ONNX file at ``path`` (batch None:
    dynamic); a file whose input is not an image batch of fixed size raises :class:`InvalidInputError`."""
    shape = onnx_session(path, threads=1, spin=False).get_inputs()[0].shape
    fixed = [d if isinstance(d, int) and d > 0 else None for d in shape]
    if len(fixed) != 4 or None in fixed[1:]:
        raise InvalidInputError(f"{path}: its input has shape {shape}; an image batch (N, C, H, W) with fixed C, H, W is needed")
    return fixed[0], fixed[1], fixed[2], fixed[3]


def available_providers() -> list[str]:
    """The execution providers of the installed ONNX Runtime."""
    ort = require("onnxruntime", "ONNX Runtime")

    return ort.get_available_providers()


def onnxruntime_version() -> str:
    ort = require("onnxruntime", "ONNX Runtime")

    return ort.__version__


def onnx_fixed_batch(session) -> int | None:
    """The batch a session's model was exported for, None for a dynamic batch axis."""
    dim = session.get_inputs()[0].shape[0]
    return dim if isinstance(dim, int) else None


def onnx_runner(session) -> Runner:
    """The session as a runner (its first input fed a contiguous float32 array, its first output returned)."""
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: np.ascontiguousarray(x, dtype=np.float32)})[0]


class OnnxRuntimeModule(nn.Module):
    """An ONNX Runtime session behind the nn.Module call convention (CPU tensors in, CPU tensors out)."""

    def __init__(self, session):
        super().__init__()
        self.session = session
        self.input_name = session.get_inputs()[0].name
        self._run = onnx_runner(session)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self._run(x.detach().cpu().numpy()))


# ------------------------------------------------------------------------------------- TorchScript


def trace(module: nn.Module, example: torch.Tensor) -> torch.jit.ScriptModule:
    """``torch.jit.trace`` without autograd, the trace check or the tracer's warnings."""
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        return torch.jit.trace(module, example, check_trace=False)


def trace_frozen(module: nn.Module, example: torch.Tensor) -> torch.jit.ScriptModule:
    """Trace ``module`` on ``example`` and freeze it (parameters become constants, eval mode)."""
    traced = trace(module, example)
    with torch.no_grad():
        return torch.jit.freeze(traced.eval())


def torchscript_runner(path: str | os.PathLike) -> Runner:
    """A saved TorchScript file (loaded on the CPU) as a runner."""
    if not Path(path).is_file():
        raise InputNotFoundError(f"TorchScript model not found: {path}")
    module = torch.jit.load(str(path), map_location="cpu").eval()

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()

    return run


# ------------------------------------------------------------------------------------------ feeding


def run_batched(fn: Runner, images: np.ndarray, batch: int | None) -> np.ndarray:
    """Apply ``fn`` to ``images`` in chunks of ``batch`` (all at once when None); a short last chunk is
    padded with repeats of its last image for fixed-batch models."""
    if batch is None:
        return fn(images)
    outs = []
    for i in range(0, len(images), batch):
        chunk = images[i : i + batch]
        n = len(chunk)
        if n < batch:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], batch - n, axis=0)])
        outs.append(fn(chunk)[:n])
    return np.concatenate(outs)


def eager_runner(model: nn.Module, batch: int, device: str, input_size: int = 112, seed: int = 0) -> tuple[Callable, tuple]:
    """``(fn, inputs)`` running ``model`` in eval/inference mode on a fixed random batch."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 3, input_size, input_size, generator=g).to(device)
    model = model.to(device).eval()

    def run(inp: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return model(inp)

    return run, (x,)


def ort_runner(path: str | os.PathLike, batch: int, threads: int, providers: list[str] | None = None, input_size: int = 112, seed: int = 0) -> tuple[Callable, tuple]:
    """``(fn, inputs)`` running the ONNX file at ``path`` in ONNX Runtime on a fixed random batch."""
    # Not spinning: many sessions live side by side here, and an idle one's busy-waiting workers would
    # take the cores from the one being timed.
    session = onnx_session(path, threads, providers, spin=False)
    x = np.random.default_rng(seed).standard_normal((batch, 3, input_size, input_size), dtype=np.float32)
    return onnx_runner(session), (x,)
