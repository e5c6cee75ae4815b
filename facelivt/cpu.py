"""What this CPU can do, as the kernels that run on it see it, and the defaults that follow from it.

``cpu_capability()`` reports, in one small dataclass (:class:`CpuCapability`, one-line ``summary()``):

- torch's ATen kernels: ``torch.backends.cpu.get_cpu_capability()`` (``AVX512``, ``AVX2``, ``DEFAULT``...),
  which already honours ``ATEN_CPU_CAPABILITY``;
- oneDNN's ISA (convolutions, matmuls, their reorders). PyTorch has no call that returns it, so it is
  derived the way oneDNN itself derives it: the highest level of oneDNN's ISA ladder whose CPUID
  features the CPU has (``/proc/cpuinfo`` flags), capped by ``ONEDNN_MAX_CPU_ISA`` (or the older
  ``DNNL_MAX_CPU_ISA``) as oneDNN reads it at start-up. ``tests/test_cpu.py`` checks this against the
  ``isa:`` line that ``ONEDNN_VERBOSE=1`` makes oneDNN print (in a subprocess, for both an uncapped and
  an ``AVX2``-capped oneDNN);
- MKL's: ``MKL_ENABLE_INSTRUCTIONS`` when set, else ``auto`` (MKL dispatches on CPUID);
- ONNX Runtime's: MLAS dispatches on CPUID and has no switch to cap it, so ``ort_isa`` comes from the
  flags alone. Under the AVX2 approximation below, ORT still runs its AVX-512 kernels;
- ``native_bf16``: ``torch.ops.mkldnn._is_mkldnn_bf16_supported()``, i.e. oneDNN has AVX512-BF16 or
  AMX-BF16 kernels at its (capped) ISA; elsewhere bfloat16 is emulated and slower than float32;
- the thread count (``torch.get_num_threads()``) and the cores this process may use.

``check_threads(value, option)`` is the one bound of every thread or worker count a user gives
(``--threads``, ``--workers``, ``train.num_threads``, ``data.num_workers``): at most
``max_threads()`` = 4 x the cores this process may use (``os.sched_getaffinity``).

``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2`` (set before the process
starts) selects the AVX2 kernels of torch, oneDNN and MKL on an AVX-512 machine, an approximation of
an AVX2 CPU; ``benchmarks/isa_tables.sh`` uses it.

``cpu_defaults(cap)`` turns a capability into :class:`CpuDefaults` (memory layout for training and
inference, autocast, the 1x1-conv-as-linear bound, ONNX Runtime first or not) by a measured rule: per
ISA, the alternative that was faster in the figures of :data:`MEASURED` (one run per ISA, written down
there with the command that produced them; ``machine_defaults()`` is this process's). The choice logic
takes the capability as an argument, so tests inject one. A one-time per-machine calibration was not
needed: every choice but ONNX Runtime's could be measured for both ISAs on one machine.
"""
from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib import metadata
from typing import Any

import torch

from facelivt.errors import InvalidInputError

APPROX_AVX2_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}

_AVX512 = ("avx512f", "avx512bw", "avx512vl", "avx512dq")
# oneDNN's ISA ladder (cpu_isa_traits.hpp), lowest first: (name, CPUID flags it needs, as /proc/cpuinfo names them)
ONEDNN_ISAS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("sse41", ("sse4_1",)),
    ("avx", ("avx",)),
    ("avx2", ("avx2", "fma")),
    ("avx2_vnni", ("avx2", "fma", "avx_vnni")),
    ("avx2_vnni_2", ("avx2", "fma", "avx_vnni", "avx_vnni_int8", "avx_ne_convert")),
    ("avx512_core", _AVX512),
    ("avx512_core_vnni", _AVX512 + ("avx512_vnni",)),
    ("avx512_core_bf16", _AVX512 + ("avx512_vnni", "avx512_bf16")),
    ("avx10_1_512", _AVX512 + ("avx512_vnni", "avx512_bf16", "avx512_fp16")),
    ("avx10_1_512_amx", _AVX512 + ("avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16")),
    ("avx10_1_512_amx_fp16", _AVX512 + ("avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16",
                                        "amx_fp16")),
)
# ONEDNN_MAX_CPU_ISA accepts these older names too
_ONEDNN_ALIASES = {"avx512_core_fp16": "avx10_1_512", "avx512_core_amx": "avx10_1_512_amx",
                   "avx512_core_amx_fp16": "avx10_1_512_amx_fp16"}


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPUID feature flags of the first CPU in ``/proc/cpuinfo`` (empty where there is none)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


