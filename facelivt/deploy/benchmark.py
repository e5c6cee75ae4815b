"""The benchmark tables (layer 3 of :mod:`facelivt.deploy`): the FaceLiVT paper's Tables III
(structural reparameterization) and IV (MHLA heads), the peers, and the user's own model (weights
or an ONNX file).

``run_bench`` builds every table in one run on the current machine: PyTorch eager (deploy form) and
ONNX Runtime (the graph of :func:`facelivt.deploy.onnx_export.export_onnx`, dynamic batch), CPU with a
stated number of threads, plus CUDA when present. Candidates are timed with
:func:`facelivt.deploy.timing.measure_interleaved`; the rows are :mod:`facelivt.deploy.bench_results`,
the markdown and the files :mod:`facelivt.deploy.bench_report`.
"""
from __future__ import annotations

import os
import platform
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from facelivt.cpu import check_threads, cpu_capability
from facelivt.deploy.bench_results import (
    REFERENCE,
    RUNTIMES,
    BenchResult,
    BenchRow,
    Column,
    FormRow,
    HeadsRow,
    LatencyCell,
    ModelRow,
    evaluate_goals,
)
from facelivt.deploy.counting import count_macs, count_params
from facelivt.deploy.onnx_export import export_onnx
from facelivt.deploy.optimize import optimize_for_inference
from facelivt.deploy.sessions import available_providers, eager_runner, onnx_input_shape, onnxruntime_version, ort_runner
from facelivt.deploy.timing import CLOCKS, LatencyStats, measure_interleaved
from facelivt.errors import InvalidInputError
from facelivt.extras import require
from facelivt.models import create_model, list_models, load_model, preprocess_of, reparameterize_model  # facelivt.models registers the peers

PEER_TABLE_MODELS = ("facelivt_s", "facelivt_m", "facelivt_s_mhsa", "facelivtv2_xs", "facelivtv2_s", "edgeface_xs", "mobilefacenet")
YOURS = "yours"  # the table of the user's own model (``weights`` / ``onnx_file``)
DEFAULT_TABLES = ("table3", "table4", "peers")
TABLES = (*DEFAULT_TABLES, YOURS)

__all__ = [
    "PEER_TABLE_MODELS", "TABLES", "DEFAULT_TABLES", "YOURS", "BenchConfig", "run_bench", "build_table3", "build_table4", "build_peers", "build_yours",
    "cpu_model", "environment", "column_label", "measure_at_batch",
]


# ----------------------------------------------------------------------------------- environment


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(threads: int, device: str, onnx: bool = True) -> dict[str, Any]:
    """The machine and the software versions, for the report's header (``onnx``: ONNX Runtime's too;
    without it, where ONNX Runtime is not timed, it need not be installed)."""
    env = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "cpu": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "threads": threads,
        "device": device,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime_version() if onnx else "not used",
        "ort_providers": available_providers() if onnx else [],
        "load_average_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "cpu_capability": cpu_capability(threads).to_dict(),  # facelivt.cpu: torch's, oneDNN's, MKL's, ORT's ISA
    }
    if device.startswith("cuda"):
        env["cuda_device"] = torch.cuda.get_device_name(torch.device(device))
    return env


# ---------------------------------------------------------------------------------------- tables


