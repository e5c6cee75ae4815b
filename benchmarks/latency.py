"""Latency of FaceLiVT-S and -M on this machine: train form, deploy form, optimize_for_inference, and a
per-head-loop MHLA baseline (the released implementation's 16 nn.Linear pairs), same weights, same run.

    python benchmarks/latency.py                      # 2 threads, batch 1 and 32
    python benchmarks/latency.py --threads 1 --runs 200 --out latency.json

Each figure is the median of ``--runs`` timed forward passes after ``--warmup`` untimed ones; ratios
are against the per-head-loop baseline of the same model and batch. Rows run interleaved, round by
round, so that background load affects every row alike.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch
from torch import nn

import facelivt
from facelivt.runtime import tune_allocator
from baselines import released_style  # benchmarks/baselines.py


def measure(rows: dict[str, nn.Module], x: torch.Tensor, warmup: int, runs: int) -> dict[str, float]:
    times: dict[str, list[float]] = {k: [] for k in rows}
    with torch.inference_mode():
        for fn in rows.values():
            for _ in range(warmup):
                fn(x)
        for _ in range(runs):
            for name, fn in rows.items():
                t0 = time.perf_counter()
                fn(x)
                times[name].append(time.perf_counter() - t0)
    return {k: 1000 * statistics.median(v) for k, v in times.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["facelivt_s", "facelivt_m"])
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 32])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--runs", type=int, default=100, help="timed runs at batch 1 (fewer at larger batches, at least 10)")
    ap.add_argument("--backend", default="auto", help="optimize_for_inference backend")
    ap.add_argument("--malloc", choices=("tuned", "default"), default="tuned",
                    help="tuned (as the facelivt command runs): keep freed activation memory for reuse, see facelivt/runtime.py")
    ap.add_argument("--out", help="also write the results as JSON here")
    args = ap.parse_args(argv)
    tuned = args.malloc == "tuned" and tune_allocator()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {args.threads} threads, {platform.processor() or platform.machine()}, "
          f"median of timed runs after warm-up, allocator {'tuned' if tuned else 'as it comes'}")
    results = []
    for name in args.models:
        train = facelivt.create_model(name).eval()
        deploy = facelivt.reparameterize_model(train)
        fast = facelivt.optimize_for_inference(deploy, backend=args.backend)
        rows = {
            "per-head loop (baseline)": released_style(deploy),  # eval mode, NCHW, as the released code runs
            "train form": train,
            "deploy form (eager)": deploy,
            f"optimize_for_inference ({fast.backend})": fast,
        }
        for batch in args.batches:
            x = torch.randn(batch, 3, 112, 112)
            with torch.inference_mode():
                ref = train(x)
                for row, fn in rows.items():
                    err = (fn(x) - ref).abs().max().item()
                    if err > 1e-3 * max(1.0, ref.abs().max().item()):
                        raise RuntimeError(f"{name} {row}: output differs from the train form by {err}")
            runs = max(10, args.runs // batch) if batch > 1 else args.runs
            ms = measure(rows, x, args.warmup if batch == 1 else 2, runs)
            base = ms["per-head loop (baseline)"]
            for row, t in ms.items():
                results.append({"model": name, "batch": batch, "form": row, "ms": t, "images_per_s": 1000 * batch / t, "ratio_vs_baseline": t / base})
    header = f"| {'model':<11} | {'batch':>5} | {'form':<36} | {'ms':>9} | {'images/s':>9} | {'x baseline':>10} |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for r in results:
        print(f"| {r['model']:<11} | {r['batch']:>5} | {r['form']:<36} | {r['ms']:>9.2f} | {r['images_per_s']:>9.1f} | {r['ratio_vs_baseline']:>10.3f} |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"torch": torch.__version__, "threads": args.threads, "results": results}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