@lru_cache(maxsize=1)
def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def onednn_isa(flags: frozenset[str], cap: str | None) -> str:
    """oneDNN's ISA: the highest ladder level the flags allow, at most ``cap`` (``ONEDNN_MAX_CPU_ISA``)."""
    names = [name for name, _ in ONEDNN_ISAS]
    top = len(names) - 1
    if cap and cap.strip().lower() not in ("", "all", "default"):
        c = cap.strip().lower()
        c = _ONEDNN_ALIASES.get(c, c)
        if c in names:
            top = names.index(c)
    best = "none"
    for name, need in ONEDNN_ISAS[: top + 1]:
        if all(f in flags for f in need):
            best = name
    return best


def ort_isa(flags: frozenset[str]) -> str:
    """The float32 kernel family ONNX Runtime's MLAS picks from CPUID (it cannot be capped)."""
    if all(f in flags for f in _AVX512):
        return "avx512"
    if "avx2" in flags and "fma" in flags:
        return "avx2"
    if "avx" in flags:
        return "avx"
    return "sse" if "sse4_1" in flags else "none"


def ort_int8_isa(flags: frozenset[str] | None = None) -> str:
    """The int8 dot-product family ONNX Runtime's MLAS u8s8 kernels (QLinearConv, int8 MatMul) pick from
    CPUID: ``amx`` (AMX-INT8 tiles), ``avx512_vnni``, ``avx_vnni`` (VNNI on 256-bit vectors), ``avx2``
    (no VNNI: int8 products through ``vpmaddubsw``, which gains least over float32) or ``none``."""
    flags = cpu_flags() if flags is None else flags
    if {"amx_tile", "amx_int8"} <= flags:
        return "amx"
    if "avx512_vnni" in flags and all(f in flags for f in _AVX512):
        return "avx512_vnni"
    if "avx_vnni" in flags:
        return "avx_vnni"
    return "avx2" if {"avx2", "fma"} <= flags else "none"


def _ort_version() -> str | None:
    try:
        return metadata.version("onnxruntime")
    except metadata.PackageNotFoundError:
        return None


def _native_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


THREADS_PER_CORE = 4  # the most threads (or worker processes) a count option may ask for, per usable core


def max_threads() -> int:
    """The largest thread or worker count an option accepts: :data:`THREADS_PER_CORE` x the cores this
    process may use. More only oversubscribe the cores, and far more break the process: 100000 torch
    threads crashed it (segmentation fault), 10000 stalled a training step for minutes."""
    return THREADS_PER_CORE * _cores()


def check_threads(value: int | None, option: str, minimum: int = 1) -> int | None:
    """``value`` of the thread or worker count ``option`` (``--threads``, ``train.num_threads``, ...), or
    :class:`InvalidInputError` naming the option and the bounds when it is below ``minimum`` or above
    :func:`max_threads`. ``None`` (the option's default) passes. Every such option is checked here."""
    if value is None:
        return None
    limit = max_threads()
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= limit:
        raise InvalidInputError(f"{option} must be an integer from {minimum} to {limit} ({THREADS_PER_CORE} x the "
                                f"{_cores()} CPU cores this process may use), got {value!r}")
    return value


