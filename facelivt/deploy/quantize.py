"""int8 ONNX (layer 2 of :mod:`facelivt.deploy`): ONNX Runtime static quantisation (QDQ, per-channel
weights) calibrated on real face crops, and its comparison with the fp32 model (:class:`Int8Comparison`)."""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from facelivt.deploy.parity import compare_embeddings
from facelivt.deploy.sessions import onnx_fixed_batch, onnx_runner, onnx_session, run_batched
from facelivt.deploy.timing import measure_interleaved
from facelivt.errors import InputNotFoundError, InvalidInputError
from facelivt.files import atomic_path, scratch_dir

INT8_MIN_COSINE = 0.99  # the export report's target for the smallest int8-vs-fp32 cosine
# Fewer faces than this give activation ranges of a few people's crops: refused rather than quantised on.
MIN_CALIBRATION_IMAGES = 16
# The compute-heavy ops; norms, GELU and the element-wise ops stay float (ORT runs them in float anyway).
QUANTIZED_OPS = ("Conv", "MatMul", "Gemm")


def check_calibration(images: torch.Tensor | np.ndarray | None, minimum: int = MIN_CALIBRATION_IMAGES) -> np.ndarray:
    """``images`` as a float32 (N, 3, H, W) array of at least ``minimum`` crops, or a clear error."""
    if images is None:
        raise InvalidInputError("int8 needs calibration images: real aligned 112x112 face crops (e.g. made by "
                                "`facelivt align PHOTOS --out DIR`), normalised as the model's input")
    x = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if x.ndim != 4 or x.shape[1] != 3:
        raise InvalidInputError(f"calibration images must be an (N, 3, H, W) batch of face crops, got shape {x.shape}")
    if len(x) < minimum:
        raise InvalidInputError(f"int8 calibration needs at least {minimum} face crops, got {len(x)}: activation "
                                f"ranges from fewer faces do not cover other people's")
    return x


class CropsCalibrationReader:
    """``onnxruntime.quantization.CalibrationDataReader`` over a batch of crops, fed ``batch`` at a time."""

    def __init__(self, images: torch.Tensor | np.ndarray, input_name: str = "input", batch: int = 1, minimum: int = 1):
        x = check_calibration(images, minimum)
        self.batches = [np.ascontiguousarray(x[i : i + batch], dtype=np.float32) for i in range(0, len(x) - batch + 1, batch)]
        self.input_name = input_name
        self._it = iter(self.batches)

    def get_next(self):
        chunk = next(self._it, None)
        return None if chunk is None else {self.input_name: chunk}

    def rewind(self) -> None:
        self._it = iter(self.batches)


def quantize_onnx_int8(
    fp32_path: str | os.PathLike,
    out_path: str | os.PathLike,
    calibration: torch.Tensor | np.ndarray,
    *,
    per_channel: bool = True,
    method: str = "minmax",
    op_types: tuple[str, ...] = QUANTIZED_OPS,
    min_images: int = MIN_CALIBRATION_IMAGES,
) -> Path:
    """Statically quantise an fp32 ONNX model: QDQ format, int8 per-channel weights, uint8 activations.

    The graph is first pre-processed (shape inference + ORT's basic fusions, as ONNX Runtime advises),
    then calibrated on ``calibration`` (N, 3, H, W), at least ``min_images`` real face crops.
    ``method``: ``minmax``, ``percentile`` or ``entropy``.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile, "entropy": CalibrationMethod.Entropy}
    if method not in methods:
        raise InvalidInputError(f"unknown calibration method {method!r}; choose one of {sorted(methods)}")
    check_calibration(calibration, min_images)
    fp32_path = Path(fp32_path)
    if not fp32_path.is_file():
        raise InputNotFoundError(f"ONNX model not found: {fp32_path}")
    out_path = Path(out_path)
    session = onnx_session(fp32_path)
    fixed = onnx_fixed_batch(session)
    reader = CropsCalibrationReader(calibration, session.get_inputs()[0].name, batch=fixed or 1, minimum=min_images)
    with atomic_path(out_path) as target, scratch_dir(out_path) as tmp:  # beside the output, not under TMPDIR
        pre = tmp / "pre.onnx"
        try:
            quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=False)
        except TypeError:  # ORT's symbolic shape inference fails on some graphs (EdgeFace's): ONNX's own then
            quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
        quantize_static(
            str(pre),
            str(target),
            reader,
            quant_format=QuantFormat.QDQ,
            per_channel=per_channel,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=methods[method],
            op_types_to_quantize=list(op_types),
            extra_options={"CalibTensorRangeSymmetric": False, "QDQDisableWeightAdjustForInt32Bias": True},
        )
    return out_path


@dataclass
class Int8Speed:
    """ONNX Runtime latency of the int8 and the fp32 model at one batch size (medians, interleaved)."""

    batch: int
    fp32_ms: float
    int8_ms: float
    speedup: float  # fp32_ms / int8_ms


@dataclass
class Int8Comparison:
    """The int8 model against its fp32 source: sizes, embedding agreement and speed."""

    fp32_bytes: int
    int8_bytes: int
    images: int
    min_cosine: float
    mean_cosine: float
    max_abs_diff: float
    meets_target: bool  # min_cosine >= INT8_MIN_COSINE
    speed: list[Int8Speed] = field(default_factory=list)
    threads: int | None = None

    def to_dict(self) -> dict:
        """The JSON form (a plain dict, the layout of ``facelivt export --json``'s ``int8``)."""
        return asdict(self)


def compare_int8(
    fp32_path: str | os.PathLike,
    int8_path: str | os.PathLike,
    images: torch.Tensor,
    threads: int | None = None,
    runs: int = 10,
    speed_batches: tuple[int, ...] = (1,),
) -> Int8Comparison:
    """Sizes, embedding agreement (cosine, on ``images``) and ONNX Runtime latency of int8 vs fp32 at
    each of ``speed_batches`` (a fixed-batch model is timed at its own batch)."""
    s32, s8 = onnx_session(fp32_path, threads), onnx_session(int8_path, threads)
    r32, r8 = onnx_runner(s32), onnx_runner(s8)
    x = images.numpy()
    fixed = onnx_fixed_batch(s32)
    parity = compare_embeddings(run_batched(r32, x, fixed), run_batched(r8, x, fixed))
    speed = [_speed(r32, r8, np.resize(x, (b, *x.shape[1:])), runs) for b in ([fixed] if fixed else sorted(set(speed_batches)))]
    return Int8Comparison(
        fp32_bytes=Path(fp32_path).stat().st_size,
        int8_bytes=Path(int8_path).stat().st_size,
        images=parity.images,
        min_cosine=parity.min_cosine,
        mean_cosine=parity.mean_cosine,
        max_abs_diff=parity.max_abs_diff,
        meets_target=parity.min_cosine >= INT8_MIN_COSINE,
        speed=speed,
        threads=threads,
    )


def _speed(r32, r8, batch: np.ndarray, runs: int) -> Int8Speed:
    """fp32 and int8 timed interleaved on ``batch`` (``np.resize`` repeats the crops to fill a larger batch)."""
    b = len(batch)
    lat = measure_interleaved({"fp32": (r32, (batch,)), "int8": (r8, (batch,))}, warmup=2, runs=runs if b == 1 else max(2, runs // 4), rounds=2)
    fp32, int8 = lat["fp32"].median_ms, lat["int8"].median_ms
    return Int8Speed(b, fp32, int8, fp32 / int8)
