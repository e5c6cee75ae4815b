"""Training-step throughput on the CPU: plain, with a live teacher, with the teacher cache.

One optimiser step = student forward + Partial FC (CosFace) + backward + gradient clipping +
AdamW + schedule, exactly the trainer's step (facelivt.training.engine.StepRunner), on a fixed
batch of 112x112 images held in memory (no data loading). Distillation adds the teacher: run
live every step, or read from the teacher-embedding cache (filled during warm-up, as after the
first epoch of a real run).

    python benchmarks/train_throughput.py --threads 2 --batch 64 --steps 10 --warmup 3
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from facelivt.training import Config
from facelivt.training.distributed import DistEnv
from facelivt.training.engine import build_step_runner

MODES = ("plain", "live", "cached")


def make_config(args: argparse.Namespace, mode: str) -> Config:
    cfg = Config(output=str(Path("runs") / "bench"))
    cfg.model.name = args.model
    cfg.model.channels_last = args.channels_last
    cfg.train.device = "cpu"
    cfg.train.amp = "none"
    cfg.train.batch_size = args.batch
    if mode != "plain":
        cfg.distill.enabled = True
        cfg.distill.teacher = args.teacher
        cfg.distill.allow_random_teacher = True  # weights do not change the cost
        cfg.distill.cache = "memory" if mode == "cached" else "none"
    return cfg


def build(args: argparse.Namespace, mode: str):
    torch.manual_seed(0)
    total = args.warmup + args.steps
    return build_step_runner(make_config(args, mode), DistEnv(), args.classes, total_steps=total + 1, num_samples=args.batch)


def measure(args: argparse.Namespace, modes: list[str], batch: list) -> dict[str, list[float]]:
    """Warm every mode up, then time the modes in turn step by step (interleaved, so a change in
    the machine's load hits all modes alike)."""
    runners = {mode: build(args, mode) for mode in modes}
    for mode, runner in runners.items():
        for step in range(args.warmup):
            runner.step([batch], step)
        print(f"# {mode}: warmed up", file=sys.stderr)
    times: dict[str, list[float]] = {mode: [] for mode in modes}
    for step in range(args.warmup, args.warmup + args.steps):
        for mode, runner in runners.items():
            t0 = time.perf_counter()
            runner.step([batch], step)
            times[mode].append(time.perf_counter() - t0)
    if "cached" in runners:
        cache = runners["cached"].targets.cache
        assert cache.misses == args.batch, "the timed steps must all be cache hits"
    return times


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="facelivt_s")
    p.add_argument("--teacher", default="facelivt_l_mhsa", help="teacher variant (default: the paper's)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=10, help="timed steps per mode")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (fill the cache, warm oneDNN)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--classes", type=int, default=1000, help="identities in the Partial FC layer")
    p.add_argument("--modes", default=",".join(MODES), help="comma list of plain, live, cached")
    p.add_argument("--channels-last", action="store_true", help="channels-last memory format (refused on CPU, where torch 2.x crashes in the stem's backward)")
    args = p.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        p.error(f"--modes takes a comma list of {', '.join(MODES)}; got {args.modes!r}")
    if args.warmup < 1 or args.steps < 1 or args.batch < 2:
        p.error("--warmup and --steps must be >= 1, --batch >= 2")
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    images = torch.randn(args.batch, 3, 112, 112, generator=g).clamp(-1, 1)
    labels = torch.randint(0, args.classes, (args.batch,), generator=g)
    flips = torch.arange(args.batch) % 2
    batch = [images, labels, torch.arange(args.batch), flips]

    print(f"# torch {torch.__version__}, {args.threads} thread(s), batch {args.batch}, {args.model}, "
          f"teacher {args.teacher}, {args.classes} classes, {args.steps} timed steps after {args.warmup} warm-up",
          file=sys.stderr)
    results = measure(args, modes, batch)
    base = statistics.median(results["plain"]) if "plain" in results else None
    print("| mode | median s/step | min s/step | images/s (median) | time vs plain |")
    print("| --- | --- | --- | --- | --- |")
    for mode, times in results.items():
        med = statistics.median(times)
        ratio = f"{med / base:.2f}x" if base else "-"
        print(f"| {mode} | {med:.3f} | {min(times):.3f} | {args.batch / med:.1f} | {ratio} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