@dataclass(frozen=True)
class CpuCapability:
    """What the CPU kernels of this process run with (see the module docstring for where each comes from)."""

    cpu: str
    torch: str  # torch.backends.cpu.get_cpu_capability(): AVX512, AVX2, DEFAULT, ...
    onednn: str  # oneDNN ISA level: avx2, avx512_core, avx10_1_512_amx, ...
    mkl: str  # MKL_ENABLE_INSTRUCTIONS, or "auto"
    ort: str  # ONNX Runtime MLAS family from CPUID: avx512, avx2, ...
    ort_version: str | None
    native_bf16: bool
    threads: int
    cores: int
    torch_version: str = torch.__version__

    @property
    def isa(self) -> str:
        """``avx512``, ``avx2`` or ``baseline``: the lower of torch's and oneDNN's vector width, which the
        defaults of :func:`cpu_defaults` are keyed by."""
        t = {"AVX512": 2, "AVX2": 1}.get(self.torch.upper(), 0)
        d = 2 if self.onednn.startswith(("avx512", "avx10")) else 1 if self.onednn.startswith("avx2") else 0
        return ("baseline", "avx2", "avx512")[min(t, d)]

    def summary(self) -> str:
        ort = f"ORT {self.ort_version} {self.ort}" if self.ort_version else f"ORT absent (CPU {self.ort})"
        return (f"CPU {self.cpu}: torch {self.torch}, oneDNN {self.onednn}, MKL {self.mkl}, {ort}, "
                f"native bf16 {'yes' if self.native_bf16 else 'no'}, {self.threads} thread(s) on {self.cores} core(s)")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "isa": self.isa, "summary": self.summary()}


def cpu_capability(threads: int | None = None) -> CpuCapability:
    """The capability of this process's CPU kernels now (``threads`` default: ``torch.get_num_threads()``)."""
    flags = cpu_flags()
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA")
    return CpuCapability(
        cpu=cpu_name(),
        torch=torch.backends.cpu.get_cpu_capability(),
        onednn=onednn_isa(flags, cap),
        mkl=os.environ.get("MKL_ENABLE_INSTRUCTIONS", "").strip() or "auto",
        ort=ort_isa(flags),
        ort_version=_ort_version(),
        native_bf16=_native_bf16(),
        threads=threads if threads is not None else torch.get_num_threads(),
        cores=_cores(),
    )


# ----------------------------------------------------------------------------------------- defaults


@dataclass(frozen=True)
class CpuDefaults:
    """The per-machine choices (see :func:`cpu_defaults` for the rule and the measurements behind it)."""

    train_channels_last: bool  # model.channels_last=auto
    train_linear_1x1: bool  # model.linear_1x1=auto: the train form's 1x1 ConvBNs on channels-last input as F.linear
    infer_channels_last: bool  # optimize_for_inference(channels_last=None), the eager deploy form
    amp: str  # train.amp=auto on a CPU: "bf16" or "none"
    pointwise_linear_max_rows: int  # PointwiseConv runs a 1x1 conv as F.linear up to batch*h*w rows (0: never)
    backends: tuple[str, ...]  # optimize_for_inference(backend="auto") order on a CPU

    def summary(self) -> str:
        return (f"train {'channels-last' if self.train_channels_last else 'NCHW'}"
                f"{' (1x1 as linear)' if self.train_channels_last and self.train_linear_1x1 else ''}, amp {self.amp}, "
                f"inference {'channels-last' if self.infer_channels_last else 'NCHW'}, 1x1-as-linear up to "
                f"{self.pointwise_linear_max_rows} rows, backends {' > '.join(self.backends)}")


