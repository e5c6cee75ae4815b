"""The export pipeline (layer 3 of :mod:`facelivt.deploy`): one call exports the deploy form to ONNX /
TorchScript / Core ML (:mod:`~facelivt.deploy.onnx_export`, :mod:`~facelivt.deploy.torchscript`,
:mod:`~facelivt.deploy.coreml`, int8 through :mod:`~facelivt.deploy.quantize`), checks it against
PyTorch on real crops and reports on it (:class:`ExportReport`).

Every file is written atomically (:mod:`facelivt.files`): a failed export (a full disk, a parity
check that fails) leaves an earlier file of that name as it was and no partial file behind.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from facelivt.deploy.coreml import check_coreml_spec, export_coreml
from facelivt.deploy.int8_choice import Int8Choice, int8_choice
from facelivt.deploy.interface import batch_text, parse_batch
from facelivt.deploy.onnx_export import check_onnx, write_onnx
from facelivt.deploy.parity import FP32_MIN_COSINE, Parity, require_parity as _require
from facelivt.deploy.quantize import Int8Comparison, check_calibration, compare_int8, quantize_onnx_int8
from facelivt.deploy.torchscript import check_torchscript, export_torchscript
from facelivt.errors import InvalidInputError
from facelivt.files import atomic_dir, atomic_path, scratch_dir

FORMATS = ("onnx", "torchscript", "coreml")

__all__ = ["FORMATS", "ExportReport", "export_model"]


@dataclass
class ExportReport:
    format: str
    path: str
    size_bytes: int
    batch: str
    parity: Parity | None = None
    parity_note: str = ""
    int8: Int8Comparison | None = None
    int8_choice: Int8Choice | None = None  # when int8 was asked for: used or skipped, and why
    graph: dict = field(default_factory=dict)  # Core ML: the spec summary of check_coreml_spec

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Request:
    """What :func:`export_model` was asked for, beyond the model, the format and the path."""

    batch: str | int | None
    images: torch.Tensor | None
    calibration: torch.Tensor | None
    exporter: str
    opset: int
    threads: int | None
    min_cosine: float
    speed_batches: tuple[int, ...]

    @property
    def batch_text(self) -> str:
        return batch_text(parse_batch(self.batch))


def export_model(
    model: nn.Module,
    fmt: str,
    out: str | os.PathLike,
    *,
    batch: str | int | None = "dynamic",
    images: torch.Tensor | None = None,
    int8: bool | str = False,
    calibration: torch.Tensor | None = None,
    exporter: str = "torchscript",
    opset: int = 20,
    threads: int | None = None,
    min_cosine: float = FP32_MIN_COSINE,
    speed_batches: tuple[int, ...] = (1,),
) -> ExportReport:
    """Export ``model`` (deploy form, eval) to ``fmt`` at ``out`` and check it on ``images``.

    Raises RuntimeError when the fp32 parity is below ``min_cosine``; the file is checked before it
    takes the place of ``out``, so a failed check (or write) leaves an earlier file there unchanged. With ``int8`` (ONNX only) the
    file at ``out`` is the statically quantised model, calibrated on ``calibration``, where
    :func:`~facelivt.deploy.int8_choice.int8_choice` says int8 pays for this model on this CPU (``int8="force"``:
    always); its report compares it with the fp32 ONNX model on ``images``. Where int8 does not pay, ``out``
    is the fp32 model and ``report.int8_choice`` says why.
    """
    _check_request(fmt, int8, calibration)
    choice = int8_choice(getattr(model, "model_name", None), force=int8 == "force") if int8 else None
    parse_batch(batch)
    req = _Request(batch, images, calibration, exporter, opset, threads, min_cosine, speed_batches)
    out = Path(out)
    model = model.eval()
    if fmt == "coreml":
        return _export_coreml(model, out, req)
    # The checks run on the temporary file: a file that fails them never replaces an earlier export.
    with atomic_path(out) as tmp:
        if choice is not None and choice.use:
            report = _export_int8(model, tmp, req)
        elif fmt == "torchscript":
            report = _export_torchscript(model, tmp, req)
        else:
            report = _export_onnx(model, tmp, req)
        report.path = str(out)
    report.int8_choice = choice
    return report


def _check_request(fmt: str, int8: bool, calibration: torch.Tensor | None) -> None:
    if fmt not in FORMATS:
        raise InvalidInputError(f"unknown export format {fmt!r}; choose one of {FORMATS}")
    if int8 not in (False, True, "force"):
        raise InvalidInputError(f"int8 must be False, True (where it pays) or 'force', got {int8!r}")
    if int8 and fmt != "onnx":
        raise InvalidInputError("--int8 is only available for the ONNX format (ONNX Runtime static quantisation)")
    if int8:
        check_calibration(calibration)


def _export_coreml(model: nn.Module, out: Path, req: _Request) -> ExportReport:
    with atomic_dir(out) as build:  # the spec is checked before the folder takes the place of ``out``
        export_coreml(model, build, batch=req.batch)
        report = ExportReport("coreml", str(out), _size(build), req.batch_text)
        report.graph = check_coreml_spec(build, batch=parse_batch(req.batch))
    report.parity_note = "Core ML prediction needs macOS; checked the conversion and the model's spec"
    return report


def _export_torchscript(model: nn.Module, tmp: Path, req: _Request) -> ExportReport:
    export_torchscript(model, tmp, batch=req.batch)
    report = ExportReport("torchscript", str(tmp), _size(tmp), req.batch_text)
    if req.images is not None:
        report.parity = _require(check_torchscript(model, tmp, req.images), req.min_cosine, "TorchScript")
    return report


def _export_onnx(model: nn.Module, tmp: Path, req: _Request) -> ExportReport:
    write_onnx(model, tmp, batch=req.batch, exporter=req.exporter, opset=req.opset)  # into export_model's temporary
    report = ExportReport("onnx", str(tmp), _size(tmp), req.batch_text)
    if req.images is not None:
        report.parity = _require(check_onnx(model, tmp, req.images, req.threads), req.min_cosine, "ONNX Runtime")
    return report


def _export_int8(model: nn.Module, out: Path, req: _Request) -> ExportReport:
    """The fp32 ONNX model (checked against PyTorch), quantised into ``out`` and compared with the fp32 one."""
    with scratch_dir(out) as tmp:  # beside the output, not under TMPDIR
        fp32 = tmp / "fp32.onnx"
        write_onnx(model, fp32, batch=req.batch, exporter=req.exporter, opset=req.opset)
        report = ExportReport("onnx", str(out), 0, req.batch_text)
        if req.images is not None:
            report.parity = _require(check_onnx(model, fp32, req.images, req.threads), req.min_cosine, "ONNX Runtime (fp32, before quantisation)")
        quantize_onnx_int8(fp32, out, req.calibration)
        report.size_bytes = _size(out)
        images = req.images if req.images is not None else req.calibration
        report.int8 = compare_int8(fp32, out, images, threads=req.threads, speed_batches=req.speed_batches)
    return report


def _size(path: Path) -> int:
    if path.is_dir():  # .mlpackage
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size
