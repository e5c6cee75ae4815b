"""Core ML format (layer 2 of :mod:`facelivt.deploy`): export with coremltools (an optional dependency: ``pip install coremltools``).

The export form (shape-free attention blocks) is traced and converted to an ML Program
(``.mlpackage``, float32 compute so it can match PyTorch). Running the model needs macOS; on other
systems the conversion and the model's spec (input/output names, shapes, operations) are checked.
"""
from __future__ import annotations

import collections
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from facelivt.deploy.interface import INPUT_NAME, OUTPUT_NAME, parse_batch
from facelivt.deploy.sessions import trace
from facelivt.errors import InputNotFoundError, InvalidInputError, UnavailableError
from facelivt.extras import install_hint
from facelivt.files import atomic_dir
from facelivt.models.export_form import export_form_model
from facelivt.models.preprocess import preprocess_of

MAX_DYNAMIC_BATCH = 256


class CoreMLUnavailableError(UnavailableError):
    """coremltools is not installed (or cannot be imported) here."""


def require_coremltools():
    """Import coremltools or raise :class:`CoreMLUnavailableError` saying how to get it."""
    try:
        import coremltools as ct  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - any import failure means "not available"
        raise CoreMLUnavailableError(
            f"Core ML export needs coremltools, which cannot be imported here ({type(exc).__name__}: {exc}); "
            f"install it with: {install_hint('coremltools')} (Linux and macOS wheels; prediction needs macOS)"
        ) from exc
    return ct


def export_coreml(model: nn.Module, path: str | os.PathLike, *, batch: str | int | None = "dynamic", input_size: int | None = None, fp16: bool = False) -> Path:
    """Convert the deploy form to a Core ML ML Program at ``path`` (``.mlpackage``).

    A dynamic batch becomes a range 1..256. ``fp16`` selects float16 compute (smaller, faster on the
    Neural Engine; float32 is the default so results match PyTorch).
    """
    ct = require_coremltools()
    path = Path(path)
    if path.suffix != ".mlpackage":
        raise InvalidInputError(f"a Core ML ML Program is a .mlpackage folder; got {path.name!r}")
    fixed = parse_batch(batch)
    size = preprocess_of(model, input_size).input_size
    prepared = export_form_model(model, size).cpu()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = trace(prepared, torch.zeros(fixed or 1, 3, size, size))
        dim0 = fixed if fixed is not None else ct.RangeDim(lower_bound=1, upper_bound=MAX_DYNAMIC_BATCH, default=1)
        mlmodel = ct.convert(
            traced,
            inputs=[ct.TensorType(name=INPUT_NAME, shape=(dim0, 3, size, size))],
            outputs=[ct.TensorType(name=OUTPUT_NAME)],
            convert_to="mlprogram",
            compute_precision=ct.precision.FLOAT16 if fp16 else ct.precision.FLOAT32,
            minimum_deployment_target=ct.target.iOS16,
        )
    mlmodel.short_description = f"{getattr(model, 'model_name', type(model).__name__)} face embedding ({preprocess_of(model, size).describe()})"
    with atomic_dir(path) as build:  # a whole .mlpackage or none: an earlier one stays until this one is complete
        mlmodel.save(str(build))
    return path


def check_coreml_spec(path: str | os.PathLike, batch: int | None = None) -> dict:
    """Load a saved ``.mlpackage`` and check its interface; returns a summary (names, shapes, op counts).

    Raises RuntimeError when the input/output names or shapes are not the expected ones.
    """
    ct = require_coremltools()
    path = Path(path)
    if not path.exists():
        raise InputNotFoundError(f"Core ML model not found: {path}")
    mlmodel = ct.models.MLModel(str(path), skip_model_load=True)
    spec = mlmodel.get_spec()
    inputs = {i.name: i for i in spec.description.input}
    outputs = {o.name: o for o in spec.description.output}
    if INPUT_NAME not in inputs or OUTPUT_NAME not in outputs:
        raise RuntimeError(f"Core ML model has inputs {list(inputs)} and outputs {list(outputs)}; expected {INPUT_NAME!r} -> {OUTPUT_NAME!r}")
    arr = inputs[INPUT_NAME].type.multiArrayType
    shape = list(arr.shape)
    if len(shape) != 4 or shape[1] != 3:
        raise RuntimeError(f"Core ML input shape {shape} is not (B, 3, H, W)")
    if batch is not None and shape[0] != batch:
        raise RuntimeError(f"Core ML input batch {shape[0]} is not the requested {batch}")
    ranges = [(r.lowerBound, r.upperBound) for r in arr.shapeRange.sizeRanges]
    ops = collections.Counter()
    for fn in spec.mlProgram.functions.values():
        for block in fn.block_specializations.values():
            for op in block.operations:
                ops[op.type] += 1
    return {
        "spec_version": spec.specificationVersion,
        "input": {"name": INPUT_NAME, "shape": shape, "ranges": ranges},
        "output": {"name": OUTPUT_NAME},
        "ops": dict(ops),
    }