@dataclass
class BenchConfig:
    threads: int = 2
    batch_sizes: tuple[int, ...] = (1, 32)
    warmup: int = 10
    runs: int = 30
    rounds: int = 5
    device: str = "cpu"
    models: tuple[str, ...] = PEER_TABLE_MODELS
    tables: tuple[str, ...] = DEFAULT_TABLES
    onnx: bool = True
    quick: bool = False
    cuda_table: bool = True  # with device "cpu", also a peer table on the GPU when CUDA is present
    clock: str = "wall"  # "thread": CPU time of the calling thread (needs threads=1): robust on a busy machine
    optimized: bool = False  # also time facelivt.optimize_for_inference (TorchScript freeze + oneDNN fusions)
    weights: str | None = None  # the user's weights (a reference, as load_model takes), of model ``weights_model``
    weights_model: str | None = None
    onnx_file: str | None = None  # the user's ONNX file, timed in ONNX Runtime

    @classmethod
    def quick_config(cls, **kw) -> "BenchConfig":
        base = dict(batch_sizes=(1, 4), warmup=1, runs=2, rounds=1, quick=True)
        base.update(kw)
        return cls(**base)

    def validate(self) -> None:
        check_threads(self.threads, "threads")
        if not self.batch_sizes or any(b < 1 for b in self.batch_sizes):
            raise InvalidInputError(f"batch sizes must be positive, got {self.batch_sizes}")
        unknown = [t for t in self.tables if t not in TABLES]
        if unknown:
            raise InvalidInputError(f"unknown table(s) {unknown}; choose from {TABLES}")
        known = set(list_models())
        missing = [m for m in self.models if m not in known]
        if missing:
            raise InvalidInputError(f"unknown model(s) {missing}; available: {', '.join(sorted(known))}")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise InvalidInputError("device 'cuda' asked for but CUDA is not available here")
        if self.clock not in CLOCKS:
            raise InvalidInputError(f"unknown clock {self.clock!r}; choose one of {sorted(CLOCKS)}")
        if self.clock == "thread" and (self.threads != 1 or self.device != "cpu"):
            raise InvalidInputError("clock 'thread' measures the calling thread only: use it with threads=1 on the CPU")
        self._validate_yours()

    def _validate_yours(self) -> None:
        asked = self.weights is not None or self.onnx_file is not None
        if YOURS in self.tables and not asked:
            raise InvalidInputError("the 'yours' table times your model: give weights (--weights) or an ONNX file (--onnx)")
        if asked and YOURS not in self.tables:
            raise InvalidInputError("weights or an ONNX file were given but the 'yours' table is not asked for")
        if self.weights is not None and self.weights_model is None:
            raise InvalidInputError("the weights' model is not known: name it (--model)")
        if self.onnx_file is not None and not self.onnx:
            raise InvalidInputError("an ONNX file is timed in ONNX Runtime: drop --torch-only")


def _complexity(model: nn.Module) -> tuple[float, float]:
    return count_params(model) / 1e6, count_macs(model) / 1e6


