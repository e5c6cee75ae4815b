"""The benchmark's report (layer 3 of :mod:`facelivt.deploy`, below :mod:`~facelivt.deploy.benchmark`):
``bench.md`` (:func:`to_markdown`) and writing it with ``bench.json`` as one set (:func:`save_result`)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from facelivt.deploy.bench_results import REFERENCE, RUNTIME_LABELS, BenchResult, BenchRow, Column, SpeedGoal
from facelivt.files import atomic_paths

# (header, the row's value, digits)
_Cell = tuple[str, Callable[[BenchRow], Any], int]


def _fmt(v: Any, digits: int = 2) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _latency(col: Column, attr: str) -> Callable[[BenchRow], Any]:
    return lambda row: getattr(row.latency[col], attr) if col in row.latency else None


def _columns(first_row: BenchRow, first: list[tuple[str, str]]) -> list[_Cell]:
    """The identity columns ``first`` ((field, header) pairs), the sizes, then ms / ratio / img/s per latency column."""
    cols: list[_Cell] = [(header, (lambda row, name=name: getattr(row, name, None)), 2) for name, header in first]
    cols += [("params (M)", lambda row: row.params_m, 3), ("MACs (M)", lambda row: row.macs_m, 1)]
    for col in first_row.latency:
        label = f"{RUNTIME_LABELS[col.runtime]} b{col.batch}"
        cols += [(f"{label} (ms)", _latency(col, "ms"), 2), ("x S", _latency(col, "ratio"), 2), ("img/s", _latency(col, "img_s"), 1)]
    return cols


def _table(rows: list[BenchRow], first: list[tuple[str, str]]) -> list[str]:
    if not rows:
        return ["(no rows)"]
    cols = _columns(rows[0], first)
    lines = ["| " + " | ".join(h for h, _, _ in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(value(r), digits) for _, value, digits in cols) + " |")
    return lines


def _header(result: BenchResult) -> list[str]:
    env, cfg = result.environment, result.config
    return [
        "# FaceLiVT latency benchmark",
        "",
        f"- machine: {env['cpu']} ({env['cpu_cores']} logical CPUs), device `{env['device']}`"
        + (f" ({env.get('cuda_device')})" if env.get("cuda_device") else ""),
        f"- threads: {env['threads']} (torch intra-op and ONNX Runtime intra-op)",
        f"- CPU capability: {env.get('cpu_capability', {}).get('summary', 'not recorded')}",
        f"- torch {env['torch']}, onnxruntime {env['onnxruntime']}, python {env['python']}; {env['date']}",
        f"- load average (1, 5, 15 min) at start {env.get('load_average_start')}, at end {env.get('load_average_end')}",
        f"- clock: {'CPU time of the calling thread (time.thread_time): not inflated by other load' if cfg.get('clock') == 'thread' else 'wall clock'}",
        f"- method: deploy form; medians over {cfg['runs']} timed runs at batch 1 (a quarter of that at larger batches) after "
        f"{cfg['warmup']} warm-up runs, candidates of a table interleaved over {cfg['rounds']} rounds (one untimed call opens each block); "
        "ONNX Runtime runs the `facelivt export` graph (dynamic batch, all graph optimisations, idle workers not spinning)"
        + ("; QUICK MODE (few runs, small batch): numbers are not meaningful" if cfg.get("quick") else ""),
        "- `x S`: latency relative to FaceLiVT-S (in the reparameterization and heads tables: its full form, "
        "He=16); img/s = batch / latency",
        "",
    ]


def _tables(result: BenchResult) -> list[str]:
    env, tables, lines = result.environment, result.tables, []
    if "table3" in tables:
        lines += ["## Structural reparameterization (FaceLiVT-S; the FaceLiVT paper's Table III)", ""]
        lines += _table(tables["table3"], [("label", "form")]) + [""]
        lines += ["ONNX export folds BatchNorm into the convolutions and ONNX Runtime fuses the residual Add into its convolutions, "
                  "so the three forms converge there; the eager columns show the ablation.", ""]
    if "table4" in tables:
        lines += ["## Number of MHLA heads He (FaceLiVT-S; the FaceLiVT paper's Table IV)", ""]
        lines += _table(tables["table4"], [("heads", "He")]) + [""]
    if "peers" in tables:
        lines += [f"## FaceLiVT and peers ({env['device']})", ""]
        lines += _table(tables["peers"], [("model", "model")]) + [""]
    if "yours" in tables:
        lines += [f"## Your model beside FaceLiVT-S ({env['device']}, FaceLiVT-S with random weights)", ""]
        lines += _table(tables["yours"], [("model", "model")]) + [""]
    if "peers_cuda" in tables:
        lines += [f"## FaceLiVT and peers (CUDA, {env.get('cuda_device')})", ""]
        lines += _table(tables["peers_cuda"], [("model", "model")]) + [""]
    return lines


def _goal_detail(g) -> str:
    if isinstance(g, SpeedGoal):
        r = g.edgeface_over_facelivt
        return f"FaceLiVT-S {g.facelivt_s_ms:.2f} ms vs EdgeFace-XS {g.edgeface_xs_ms:.2f} ms: " + (
            f"FaceLiVT-S {r:.2f}x faster" if r > 1 else f"FaceLiVT-S {1 / r:.2f}x slower ({(1 / r - 1) * 100:.0f}% over)"
        )
    return "full / w/o residual rep. / w/o fused BN: " + " / ".join(f"{v:.2f}" for v in g.ms) + " ms"


def _comparisons(result: BenchResult) -> list[str]:
    if not result.goals:
        return []
    lines = ["## Comparisons", ""]
    for g in result.goals:
        lines.append(f"- {g.goal}: **{'yes' if g.met else 'no'}** ({_goal_detail(g)})")
    lines.append("")
    note = throughput_note(result)
    if note:
        lines += [note, ""]
    return lines


def to_markdown(result: BenchResult) -> str:
    """``bench.md``: how it was measured, every table, the comparisons (FaceLiVT-S against EdgeFace-XS,
    the reparameterization's ordering)."""
    return "\n".join(_header(result) + _tables(result) + _comparisons(result))


def throughput_note(result: BenchResult) -> str:
    """Where FaceLiVT-S is slower than EdgeFace-XS: the MAC ratio against the latency ratio, i.e. how
    fast each runs its multiply-accumulates (the usual reason on CPUs: FaceLiVT-S does about twice
    the MACs, and a CPU runtime does not gain from what makes it fast on a phone's NPU)."""
    peers = {r.model: r for r in result.tables.get("peers", [])}
    missed = [g for g in result.goals if isinstance(g, SpeedGoal) and not g.met]
    if not missed or REFERENCE not in peers or "edgeface_xs" not in peers:
        return ""
    ref_macs, ef_macs = peers[REFERENCE].macs_m, peers["edgeface_xs"].macs_m
    mac_ratio = ref_macs / ef_macs
    parts = []
    for g in missed:
        lat_ratio = 1 / g.edgeface_over_facelivt
        parts.append(f"{g.goal.split('(')[-1].rstrip(')')}: {lat_ratio:.2f}x the latency at "
                     f"{mac_ratio / lat_ratio:.2f}x EdgeFace-XS's MACs per second")
    return (f"Note: FaceLiVT-S does {mac_ratio:.2f}x the MACs of EdgeFace-XS ({ref_macs:.1f} M vs "
            f"{ef_macs:.1f} M); to be faster it must run them {mac_ratio:.2f}x as fast. Where it is slower: "
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
