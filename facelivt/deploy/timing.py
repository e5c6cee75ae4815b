"""Latency measurement (layer 0 of :mod:`facelivt.deploy`): generic over any callable and inputs.

``measure_latency(fn, inputs, warmup, runs)``: median in ms. ``measure_interleaved`` measures several
candidates in alternating rounds, so a change in machine load during the run hits every candidate
alike (the reference machine is shared).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from facelivt.errors import InvalidInputError

CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "thread": time.thread_time}


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


def _check_counts(warmup: int, runs: int) -> None:
    if warmup < 0 or runs < 1:
        raise InvalidInputError(f"need warmup >= 0 and runs >= 1, got warmup={warmup}, runs={runs}")


def _warm(fn: Callable, inputs: Any, warmup: int) -> None:
    for _ in range(warmup):
        _call(fn, inputs)


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
    _check_counts(warmup, runs)
    _warm(fn, inputs, warmup)
    if sync is not None:
        sync()
    return LatencyStats.from_samples(_samples(fn, inputs, runs, sync, clock))


def measure_latency(fn: Callable, inputs: Any = (), warmup: int = 5, runs: int = 20, sync: Callable[[], None] | None = None,
                    clock: Callable[[], float] = time.perf_counter) -> float:
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
        raise InvalidInputError(f"rounds must be >= 1, got {rounds}")
    _check_counts(warmup, runs)
    per_round = -(-runs // rounds)
    for fn, inputs in candidates.values():
        _warm(fn, inputs, warmup)
    samples: dict[str, list[float]] = {k: [] for k in candidates}
    for _ in range(rounds):
        for name, (fn, inputs) in candidates.items():
            _call(fn, inputs)
            if sync is not None:
                sync()
            samples[name] += _samples(fn, inputs, per_round, sync, clock)
    return {k: LatencyStats.from_samples(v) for k, v in samples.items()}