def measure_at_batch(candidates: dict[str, tuple[Callable, tuple]], batch: int, warmup: int, runs: int, rounds: int,
                     sync: Callable[[], None] | None = None, clock: Callable[[], float] = time.perf_counter) -> dict[str, LatencyStats]:
    """Runners made at ``batch`` timed interleaved (:func:`measure_interleaved`): ``warmup`` and ``runs``
    passes at batch 1, a quarter of them at larger batches (the tables' schedule)."""
    if batch != 1:
        warmup, runs = max(1, warmup // 4), max(2, runs // 4)
    return measure_interleaved(candidates, warmup, runs, rounds, sync, clock)


Latencies = dict[Column, dict[str, LatencyStats]]  # per column, per candidate key


class _Bench:
    def __init__(self, cfg: BenchConfig, workdir: Path, progress: Callable[[str], None]):
        self.cfg = cfg
        self.workdir = workdir
        self.progress = progress
        self.cuda = cfg.device.startswith("cuda")
        self.providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if self.cuda else ["CPUExecutionProvider"]
        # ONNX Runtime on the GPU only where its CUDA provider exists (else eager only there).
        self.onnx = cfg.onnx and (not self.cuda or "CUDAExecutionProvider" in available_providers())

    def sync(self) -> Callable[[], None] | None:
        return torch.cuda.synchronize if self.cuda else None

    def onnx_path(self, key: str, model: nn.Module) -> Path:
        path = self.workdir / f"{key}.onnx"
        if not path.exists():
            self.progress(f"exporting {key} to ONNX")
            export_onnx(model, path, batch="dynamic")
        return path

    def interleaved(self, candidates: dict[str, tuple[Callable, tuple]], batch: int, sync: bool = True) -> dict[str, LatencyStats]:
        """``candidates`` timed interleaved: the configured runs and warm-up at batch 1, a quarter of them above."""
        cfg = self.cfg
        return measure_at_batch(candidates, batch, cfg.warmup, cfg.runs, cfg.rounds, self.sync() if sync else None, CLOCKS[cfg.clock])

    def optimized(self, models: dict[str, nn.Module]) -> dict[str, nn.Module]:
        """:func:`optimize_for_inference` of each model, on the configured device."""
        return {k: optimize_for_inference(m.to(self.cfg.device), example_input=self._zeros(m)) for k, m in models.items()}

    def _zeros(self, model: nn.Module) -> torch.Tensor:
        side = preprocess_of(model).input_size
        return torch.zeros(1, 3, side, side, device=self.cfg.device)

    def latencies(self, models: dict[str, nn.Module], batches: Sequence[int], onnx_files: dict[str, Path] | None = None) -> Latencies:
        """Every model at every batch in each runtime, measured interleaved per (runtime, batch); the ONNX
        files of ``onnx_files`` (key -> path) join the ONNX Runtime columns."""
        cfg, names = self.cfg, ", ".join(models)
        out: Latencies = {}
        fast: dict[str, nn.Module] = {}  # made at the first batch, reused at the others
        for b in batches:
            self.progress(f"PyTorch eager, batch {b}: {names}")
            out[Column("eager", b)] = self.interleaved({k: eager_runner(m, b, cfg.device, _side(m)) for k, m in models.items()}, b)
            if cfg.optimized:
                self.progress(f"PyTorch optimize_for_inference, batch {b}: {names}")
                fast = fast or self.optimized(models)
                out[Column("opt", b)] = self.interleaved({k: eager_runner(m, b, cfg.device) for k, m in fast.items()}, b)
            if self.onnx:
                paths = {k: self.onnx_path(k, m) for k, m in models.items()}
                self.progress(f"ONNX Runtime, batch {b}: {', '.join([*models, *(onnx_files or {})])}")
                runners = {k: ort_runner(p, b, cfg.threads, self.providers, _side(models[k])) for k, p in paths.items()}
                runners.update({k: ort_file_runner(p, b, cfg.threads, self.providers) for k, p in (onnx_files or {}).items()})
                out[Column("ort", b)] = self.interleaved(runners, b, sync=False)
        return out

    def cells(self, lat: Latencies, key: str, ref: str, batch_sizes: Sequence[int]) -> dict[Column, LatencyCell]:
        """Candidate ``key``'s cell in each measured column (runtimes in order, then batches), against ``ref``."""
        cells: dict[Column, LatencyCell] = {}
        for col in (Column(rt, b) for rt in RUNTIMES for b in batch_sizes):
            if col not in lat or key not in lat[col]:  # an ONNX file has no eager cell
                continue
            st = lat[col][key]
            cells[col] = LatencyCell(st.median_ms, st.p10_ms, st.p90_ms, st.median_ms / lat[col][ref].median_ms, col.batch * 1e3 / st.median_ms)
        return cells

    def row(self, cls: type[BenchRow], net: nn.Module | None, lat: Latencies, key: str, ref: str, batch_sizes: Sequence[int], **identity) -> BenchRow:
        """A ``cls`` row for candidate ``key`` (the network ``net``; None: an ONNX file, size not counted):
        its size and its cells; ``identity``: the row's own fields."""
        params, macs = _complexity(net) if net is not None else (None, None)
        return cls(params_m=params, macs_m=macs, latency=self.cells(lat, key, ref, batch_sizes), **identity)


def _side(model: nn.Module) -> int:
    return preprocess_of(model).input_size


def onnx_file_input(path: Path, batch_sizes: Sequence[int]) -> tuple[int, int, int]:
    """``(channels, height, width)`` of the user's ONNX file, checked first: an ONNX model (not another
    file), an image-batch input, and a batch axis that takes every one of ``batch_sizes``."""
    fixed, channels, height, width = onnx_input_shape(path)
    if fixed is not None and any(b != fixed for b in batch_sizes):
        raise InvalidInputError(f"{path} takes a fixed batch of {fixed}: time it with --batch-sizes {fixed}")
    return channels, height, width


def ort_file_runner(path: Path, batch: int, threads: int, providers: list[str]) -> tuple[Callable, tuple]:
    """``(fn, inputs)`` running the user's ONNX file at ``batch`` on a fixed random input of the shape
    its first input declares."""
    fn, _ = ort_runner(path, batch, threads, providers)
    shape = (batch, *onnx_file_input(path, (batch,)))
    return fn, (np.random.default_rng(0).standard_normal(shape, dtype=np.float32),)


def build_yours(bench: _Bench) -> list[BenchRow]:
    """The user's model (weights, deploy form; and/or an ONNX file) beside FaceLiVT-S (random weights),
    at every batch size, eager and ONNX Runtime (an ONNX file: ONNX Runtime only)."""
    cfg = bench.cfg
    if cfg.onnx_file is not None:
        onnx_file_input(Path(cfg.onnx_file), cfg.batch_sizes)  # a wrong file is refused before anything is timed
    models = {REFERENCE: reparameterize_model(create_model(REFERENCE))}
    if cfg.weights is not None:
        models["weights"] = load_model(cfg.weights_model, cfg.weights, progress=False)
    files = {"onnx_file": Path(cfg.onnx_file)} if cfg.onnx_file is not None else {}
    lat = bench.latencies(models, cfg.batch_sizes, files)
    names = {REFERENCE: REFERENCE, "weights": f"{cfg.weights_model} ({cfg.weights})", "onnx_file": str(cfg.onnx_file)}
    return [bench.row(ModelRow, models.get(k), lat, k, REFERENCE, cfg.batch_sizes, model=names[k]) for k in [*models, *files]]


def build_table3(bench: _Bench) -> list[BenchRow]:
    """FaceLiVT-S: full deploy form, without residual reparameterization, without fused BN (the paper's Table III)."""
    train = create_model(REFERENCE)
    forms = {
        "full": ("FaceLiVT-S (full reparameterization)", reparameterize_model(train)),
        "no_residual": ("w/o residual reparameterization", reparameterize_model(train, residual=False)),
        "no_fused_bn": ("w/o fused BN (and w/o residual rep.)", reparameterize_model(train, residual=False, fuse_bn=False)),
    }
    lat = bench.latencies({f"t3_{k}": m for k, (_, m) in forms.items()}, (1,))
    return [bench.row(FormRow, m, lat, f"t3_{k}", "t3_full", (1,), form=k, label=label) for k, (label, m) in forms.items()]


def build_table4(bench: _Bench) -> list[BenchRow]:
    """FaceLiVT-S with He = 8 and 16 MHLA heads (the paper's Table IV)."""
    models = {f"t4_he{h}": reparameterize_model(create_model(REFERENCE, num_heads=h)) for h in (8, 16)}
    lat = bench.latencies(models, (1,))
    return [bench.row(HeadsRow, models[f"t4_he{h}"], lat, f"t4_he{h}", "t4_he16", (1,), heads=h) for h in (8, 16)]


def build_peers(bench: _Bench) -> list[BenchRow]:
    """FaceLiVT variants and the peers at every batch size, eager and ONNX Runtime."""
    names = list(bench.cfg.models)
    if REFERENCE not in names:
        names.insert(0, REFERENCE)
    models = {n: reparameterize_model(create_model(n)) for n in names}
    batches = bench.cfg.batch_sizes
    lat = bench.latencies(models, batches)
    return [bench.row(ModelRow, models[n], lat, n, REFERENCE, batches, model=n) for n in names]


def column_label(col: str) -> str:
    """``"ort_b32"`` -> ``"ONNX Runtime, batch 32"`` (see :attr:`Column.label`)."""
    return Column.parse(col).label


def run_bench(cfg: BenchConfig, progress: Callable[[str], None] | None = None) -> BenchResult:
    """Every requested table, measured in one run (see the module docstring)."""
    cfg.validate()
    progress = progress or (lambda s: None)
    torch.set_num_threads(cfg.threads)
    if cfg.onnx:  # refused now, not after the PyTorch timings
        require("onnxruntime", "Timing in ONNX Runtime (--torch-only: PyTorch only)")
    result = BenchResult(environment(cfg.threads, cfg.device, cfg.onnx), asdict(cfg))
    progress(result.environment["cpu_capability"]["summary"])
    builders = {"table3": build_table3, "table4": build_table4, "peers": build_peers, YOURS: build_yours}
    with tempfile.TemporaryDirectory() as tmp:
        bench = _Bench(cfg, Path(tmp), progress)
        for t in cfg.tables:
            torch.manual_seed(0)
            result.tables[t] = builders[t](bench)
        if "peers" in cfg.tables and cfg.cuda_table and not bench.cuda and torch.cuda.is_available():
            gpu = replace(cfg, device="cuda")
            result.environment["cuda_device"] = torch.cuda.get_device_name(0)
            result.tables["peers_cuda"] = build_peers(_Bench(gpu, Path(tmp), progress))
    if hasattr(os, "getloadavg"):
        result.environment["load_average_end"] = list(os.getloadavg())
    result.goals = evaluate_goals(result)
    return result
