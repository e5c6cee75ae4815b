"""Export the deploy form to ONNX / TorchScript / Core ML and check it against PyTorch on real crops.

ONNX graphs have input ``input`` (Bx3xHxW, normalised as SPEC section 1) and output ``embedding``
(Bx512, not normalised); the batch axis is dynamic unless a fixed batch is asked for. The exported
network is :func:`facelivt.deploy.onnx_graph.prepare_for_export` of the deploy form: the same function
with shape-free attention blocks.

Every file is written atomically (:mod:`facelivt.files`): a failed export (a full disk, a parity
check that fails) leaves an earlier file of that name as it was and no partial file behind.
"""
from __future__ import annotations

import io
import os
import tempfile
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from facelivt.deploy.onnx_graph import prepare_for_export
from facelivt.files import atomic_dir, atomic_path, write_bytes

FORMATS = ("onnx", "torchscript", "coreml")
EXPORTERS = ("torchscript", "dynamo")
INPUT_NAME = "input"
OUTPUT_NAME = "embedding"
FP32_MIN_COSINE = 0.9999


@dataclass
class Parity:
    """Agreement of an exported model with PyTorch on the same images."""

    images: int
    max_abs_diff: float
    min_cosine: float
    mean_cosine: float

    def passed(self, min_cosine: float = FP32_MIN_COSINE) -> bool:
        return self.min_cosine >= min_cosine

    def describe(self) -> str:
        return f"{self.images} crops: max |diff| = {self.max_abs_diff:.3g}, min cosine = {self.min_cosine:.7f}, mean cosine = {self.mean_cosine:.7f}"


def compare_embeddings(reference: np.ndarray, other: np.ndarray) -> Parity:
    """Max absolute difference and per-row cosine similarity of two (N, D) embedding arrays."""
    reference = np.asarray(reference, dtype=np.float64)
    other = np.asarray(other, dtype=np.float64)
    if reference.shape != other.shape or reference.ndim != 2:
        raise ValueError(f"embeddings to compare must have the same (N, D) shape, got {reference.shape} and {other.shape}")
    num = (reference * other).sum(1)
    den = np.linalg.norm(reference, axis=1) * np.linalg.norm(other, axis=1)
    cos = num / np.maximum(den, 1e-30)
    return Parity(len(reference), float(np.abs(reference - other).max()), float(cos.min()), float(cos.mean()))


def parse_batch(batch: str | int | None) -> int | None:
    """``"dynamic"``/None -> None (dynamic batch axis); a positive integer (or its string) -> that fixed batch."""
    if batch is None or (isinstance(batch, str) and batch.lower() == "dynamic"):
        return None
    try:
        value = int(batch)
    except (TypeError, ValueError):
        raise ValueError(f"batch must be 'dynamic' or a positive integer, got {batch!r}") from None
    if value < 1:
        raise ValueError(f"batch must be 'dynamic' or a positive integer, got {batch!r}")
    return value


def _input_size(model: nn.Module, input_size: int | None) -> int:
    if input_size is not None:
        return input_size
    return int(getattr(getattr(model, "cfg", None), "input_size", 112))


def run_batched(fn: Callable[[np.ndarray], np.ndarray], images: np.ndarray, batch: int | None) -> np.ndarray:
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


