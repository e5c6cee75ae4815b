"""measure_at_batch: the benchmark tables' schedule (all passes at batch 1, a quarter above), public for the quickstart."""
from __future__ import annotations

from facelivt.deploy.benchmark import measure_at_batch


def _counting() -> tuple[list[int], tuple]:
    calls: list[int] = []
    return calls, (lambda: calls.append(1), ())


def test_batch_one_gets_every_pass_and_larger_batches_a_quarter():
    for batch, expected in ((1, 8 + 2 * (1 + 10)), (16, 2 + 2 * (1 + 3))):  # warm-up + rounds x (re-warm + timed)
        a, run_a = _counting()
        b, run_b = _counting()
        stats = measure_at_batch({"a": run_a, "b": run_b}, batch, warmup=8, runs=20, rounds=2)
        assert len(a) == len(b) == expected, batch
        assert set(stats) == {"a", "b"} and all(s.median_ms >= 0 for s in stats.values())
