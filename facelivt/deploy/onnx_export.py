"""ONNX format (layer 2 of :mod:`facelivt.deploy`): write the export form as one ONNX file, and check one
in ONNX Runtime against PyTorch.

The graph has input ``input`` and output ``embedding`` (:mod:`facelivt.deploy.interface`); the batch
axis is dynamic unless a fixed batch is asked for. The exported network is
:func:`facelivt.models.export_form.export_form_model` of the deploy form: the same function with
shape-free attention blocks. torch exports it into memory; the file is written once, to the one
temporary that takes the place of the output (:func:`export_onnx`) or that the caller commits
(:func:`write_onnx`, used by :func:`facelivt.deploy.export.export_model`, which checks it first).
onnx is an optional dependency (``pip install facelivt[export]``).
"""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from facelivt.deploy.interface import INPUT_NAME, OUTPUT_NAME, batch_text, parse_batch
from facelivt.deploy.parity import Parity, runner_parity
from facelivt.deploy.sessions import onnx_fixed_batch, onnx_runner, onnx_session
from facelivt.errors import InvalidInputError
from facelivt.extras import require
from facelivt.files import atomic_path
from facelivt.models.export_form import export_form_model
from facelivt.models.preprocess import preprocess_of

EXPORTERS = ("torchscript", "dynamo")


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    batch: str | int | None = "dynamic",
    input_size: int | None = None,
    opset: int = 20,
    exporter: str = "torchscript",
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write ``model`` (deploy form, eval) as one self-contained ONNX file and validate it with onnx.checker.

    ``exporter``: ``"torchscript"`` (the tracing exporter, default: about 4x faster to export) or
    ``"dynamo"`` (``torch.export`` based, torch's default). On the export form both give the same graph
    after ONNX Runtime's optimisations (tests/deploy/test_export.py). Opset 20 (default) has a native
    Gelu, which keeps the int8 graph's GELUs fused; use 17 for older runtimes. The file is written to
    a temporary beside ``path`` that takes its place when complete.
    """
    onnx = require("onnx", "ONNX export")

    proto = _onnx_proto(model, batch, input_size, opset, exporter, metadata)
    path = Path(path)
    with atomic_path(path) as tmp:
        onnx.save(proto, str(tmp), format="protobuf")  # the format, not the temporary's suffix
    return path


def write_onnx(
    model: nn.Module,
    tmp: Path,
    *,
    batch: str | int | None = "dynamic",
    input_size: int | None = None,
    opset: int = 20,
    exporter: str = "torchscript",
    metadata: dict[str, str] | None = None,
) -> None:
    """:func:`export_onnx` into ``tmp``, a temporary that the caller commits (:func:`facelivt.files.atomic_path`)."""
    onnx = require("onnx", "ONNX export")

    proto = _onnx_proto(model, batch, input_size, opset, exporter, metadata)
    onnx.save(proto, str(tmp), format="protobuf")


def _onnx_proto(model: nn.Module, batch, input_size: int | None, opset: int, exporter: str, metadata: dict[str, str] | None):
    """The checked ``onnx.ModelProto`` of ``model``'s export form, with the ``facelivt.*`` metadata."""
    onnx = require("onnx", "ONNX export")

    if exporter not in EXPORTERS:
        raise InvalidInputError(f"unknown exporter {exporter!r}; choose one of {EXPORTERS}")
    fixed = parse_batch(batch)
    size = preprocess_of(model, input_size).input_size
    proto = _to_onnx(export_form_model(model, size).cpu(), size, fixed, opset, exporter)
    for k, v in _metadata(model, size, fixed, metadata).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.checker.check_model(proto)
    return proto


def _to_onnx(prepared: nn.Module, size: int, fixed: int | None, opset: int, exporter: str):
    """The ``onnx.ModelProto`` of ``prepared`` from torch's ``exporter``, batch ``fixed`` (None: dynamic),
    exported in memory (no file of its own: TMPDIR and the output's folder are not written)."""
    example = torch.zeros(fixed or 2, 3, size, size)  # not 1: torch.export specialises size-1 dims
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return _export(prepared, example, fixed, opset, exporter)
        except RuntimeError as exc:  # torch names an opset it cannot write as a RuntimeError
            if "opset" in str(exc).lower():
                raise InvalidInputError(f"ONNX opset {opset} cannot be written by this torch: {exc}") from exc
            raise


def _export(prepared: nn.Module, example: torch.Tensor, fixed: int | None, opset: int, exporter: str):
    onnx = require("onnx", "ONNX export")

    if exporter == "torchscript":
        dyn = None if fixed else {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}
        buffer = io.BytesIO()
        torch.onnx.export(
            prepared, (example,), buffer, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_axes=dyn, opset_version=opset, do_constant_folding=True, dynamo=False,
        )
        return onnx.load_from_string(buffer.getvalue())
    shapes = None if fixed else ({0: torch.export.Dim("batch", min=1, max=4096)},)
    program = torch.onnx.export(
        prepared, (example,), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
        dynamic_shapes=shapes, opset_version=opset, dynamo=True, verbose=False,
    )
    return program.model_proto


def _metadata(model: nn.Module, size: int, fixed: int | None, extra: dict[str, str] | None) -> dict[str, str]:
    meta = {
        "facelivt.model": str(getattr(model, "model_name", type(model).__name__)),
        "facelivt.input": f"{preprocess_of(model, size).describe()}, NCHW",
        "facelivt.output": "embedding, not L2-normalised",
        "facelivt.batch": batch_text(fixed),
    }
    meta.update(extra or {})
    return meta


def check_onnx(model: nn.Module, path: str | os.PathLike, images: torch.Tensor, threads: int | None = None) -> Parity:
    """Parity of an ONNX file (run in ONNX Runtime) with ``model`` on ``images``; a dynamic-batch
    model is run at the full batch and image by image."""
    session = onnx_session(path, threads)
    return runner_parity(model, onnx_runner(session), images, onnx_fixed_batch(session))