# --------------------------------------------------------------------------------------------- ONNX


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
    Gelu, which keeps the int8 graph's GELUs fused; use 17 for older runtimes.
    """
    import onnx

    if exporter not in EXPORTERS:
        raise ValueError(f"unknown exporter {exporter!r}; choose one of {EXPORTERS}")
    fixed = parse_batch(batch)
    size = _input_size(model, input_size)
    path = Path(path)
    prepared = prepare_for_export(model, size).cpu()
    example = torch.zeros(fixed or 2, 3, size, size)  # not 1: torch.export specialises size-1 dims
    with warnings.catch_warnings(), tempfile.TemporaryDirectory() as tmp:
        warnings.simplefilter("ignore")
        raw = Path(tmp) / "model.onnx"
        if exporter == "torchscript":
            dyn = None if fixed else {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}
            torch.onnx.export(
                prepared, (example,), str(raw), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                dynamic_axes=dyn, opset_version=opset, do_constant_folding=True, dynamo=False,
            )
        else:
            shapes = None if fixed else ({0: torch.export.Dim("batch", min=1, max=4096)},)
            program = torch.onnx.export(
                prepared, (example,), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                dynamic_shapes=shapes, opset_version=opset, dynamo=True, verbose=False,
            )
            program.save(str(raw), external_data=False)
        proto = onnx.load(str(raw))
    meta = {
        "facelivt.model": str(getattr(model, "model_name", type(model).__name__)),
        "facelivt.input": f"RGB {size}x{size}, (pixel/255 - 0.5) / 0.5, NCHW",
        "facelivt.output": "embedding, not L2-normalised",
        "facelivt.batch": "dynamic" if fixed is None else str(fixed),
    }
    meta.update(metadata or {})
    for k, v in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.checker.check_model(proto)
    with atomic_path(path) as tmp:
        onnx.save(proto, str(tmp), format="protobuf")  # the format, not the temporary's suffix
    return path


def onnx_session(path: str | os.PathLike, threads: int | None = None, providers: list[str] | None = None, spin: bool = True):
    """An ONNX Runtime session with all graph optimisations (CPU unless ``providers`` say otherwise).

    ``spin=False`` stops idle worker threads from busy-waiting between runs, so that a session living
    beside PyTorch code does not take CPU away from it."""
    import onnxruntime as ort

    if not Path(path).is_file():
        raise FileNotFoundError(f"ONNX model not found: {path}")
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    if threads:
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
    if not spin:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), so, providers=providers or ["CPUExecutionProvider"])


def onnx_fixed_batch(session) -> int | None:
    dim = session.get_inputs()[0].shape[0]
    return dim if isinstance(dim, int) else None


def onnx_runner(session) -> Callable[[np.ndarray], np.ndarray]:
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: np.ascontiguousarray(x, dtype=np.float32)})[0]


# ------------------------------------------------------------------------------------- TorchScript


def export_torchscript(model: nn.Module, path: str | os.PathLike, *, batch: str | int | None = "dynamic", input_size: int | None = None) -> Path:
    """Trace + freeze the export form. The traced graph has no shape-dependent ops, so it runs at any
    batch size; ``batch`` only sets the example batch used for tracing."""
    fixed = parse_batch(batch)
    size = _input_size(model, input_size)
    path = Path(path)
    prepared = prepare_for_export(model, size).cpu()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(prepared, torch.zeros(fixed or 2, 3, size, size), check_trace=False)
        frozen = torch.jit.freeze(traced.eval())
    # Serialised in memory, then written atomically: torch.jit.save to a full disk aborts the process
    # (an uncaught c10::Error) instead of raising.
    buffer = io.BytesIO()
    torch.jit.save(frozen, buffer, _extra_files={"facelivt.json": f'{{"model": "{getattr(model, "model_name", "")}", "input_size": {size}}}'})
    write_bytes(path, buffer.getvalue())
    return path


def torchscript_runner(path: str | os.PathLike) -> Callable[[np.ndarray], np.ndarray]:
    if not Path(path).is_file():
        raise FileNotFoundError(f"TorchScript model not found: {path}")
    module = torch.jit.load(str(path), map_location="cpu").eval()

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()

    return run


# ---------------------------------------------------------------------------------------- checking


def pytorch_embeddings(model: nn.Module, images: torch.Tensor, batch: int = 64) -> np.ndarray:
    model = model.eval()
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    outs = []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            outs.append(model(images[i : i + batch].to(device)).float().cpu().numpy())
    return np.concatenate(outs)


def check_onnx(model: nn.Module, path: str | os.PathLike, images: torch.Tensor, threads: int | None = None) -> Parity:
    """Parity of an ONNX file (run in ONNX Runtime) with ``model`` on ``images``; a dynamic-batch
    model is run at the full batch and image by image."""
    session = onnx_session(path, threads)
    run = onnx_runner(session)
    ref = pytorch_embeddings(model, images)
    x = images.numpy()
    fixed = onnx_fixed_batch(session)
    out = run_batched(run, x, fixed)
    parity = compare_embeddings(ref, out)
    if fixed is None and len(x) > 1:
        single = compare_embeddings(ref, run_batched(run, x, 1))
        parity = Parity(parity.images, max(parity.max_abs_diff, single.max_abs_diff), min(parity.min_cosine, single.min_cosine), min(parity.mean_cosine, single.mean_cosine))
    return parity


def check_torchscript(model: nn.Module, path: str | os.PathLike, images: torch.Tensor) -> Parity:
    run = torchscript_runner(path)
    ref = pytorch_embeddings(model, images)
    x = images.numpy()
    a = compare_embeddings(ref, run(x))
    b = compare_embeddings(ref, run_batched(run, x, 1))
    return Parity(a.images, max(a.max_abs_diff, b.max_abs_diff), min(a.min_cosine, b.min_cosine), min(a.mean_cosine, b.mean_cosine))


# -------------------------------------------------------------------------------------- one call


@dataclass
class ExportReport:
    format: str
    path: str
    size_bytes: int
    batch: str
    parity: Parity | None = None
    parity_note: str = ""
    int8: dict | None = None
    graph: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def export_model(
    model: nn.Module,
    fmt: str,
    out: str | os.PathLike,
    *,
    batch: str | int | None = "dynamic",
    images: torch.Tensor | None = None,
    int8: bool = False,
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
    file at ``out`` is the statically quantised model, calibrated on ``calibration``; its report
    compares it with the fp32 ONNX model on ``images``.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {FORMATS}")
    if int8 and fmt != "onnx":
        raise ValueError("--int8 is only available for the ONNX format (ONNX Runtime static quantisation)")
    if int8 and calibration is None:
        raise ValueError("int8 export needs calibration images")
    fixed = parse_batch(batch)
    out = Path(out)
    batch_text = "dynamic" if fixed is None else str(fixed)
    model = model.eval()

    if fmt == "coreml":
        from facelivt.deploy.coreml import check_coreml_spec, export_coreml

        with atomic_dir(out) as build:  # the spec is checked before the folder takes the place of ``out``
            export_coreml(model, build, batch=batch)
            report = ExportReport(fmt, str(out), _size(build), batch_text)
            report.graph = check_coreml_spec(build, batch=fixed)
        report.parity_note = "Core ML prediction needs macOS; checked the conversion and the model's spec"
        return report

    # The checks run on the temporary file: a file that fails them never replaces an earlier export.
    with atomic_path(out) as tmp:
        if fmt == "torchscript":
            export_torchscript(model, tmp, batch=batch)
            report = ExportReport(fmt, str(out), _size(tmp), batch_text)
            if images is not None:
                report.parity = _require(check_torchscript(model, tmp, images), min_cosine, "TorchScript")
        elif not int8:
            export_onnx(model, tmp, batch=batch, exporter=exporter, opset=opset)
            report = ExportReport(fmt, str(out), _size(tmp), batch_text)
            if images is not None:
                report.parity = _require(check_onnx(model, tmp, images, threads), min_cosine, "ONNX Runtime")
        else:
            report = _export_int8(model, tmp, batch, images, calibration, exporter, opset, threads, min_cosine, speed_batches)
            report.path = str(out)
    return report


def _export_int8(model, out: Path, batch, images, calibration, exporter, opset, threads, min_cosine, speed_batches) -> ExportReport:
    from facelivt.deploy.quantize import compare_int8, quantize_onnx_int8

    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        export_onnx(model, fp32, batch=batch, exporter=exporter, opset=opset)
        fixed = parse_batch(batch)
        report = ExportReport("onnx", str(out), 0, "dynamic" if fixed is None else str(fixed))
        if images is not None:
            report.parity = _require(check_onnx(model, fp32, images, threads), min_cosine, "ONNX Runtime (fp32, before quantisation)")
        quantize_onnx_int8(fp32, out, calibration)
        report.size_bytes = _size(out)
        report.int8 = compare_int8(fp32, out, images if images is not None else calibration, threads=threads, speed_batches=speed_batches)
    return report


def _require(parity: Parity, min_cosine: float, what: str) -> Parity:
    if not parity.passed(min_cosine):
        raise RuntimeError(f"{what} output does not match PyTorch: {parity.describe()} (need min cosine >= {min_cosine})")
    return parity


def _size(path: Path) -> int:
    if path.is_dir():  # .mlpackage
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size
