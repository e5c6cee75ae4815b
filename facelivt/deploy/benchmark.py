"""Latency measurement and the benchmark tables of issue 5 (seed Tables III and IV, and the peers).

``measure_latency(fn, inputs, warmup, runs)`` is generic: any callable, any inputs, median in ms.
``measure_interleaved`` measures several candidates in alternating rounds, so a change in machine
load during the run hits every candidate alike (the reference machine is shared).

``run_bench`` builds every table in one run on the current machine: PyTorch eager (deploy form) and
ONNX Runtime (the graph of :func:`facelivt.deploy.export.export_onnx`, dynamic batch), CPU with a
stated number of threads, plus CUDA when present.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from facelivt.files import atomic_paths

PEER_TABLE_MODELS = ("facelivt_s", "facelivt_m", "facelivt_s_mhsa", "edgeface_xs", "mobilefacenet")
TABLES = ("table3", "table4", "peers")
REFERENCE = "facelivt_s"
RUNTIME_LABELS = {"eager": "PyTorch eager", "opt": "PyTorch optimize_for_inference", "ort": "ONNX Runtime"}


# ------------------------------------------------------------------------------------ measurement


@dataclass
class LatencyStats:
    """Milliseconds per call."""

    median_ms: float
    min_ms: float
    p10_ms: float
    p90_ms: float
    runs: int

    @classmethod
    def from_samples(cls, seconds: Sequence[float]) -> "LatencyStats":
        if not seconds:
            raise ValueError("no latency samples")
        ms = np.asarray(seconds, dtype=np.float64) * 1e3
        return cls(float(np.median(ms)), float(ms.min()), float(np.percentile(ms, 10)), float(np.percentile(ms, 90)), len(ms))


def _call(fn: Callable, inputs: Any) -> Any:
    return fn(*inputs) if isinstance(inputs, tuple) else fn(inputs)


CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "thread": time.thread_time}


def _samples(fn: Callable, inputs: Any, runs: int, sync: Callable[[], None] | None, clock: Callable[[], float] = time.perf_counter) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = clock()
        _call(fn, inputs)
        if sync is not None:
            sync()
        out.append(clock() - t0)
    return out


def measure(
    fn: Callable,
    inputs: Any = (),
    warmup: int = 5,
    runs: int = 20,
    sync: Callable[[], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> LatencyStats:
    """Call ``fn(*inputs)`` (``fn(inputs)`` when ``inputs`` is not a tuple) ``warmup`` times, then time
    ``runs`` calls. ``sync`` runs after each timed call (e.g. ``torch.cuda.synchronize``). ``clock``:
    wall clock by default; ``time.thread_time`` measures the CPU time of the calling thread, which a
    busy machine does not inflate (meaningful only when all the work runs on that thread: 1 thread)."""
    if warmup < 0 or runs < 1:
        raise ValueError(f"need warmup >= 0 and runs >= 1, got warmup={warmup}, runs={runs}")
    for _ in range(warmup):
        _call(fn, inputs)
    if sync is not None:
        sync()
    return LatencyStats.from_samples(_samples(fn, inputs, runs, sync, clock))


def measure_latency(
    fn: Callable,
    inputs: Any = (),
    warmup: int = 5,
    runs: int = 20,
    sync: Callable[[], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    """Median milliseconds of ``fn(*inputs)`` after ``warmup`` calls (see :func:`measure`)."""
    return measure(fn, inputs, warmup, runs, sync, clock).median_ms


def measure_interleaved(
    candidates: dict[str, tuple[Callable, Any]],
    warmup: int = 5,
    runs: int = 20,
    rounds: int = 3,
    sync: Callable[[], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, LatencyStats]:
    """Latency of several ``name -> (fn, inputs)`` candidates: after warm-up, ``rounds`` rounds in which
    each candidate is timed ``ceil(runs / rounds)`` times in turn; statistics over all samples.

    Each candidate's block in a round starts with one untimed call: it re-warms the caches that the
    other candidates' weights and activations evicted (the cost of interleaving, not of the model)."""
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    if runs < 1 or warmup < 0:
        raise ValueError(f"need warmup >= 0 and runs >= 1, got warmup={warmup}, runs={runs}")
    per_round = -(-runs // rounds)
    for fn, inputs in candidates.values():
        for _ in range(warmup):
            _call(fn, inputs)
    samples: dict[str, list[float]] = {k: [] for k in candidates}
    for _ in range(rounds):
        for name, (fn, inputs) in candidates.items():
            _call(fn, inputs)
            if sync is not None:
                sync()
            samples[name] += _samples(fn, inputs, per_round, sync, clock)
    return {k: LatencyStats.from_samples(v) for k, v in samples.items()}


# ----------------------------------------------------------------------------------- environment


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(threads: int, device: str) -> dict[str, Any]:
    import onnxruntime as ort

    env = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "cpu": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "threads": threads,
        "device": device,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": ort.__version__,
        "ort_providers": ort.get_available_providers(),
        "load_average_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    if device.startswith("cuda"):
        env["cuda_device"] = torch.cuda.get_device_name(torch.device(device))
    return env


# ------------------------------------------------------------------------------------- runners


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
    from facelivt.deploy.export import onnx_session

    # Not spinning: many sessions live side by side here, and an idle one's busy-waiting workers would
    # take the cores from the one being timed.
    session = onnx_session(path, threads, providers, spin=False)
    name = session.get_inputs()[0].name
    x = np.random.default_rng(seed).standard_normal((batch, 3, input_size, input_size), dtype=np.float32)
    return (lambda inp: session.run(None, {name: inp})), (x,)


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
    tables: tuple[str, ...] = TABLES
    onnx: bool = True
    quick: bool = False
    cuda_table: bool = True  # with device "cpu", also a peer table on the GPU when CUDA is present
    clock: str = "wall"  # "thread": CPU time of the calling thread (needs threads=1): robust on a busy machine
    optimized: bool = False  # also time facelivt.optimize_for_inference (TorchScript freeze + oneDNN fusions)

    @classmethod
    def quick_config(cls, **kw) -> "BenchConfig":
        base = dict(batch_sizes=(1, 4), warmup=1, runs=2, rounds=1, quick=True)
        base.update(kw)
        return cls(**base)

    def validate(self) -> None:
        from facelivt.models import list_models

        if self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")
        if not self.batch_sizes or any(b < 1 for b in self.batch_sizes):
            raise ValueError(f"batch sizes must be positive, got {self.batch_sizes}")
        unknown = [t for t in self.tables if t not in TABLES]
        if unknown:
            raise ValueError(f"unknown table(s) {unknown}; choose from {TABLES}")
        known = set(list_models())
        missing = [m for m in self.models if m not in known]
        if missing:
            raise ValueError(f"unknown model(s) {missing}; available: {', '.join(sorted(known))}")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError("device 'cuda' asked for but CUDA is not available here")
        if self.clock not in CLOCKS:
            raise ValueError(f"unknown clock {self.clock!r}; choose one of {sorted(CLOCKS)}")
        if self.clock == "thread" and (self.threads != 1 or self.device != "cpu"):
            raise ValueError("clock 'thread' measures the calling thread only: use it with threads=1 on the CPU")


@dataclass
class BenchResult:
    environment: dict[str, Any]
    config: dict[str, Any]
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    goals: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=str)