# The measurements the rule is read from: FaceLiVT-S on the 2-core reference machine (a Xeon with AVX-512,
# AVX512-BF16 and AMX), unloaded, 2 threads, each group timed interleaved in one run; the "avx2" entries ran
# with APPROX_AVX2_ENV (ONNX Runtime keeps its AVX-512 kernels there: it cannot be capped). The host is shared
# with other machines, so step times spread by 10-20 %: only ratios within a group count.
#   train: benchmarks/train_throughput.py --threads 2 --steps 60 --rounds 12 --rows cl,cl_conv,nchw,released,peer
#          (batch 64; cl: channels-last with the 1x1 ConvBNs as F.linear, cl_conv: as convolutions), images/s
#   infer: benchmarks/cpu_defaults.py --threads 2 --runs 30 (deploy form), median ms at batch 1 and 32
# Regenerate with those commands (benchmarks/isa_tables.sh native|avx2 runs the second and shorter training
# rows) and copy the figures here.
MEASURED: dict[str, dict[str, dict[str, float]]] = {
    "avx512": {
        "train": {"cl": 76.8, "cl_conv": 73.0, "nchw": 65.5, "released": 54.2, "edgeface_xs": 107.5},
        "infer_b1": {
            "eager CL linear1x1": 14.15, "eager CL conv1x1": 15.57, "eager NCHW": 13.58,
            "torchscript CL": 14.51, "torchscript NCHW": 14.2, "onnxruntime": 7.5,
        },
        "infer_b32": {
            "eager CL linear1x1": 107.82, "eager CL conv1x1": 107.9, "eager NCHW": 104.34,
            "torchscript CL": 95.19, "torchscript NCHW": 96.07, "onnxruntime": 87.84,
        },
    },
    "avx2": {
        "train": {"cl": 59.8, "cl_conv": 57.2, "nchw": 52.6, "released": 45.8, "edgeface_xs": 86.6},
        "infer_b1": {
            "eager CL linear1x1": 15.6, "eager CL conv1x1": 16.43, "eager NCHW": 14.34,
            "torchscript CL": 16.02, "torchscript NCHW": 15.57, "onnxruntime": 6.9,
        },
        "infer_b32": {
            "eager CL linear1x1": 166.51, "eager CL conv1x1": 162.67, "eager NCHW": 159.11,
            "torchscript CL": 136.92, "torchscript NCHW": 134.42, "onnxruntime": 91.21,
        },
    },
}
LINEAR_MAX_ROWS = 1024  # batch*h*w bound of the 1x1-as-linear path where it measured faster (batch 1: 7x7 = 49 rows per image)


def _cost(m: dict[str, dict[str, float]], row: str) -> float:
    """A row's time over batch 1 and batch 32, both weighted alike (relative to the fastest row of each)."""
    return sum(m[k][row] / min(m[k].values()) for k in ("infer_b1", "infer_b32"))


def cpu_defaults(cap: CpuCapability) -> CpuDefaults:
    """The defaults for ``cap`` (a capability of :func:`cpu_capability`, or one a test makes up): per ISA
    (``cap.isa``; ``baseline`` CPUs take the AVX2 figures), the alternative that measured faster in
    :data:`MEASURED`:

    - training layout: channels-last if its faster step (1x1 ConvBNs as ``F.linear`` or as convolutions)
      beat NCHW's; the 1x1 ConvBNs as ``F.linear`` if that step beat the one with convolutions;
    - ``amp``: bfloat16 autocast only with native bf16 (AVX512-BF16 / AMX at oneDNN's ISA: 1.15-1.3x
      faster than float32 for FaceLiVT-S, docs/cpu_notes.md); elsewhere bf16 is emulated and slower than float32;
    - 1x1 conv as ``F.linear``: where it beat the convolution at batch 1 (eager, channels-last);
    - inference layout: channels-last if its best eager row beat NCHW over batch 1 and 32;
    - backend order: ONNX Runtime before TorchScript if it was faster over batch 1 and 32, then
      ``torch.compile`` and eager as fallbacks.
    """
    m = MEASURED["avx512" if cap.isa == "avx512" else "avx2"]
    cl_eager = min(_cost(m, "eager CL linear1x1"), _cost(m, "eager CL conv1x1"))
    ts = min(_cost(m,
            "torchscript CL"), _cost(m, "torchscript NCHW"))
    first = ("onnxruntime", "torchscript") if _cost(m, "onnxruntime") <= ts else ("torchscript", "onnxruntime")
    return CpuDefaults(
        train_channels_last=max(m["train"]["cl"], m["train"]["cl_conv"]) > m["train"]["nchw"],
        train_linear_1x1=m["train"]["cl"] > m["train"]["cl_conv"],
        infer_channels_last=cl_eager <= _cost(m, "eager NCHW"),
        amp="bf16" if cap.native_bf16 else "none",
        pointwise_linear_max_rows=LINEAR_MAX_ROWS if m["infer_b1"]["eager CL linear1x1"] < m["infer_b1"]["eager CL conv1x1"] else 0,
        backends=(*first, "compile", "eager"),
    )


@lru_cache(maxsize=1)
def machine_defaults() -> CpuDefaults:
    """:func:`cpu_defaults` of this process's CPU (the ISAs are fixed when the process starts)."""
    return cpu_defaults(cpu_capability())
