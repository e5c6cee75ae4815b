"""Where the CPU time goes: a per-op profile (torch.profiler) of training steps and of batch-32 inference.

    python benchmarks/profile_ops.py                        # rows plain,nchw,released,peer + deploy-form inference
    python benchmarks/profile_ops.py --isa avx2             # the same with the AVX2 kernels of torch, oneDNN and MKL

Training rows are the rows of benchmarks/train_throughput.py (the trainer's step on a fixed batch);
``infer`` is the deploy form of --model at batch --infer-batch, eager, in the layout
reparameterize_model picks for this machine (facelivt.cpu.cpu_defaults). Each row is warmed up, then --steps steps are profiled; the table lists
the --top ops by self CPU time, per step. The first lines give the CPU capability and what a large
float32 GEMM reaches here, the ceiling of the GEMM ops (aten::mm, bmm) in the tables.
"""
from __future__ import annotations

import argparse
import sys
import time

import torch
from torch.profiler import ProfilerActivity, profile

import facelivt
from cpu_defaults import add_isa_arg, start_run  # benchmarks/cpu_defaults.py
from facelivt.cpu import machine_defaults
from facelivt.files import write_json
from train_throughput import ROWS, Row  # benchmarks/train_throughput.py


def train_args(args: argparse.Namespace) -> argparse.Namespace:
    return argparse.Namespace(model=args.model, teacher="facelivt_l_mhsa", peer=args.peer, batch=args.batch, steps=1, rounds=1,
                              warmup=args.warmup, classes=1000)


def profile_fn(fn, steps: int) -> list[dict]:
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            fn()
    rows = []
    for e in prof.key_averages():
        rows.append({"op": e.key, "self_ms": e.self_cpu_time_total / 1000 / steps, "calls": e.count // steps})
    return sorted(rows, key=lambda r: -r["self_ms"])


def gemm_gflops(n: int = 2048, runs: int = 5) -> float:
    """What a large square float32 matmul reaches here: the ceiling of the steps' GEMMs (aten::mm, bmm)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t0 = time.perf_counter()
    for _ in range(runs):
        a @ b
    return 2 * n**3 * runs / (time.perf_counter() - t0) / 1e9


def infer_fn(args: argparse.Namespace):
    deploy = facelivt.reparameterize_model(facelivt.create_model(args.model).eval())  # this machine's layout
    layout = torch.channels_last if machine_defaults().infer_channels_last else torch.contiguous_format
    x = torch.randn(args.infer_batch, 3, 112, 112).contiguous(memory_format=layout)

    def run():
        with torch.inference_mode():
            deploy(x)
    for _ in range(args.warmup):
        run()
    return run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="facelivt_s")
    p.add_argument("--peer", default="edgeface_xs")
    p.add_argument("--rows", default="plain,nchw,released,peer,infer", help=f"comma list of {', '.join(ROWS)}, infer")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--infer-batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--top", type=int, default=12)
    add_isa_arg(p)
    p.add_argument("--out", help="also write every op's time as JSON here")
    args = p.parse_args(argv)
    cap = start_run(args, __file__, argv)
    peak = gemm_gflops()
    print(f"float32 GEMM peak here (2048x2048 @ 2048x2048, {args.threads} thread(s)): {peak:.1f} GFLOPS")
    out = {}
    for row in [r.strip() for r in args.rows.split(",") if r.strip()]:
        fn = infer_fn(args) if row == "infer" else Row(train_args(args), row)._step
        ops = profile_fn(fn, args.steps)
        total = sum(o["self_ms"] for o in ops)
        out[row] = {"total_ms": total, "ops": ops}
        print(f"\n## {row}: {total:.1f} ms self CPU per {'batch' if row == 'infer' else 'step'}")
        print("| op | self ms | share | calls |")
        print("| --- | --- | --- | --- |")
        for o in ops[: args.top]:
            print(f"| {o['op']} | {o['self_ms']:.1f} | {o['self_ms'] / total:.1%} | {o['calls']} |")
    if args.out:
        write_json(args.out, {"cpu_capability": cap.to_dict(), "gemm_gflops": peak, "rows": out})
    return 0


if __name__ == "__main__":
    sys.exit(main())