def _complexity(model: nn.Module) -> tuple[float, float]:
    from facelivt.deploy.counting import count_macs, count_params

    return count_params(model) / 1e6, count_macs(model) / 1e6


class _Bench:
    def __init__(self, cfg: BenchConfig, workdir: Path, progress: Callable[[str], None]):
        import onnxruntime as ort

        self.cfg = cfg
        self.workdir = workdir
        self.progress = progress
        self.cuda = cfg.device.startswith("cuda")
        self.providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if self.cuda else ["CPUExecutionProvider"]
        # ONNX Runtime on the GPU only where its CUDA provider exists (else eager only there).
        self.onnx = cfg.onnx and (not self.cuda or "CUDAExecutionProvider" in ort.get_available_providers())

    def sync(self) -> Callable[[], None] | None:
        return torch.cuda.synchronize if self.cuda else None

    def onnx_path(self, key: str, model: nn.Module) -> Path:
        from facelivt.deploy.export import export_onnx

        path = self.workdir / f"{key}.onnx"
        if not path.exists():
            self.progress(f"exporting {key} to ONNX")
            export_onnx(model, path, batch="dynamic")
        return path

    def latencies(self, models: dict[str, nn.Module], batches: Sequence[int]) -> dict[str, dict[str, LatencyStats]]:
        """``{"eager_b1": {key: stats}, "ort_b1": {...}, ...}`` measured interleaved per (runtime, batch)."""
        cfg = self.cfg
        out: dict[str, dict[str, LatencyStats]] = {}
        fast: dict[str, nn.Module] = {}
        for b in batches:
            runs = cfg.runs if b == 1 else max(2, cfg.runs // 4)
            self.progress(f"PyTorch eager, batch {b}: {', '.join(models)}")
            cands = {k: eager_runner(m, b, cfg.device) for k, m in models.items()}
            clock = CLOCKS[cfg.clock]
            out[f"eager_b{b}"] = measure_interleaved(cands, cfg.warmup if b == 1 else max(1, cfg.warmup // 4), runs, cfg.rounds, self.sync(), clock)
            if cfg.optimized:
                from facelivt.deploy.optimize import optimize_for_inference

                self.progress(f"PyTorch optimize_for_inference, batch {b}: {', '.join(models)}")
                if not fast:
                    example = torch.zeros(1, 3, 112, 112, device=cfg.device)
                    fast.update({k: optimize_for_inference(m.to(cfg.device), example_input=example) for k, m in models.items()})
                cands = {k: eager_runner(m, b, cfg.device) for k, m in fast.items()}
                out[f"opt_b{b}"] = measure_interleaved(cands, cfg.warmup if b == 1 else max(1, cfg.warmup // 4), runs, cfg.rounds, self.sync(), clock)
            if self.onnx:
                paths = {k: self.onnx_path(k, m) for k, m in models.items()}
                self.progress(f"ONNX Runtime, batch {b}: {', '.join(models)}")
                cands = {k: ort_runner(p, b, cfg.threads, self.providers) for k, p in paths.items()}
                out[f"ort_b{b}"] = measure_interleaved(cands, cfg.warmup if b == 1 else max(1, cfg.warmup // 4), runs, cfg.rounds, None, clock)
        return out

    def columns(self, lat: dict[str, dict[str, LatencyStats]], key: str, ref: str, batch_sizes: Sequence[int]) -> dict[str, Any]:
        row: dict[str, Any] = {}
        for rt in ("eager", "opt", "ort"):
            for b in batch_sizes:
                col = f"{rt}_b{b}"
                if col not in lat:
                    continue
                st = lat[col][key]
                ms = st.median_ms
                row[f"{col}_ms"] = ms
                row[f"{col}_p10_p90_ms"] = [st.p10_ms, st.p90_ms]
                row[f"{col}_ratio"] = ms / lat[col][ref].median_ms
                row[f"{col}_img_s"] = b * 1e3 / ms
        return row


def build_table3(bench: _Bench) -> list[dict[str, Any]]:
    """FaceLiVT-S: full deploy form, without residual reparameterization, without fused BN (seed Table III)."""
    from facelivt.models import create_model, reparameterize_model

    train = create_model(REFERENCE)
    forms = {
        "full": ("FaceLiVT-S (full reparameterization)", reparameterize_model(train)),
        "no_residual": ("w/o residual reparameterization", reparameterize_model(train, residual=False)),
        "no_fused_bn": ("w/o fused BN (and w/o residual rep.)", reparameterize_model(train, residual=False, fuse_bn=False)),
    }
    lat = bench.latencies({f"t3_{k}": m for k, (_, m) in forms.items()}, (1,))
    rows = []
    for k, (label, m) in forms.items():
        params, macs = _complexity(m)
        rows.append({"form": k, "label": label, "params_m": params, "macs_m": macs, **bench.columns(lat, f"t3_{k}", "t3_full", (1,))})
    return rows


def build_table4(bench: _Bench) -> list[dict[str, Any]]:
    """FaceLiVT-S with He = 8 and 16 MHLA heads (seed Table IV)."""
    from facelivt.models import create_model, reparameterize_model

    models = {f"t4_he{h}": reparameterize_model(create_model(REFERENCE, num_heads=h)) for h in (8, 16)}
    lat = bench.latencies(models, (1,))
    rows = []
    for h in (8, 16):
        params, macs = _complexity(models[f"t4_he{h}"])
        rows.append({"heads": h, "params_m": params, "macs_m": macs, **bench.columns(lat, f"t4_he{h}", "t4_he16", (1,))})
    return rows


def build_peers(bench: _Bench) -> list[dict[str, Any]]:
    """FaceLiVT variants and the peers at every batch size, eager and ONNX Runtime."""
    from facelivt.models import create_model, reparameterize_model

    names = list(bench.cfg.models)
    if REFERENCE not in names:
        names.insert(0, REFERENCE)
    models = {n: reparameterize_model(create_model(n)) for n in names}
    lat = bench.latencies(models, bench.cfg.batch_sizes)
    rows = []
    for n in names:
        params, macs = _complexity(models[n])
        rows.append({"model": n, "params_m": params, "macs_m": macs, **bench.columns(lat, n, REFERENCE, bench.cfg.batch_sizes)})
    return rows


def column_label(col: str) -> str:
    """``"ort_b32"`` -> ``"ONNX Runtime, batch 32"``."""
    rt, b = col.split("_b")
    return RUNTIME_LABELS[rt] + f", batch {b}"


def evaluate_goals(result: BenchResult) -> list[dict[str, Any]]:
    """The issue's performance goals, each with ``met`` and by how much (ratio of latencies)."""
    goals = []
    peers = {r["model"]: r for r in result.tables.get("peers", [])}
    if REFERENCE in peers and "edgeface_xs" in peers:
        ref, ef = peers[REFERENCE], peers["edgeface_xs"]
        for col in [c[: -len("_ms")] for c in ref if c.endswith("_ms") and not c.endswith("_p10_p90_ms") and not c.startswith("opt_")]:
            ratio = ef[f"{col}_ms"] / ref[f"{col}_ms"]
            goals.append({
                "goal": f"FaceLiVT-S faster than EdgeFace-XS ({column_label(col)})",
                "met": ratio > 1.0,
                "facelivt_s_ms": ref[f"{col}_ms"],
                "edgeface_xs_ms": ef[f"{col}_ms"],
                "edgeface_over_facelivt": ratio,
            })
    t3 = {r["form"]: r for r in result.tables.get("table3", [])}
    if len(t3) == 3:
        for col in [c[: -len("_ms")] for c in t3["full"] if c.endswith("_ms") and not c.endswith("_p10_p90_ms") and not c.startswith("opt_")]:
            a, b, c = (t3[k][f"{col}_ms"] for k in ("full", "no_residual", "no_fused_bn"))
            goals.append({
                "goal": f"Table III ordering full < w/o residual rep. < w/o fused BN ({column_label(col)})",
                "met": a < b < c,
                "ms": [a, b, c],
            })
    return goals


def run_bench(cfg: BenchConfig, progress: Callable[[str], None] | None = None) -> BenchResult:
    """Every requested table, measured in one run (see the module docstring)."""
    cfg.validate()
    progress = progress or (lambda s: None)
    import facelivt.models.peers  # noqa: F401  (registers the peer models)

    torch.set_num_threads(cfg.threads)
    result = BenchResult(environment(cfg.threads, cfg.device), asdict(cfg))
    builders = {"table3": build_table3, "table4": build_table4, "peers": build_peers}
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


# -------------------------------------------------------------------------------------- markdown


def _fmt(v: Any, digits: int = 2) -> str:
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _latency_headers(row: dict[str, Any]) -> list[tuple[str, str]]:
    cols = []
    for k in row:
        if k.endswith("_ms") and not k.endswith("_p10_p90_ms"):
            base = k[: -len("_ms")]
            rt, b = base.split("_b")
            label = RUNTIME_LABELS[rt] + f" b{b}"
            cols += [(k, f"{label} (ms)"), (f"{base}_ratio", "x S"), (f"{base}_img_s", "img/s")]
    return cols


def _table(rows: list[dict[str, Any]], first: list[tuple[str, str]]) -> list[str]:
    if not rows:
        return ["(no rows)"]
    cols = first + [("params_m", "params (M)"), ("macs_m", "MACs (M)")] + _latency_headers(rows[0])
    lines = ["| " + " | ".join(h for _, h in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = []
        for k, _ in cols:
            v = r.get(k, "")
            digits = 3 if k in ("params_m",) else (1 if k in ("macs_m",) or k.endswith("img_s") else 2)
            cells.append(_fmt(v, digits))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def to_markdown(result: BenchResult) -> str:
    env, cfg = result.environment, result.config
    lines = [
        "# FaceLiVT latency benchmark",
        "",
        f"- machine: {env['cpu']} ({env['cpu_cores']} logical CPUs), device `{env['device']}`"
        + (f" ({env.get('cuda_device')})" if env.get("cuda_device") else ""),
        f"- threads: {env['threads']} (torch intra-op and ONNX Runtime intra-op)",
        f"- torch {env['torch']}, onnxruntime {env['onnxruntime']}, python {env['python']}; {env['date']}",
        f"- load average (1, 5, 15 min) at start {env.get('load_average_start')}, at end {env.get('load_average_end')}",
        f"- clock: {'CPU time of the calling thread (time.thread_time): not inflated by other load' if cfg.get('clock') == 'thread' else 'wall clock'}",
        f"- method: deploy form; medians over {cfg['runs']} timed runs at batch 1 (a quarter of that at larger batches) after "
        f"{cfg['warmup']} warm-up runs, candidates of a table interleaved over {cfg['rounds']} rounds (one untimed call opens each block); "
        "ONNX Runtime runs the `facelivt export` graph (dynamic batch, all graph optimisations, idle workers not spinning)"
        + ("; QUICK MODE (few runs, small batch): numbers are not meaningful" if cfg.get("quick") else ""),
        "- `x S`: latency relative to FaceLiVT-S (full form / He=16 in Tables III/IV); img/s = batch / latency",
        "",
    ]
    if "table3" in result.tables:
        lines += ["## Table III: structural reparameterization (FaceLiVT-S)", ""]
        lines += _table(result.tables["table3"], [("label", "form")]) + [""]
        lines += ["ONNX export folds BatchNorm into the convolutions and ONNX Runtime fuses the residual Add into its convolutions, "
                  "so the three forms converge there; the eager columns show the ablation.", ""]
    if "table4" in result.tables:
        lines += ["## Table IV: number of MHLA heads He (FaceLiVT-S)", ""]
        lines += _table(result.tables["table4"], [("heads", "He")]) + [""]
    if "peers" in result.tables:
        lines += [f"## FaceLiVT and peers ({env['device']})", ""]
        lines += _table(result.tables["peers"], [("model", "model")]) + [""]
    if "peers_cuda" in result.tables:
        lines += [f"## FaceLiVT and peers (CUDA, {env.get('cuda_device')})", ""]
        lines += _table(result.tables["peers_cuda"], [("model", "model")]) + [""]
    if result.goals:
        lines += ["## Goals", ""]
        for g in result.goals:
            mark = "met" if g["met"] else "MISSED"
            if "edgeface_over_facelivt" in g:
                r = g["edgeface_over_facelivt"]
                detail = f"FaceLiVT-S {g['facelivt_s_ms']:.2f} ms vs EdgeFace-XS {g['edgeface_xs_ms']:.2f} ms: " + (
                    f"FaceLiVT-S {r:.2f}x faster" if r > 1 else f"FaceLiVT-S {1 / r:.2f}x slower ({(1 / r - 1) * 100:.0f}% over)"
                )
            else:
                detail = "full / w/o residual rep. / w/o fused BN: " + " / ".join(f"{v:.2f}" for v in g["ms"]) + " ms"
            lines.append(f"- {g['goal']}: **{mark}** ({detail})")
        lines.append("")
        note = throughput_note(result)
        if note:
            lines += [note, ""]
    return "\n".join(lines)


def throughput_note(result: BenchResult) -> str:
    """Where FaceLiVT-S is slower than EdgeFace-XS: the MAC ratio against the latency ratio, i.e. how
    fast each runs its multiply-accumulates (the usual reason on CPUs: FaceLiVT-S does about twice
    the MACs, and a CPU runtime does not gain from what makes it fast on a phone's NPU)."""
    peers = {r["model"]: r for r in result.tables.get("peers", [])}
    missed = [g for g in result.goals if "edgeface_over_facelivt" in g and not g["met"]]
    if not missed or REFERENCE not in peers or "edgeface_xs" not in peers:
        return ""
    mac_ratio = peers[REFERENCE]["macs_m"] / peers["edgeface_xs"]["macs_m"]
    parts = []
    for g in missed:
        lat_ratio = 1 / g["edgeface_over_facelivt"]
        parts.append(f"{g['goal'].split('(')[-1].rstrip(')')}: {lat_ratio:.2f}x the latency at "
                     f"{mac_ratio / lat_ratio:.2f}x EdgeFace-XS's MACs per second")
    return (f"Note: FaceLiVT-S does {mac_ratio:.2f}x the MACs of EdgeFace-XS ({peers[REFERENCE]['macs_m']:.1f} M vs "
            f"{peers['edgeface_xs']['macs_m']:.1f} M); to be faster it must run them {mac_ratio:.2f}x as fast. Missed goals: "
            + "; ".join(parts) + ".")


def save_result(result: BenchResult, out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``bench.md`` and ``bench.json`` into ``out_dir``, as one set: on a failed write (a full disk)
    neither replaces the files of an earlier run."""
    out = Path(out_dir)
    md, js = out / "bench.md", out / "bench.json"
    with atomic_paths(md, js) as (tmp_md, tmp_js):
        tmp_md.write_text(to_markdown(result), encoding="utf-8")
        tmp_js.write_text(result.to_json(), encoding="utf-8")
    return md, js
