"""Latency helpers and the benchmark tables' plumbing (the timings themselves are the lead's full run)."""
from __future__ import annotations

import json
import time

import pytest

from facelivt.deploy.bench_report import save_result, to_markdown
from facelivt.deploy.bench_results import BenchResult, Column, evaluate_goals
from facelivt.deploy.benchmark import BenchConfig, run_bench
from facelivt.deploy.timing import LatencyStats, measure, measure_interleaved, measure_latency


def test_measure_latency_times_the_call():
    calls = []

    def work(a, b):
        calls.append((a, b))
        time.sleep(0.004)

    ms = measure_latency(work, (1, 2), warmup=2, runs=5)
    assert 3.5 <= ms < 60
    assert len(calls) == 7 and calls[0] == (1, 2)
    stats = measure(lambda x: time.sleep(0.001 * x), 2, warmup=0, runs=3)  # non-tuple input is one argument
    assert stats.runs == 3 and stats.min_ms <= stats.median_ms <= stats.p90_ms and stats.min_ms >= 1.5
    with pytest.raises(ValueError, match="runs"):
        measure_latency(work, (1, 2), warmup=0, runs=0)


def test_measure_interleaved_runs_every_candidate_in_rounds():
    order = []
    cands = {"a": (lambda: order.append("a"), ()), "b": (lambda: (order.append("b"), time.sleep(0.003)), ())}
    res = measure_interleaved(cands, warmup=1, runs=4, rounds=2)
    assert res["a"].runs == 4 and res["b"].runs == 4
    assert res["b"].median_ms > res["a"].median_ms
    # after warm-up (a, b): per round, each block is one untimed re-warm call + 2 timed calls
    rounds = order[2:]
    assert rounds == ["a"] * 3 + ["b"] * 3 + ["a"] * 3 + ["b"] * 3
    with pytest.raises(ValueError, match="rounds"):
        measure_interleaved(cands, rounds=0)


def test_latency_stats_needs_samples():
    with pytest.raises(ValueError, match="no latency samples"):
        LatencyStats.from_samples([])


def test_bench_config_validation():
    with pytest.raises(ValueError, match="unknown model"):
        BenchConfig(models=("facelivt_s", "resnet50")).validate()
    with pytest.raises(ValueError, match="table"):
        BenchConfig(tables=("table9",)).validate()
    with pytest.raises(ValueError, match="threads"):
        BenchConfig(threads=0).validate()


def _row(model, e1, o1):
    return {"model": model, "params_m": 1.0, "macs_m": 2.0, "eager_b1_ms": e1, "eager_b1_ratio": 1.0, "eager_b1_img_s": 1e3 / e1,
            "ort_b1_ms": o1, "ort_b1_ratio": 1.0, "ort_b1_img_s": 1e3 / o1}


def test_goals_say_by_how_much():
    result = BenchResult({}, {}, {"peers": [_row("facelivt_s", 10.0, 8.0), _row("edgeface_xs", 12.0, 6.0)]})
    goals = {g.goal: g for g in evaluate_goals(result)}
    eager = next(g for k, g in goals.items() if "PyTorch eager, batch 1" in k)
    ort = next(g for k, g in goals.items() if "ONNX Runtime, batch 1" in k)
    assert eager.met and eager.edgeface_over_facelivt == pytest.approx(1.2)
    assert not ort.met and ort.edgeface_over_facelivt == pytest.approx(0.75)
    t3 = [{"form": f, "eager_b1_ms": v} for f, v in (("full", 1.0), ("no_residual", 1.1), ("no_fused_bn", 1.05))]
    goals = evaluate_goals(BenchResult({}, {}, {"table3": t3}))
    assert len(goals) == 1 and not goals[0].met


def test_quick_bench_runs_and_saves(tmp_path):
    cfg = BenchConfig.quick_config(models=("facelivt_s", "mobilefacenet"), batch_sizes=(1, 2), tables=("table4", "peers"))
    result = run_bench(cfg)
    assert [r.heads for r in result.tables["table4"]] == [8, 16]
    he8, he16 = result.tables["table4"]
    assert he8.params_m == pytest.approx(4.088, abs=0.002) and he16.params_m == pytest.approx(5.056, abs=0.002)
    assert he16.latency[Column("eager", 1)].ratio == pytest.approx(1.0)
    peers = {r.model: r for r in result.tables["peers"]}
    assert set(peers) == {"facelivt_s", "mobilefacenet"}
    for r in peers.values():
        for col in (Column("eager", 1), Column("eager", 2), Column("ort", 1), Column("ort", 2)):
            assert r.ms(col) > 0
        assert r.latency[Column("ort", 2)].img_s == pytest.approx(2e3 / r.ms(Column("ort", 2)))
    assert result.environment["threads"] == 2 and result.environment["torch"]
    md, js = save_result(result, tmp_path / "out")
    text = md.read_text()
    assert "Table IV" in text and "mobilefacenet" in text and "QUICK MODE" in text and "threads: 2" in text
    data = json.loads(js.read_text())
    assert data["tables"]["peers"][0]["model"] == "facelivt_s"
    assert to_markdown(result) == text


def test_thread_clock_ignores_sleeping_and_needs_one_thread():
    stats = measure(lambda: time.sleep(0.005), warmup=0, runs=3, clock=time.thread_time)
    assert stats.median_ms < 2.0  # sleeping costs no CPU time of this thread
    with pytest.raises(ValueError, match="threads=1"):
        BenchConfig(clock="thread", threads=2).validate()
    with pytest.raises(ValueError, match="clock"):
        BenchConfig(clock="sundial").validate()
    BenchConfig(clock="thread", threads=1).validate()


def test_optimized_column_without_onnx():
    cfg = BenchConfig.quick_config(models=("facelivt_s",), tables=("peers",), onnx=False, optimized=True, batch_sizes=(1,))
    result = run_bench(cfg)
    row = result.tables["peers"][0]
    assert row.ms(Column("opt", 1)) > 0 and row.ms(Column("eager", 1)) > 0 and Column("ort", 1) not in row.latency
    assert "PyTorch optimize_for_inference b1 (ms)" in to_markdown(result)
    assert all("optimize_for_inference" not in g.goal for g in result.goals)
