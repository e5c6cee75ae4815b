"""Latency of FaceLiVT (v1 and v2) and the peers on this machine: train form, deploy form,
optimize_for_inference, and a per-head-loop baseline (the released implementation's nn.Linear per
head), same weights, same run.

    python benchmarks/latency.py                      # FaceLiVT-S and -M, 2 threads, batch 1 and 32
    python benchmarks/latency.py --models facelivtv2_xs facelivtv2_s facelivt_s edgeface_xs --backend onnxruntime
    python benchmarks/latency.py --threads 1 --runs 200 --out latency.json

Each figure is the median of ``--runs`` timed forward passes after ``--warmup`` untimed ones; ratios
are against the per-head-loop baseline of the same model and batch, and (when ``edgeface_xs`` is in
``--models``) against EdgeFace-XS's row of the same form (eager deploy or optimize_for_inference).
The rows of every model run interleaved, round by round, so that background load affects every row
alike. FaceLiVTv2 models get one more row: the deploy form with the Lite MHLA's affine and layer
scale left unfolded (the released deploy form, vectorised), eager and through the same backend.
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
from baselines import released_style, unfolded_lite_mhla  # benchmarks/baselines.py


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


BASELINE = "per-head loop (baseline)"
DEPLOY = "deploy form (eager)"
UNFOLDED = "deploy, Lite MHLA unfolded"


def _edgeface_row(ms: dict, row: str) -> float | None:
    """EdgeFace-XS's time in the same form as ``row``: its optimize_for_inference row for a backend row,
    else its eager deploy form (None when EdgeFace-XS is not measured)."""
    if "optimize_for_inference" in row:
        return next((t for (m, r), t in ms.items() if m == "edgeface_xs" and r.startswith("optimize_for_inference")), None)
    return ms.get(("edgeface_xs", DEPLOY))


def model_forms(name: str, backend: str) -> dict[str, nn.Module]:
    """The timed forms of one model (same weights), plus its train form under ``"_train"`` for checks."""
    train = facelivt.create_model(name).eval()
    deploy = facelivt.reparameterize_model(train)
    fast = facelivt.optimize_for_inference(deploy, backend=backend)
    fast_row = f"optimize_for_inference ({fast.backend})"
    rows = {
        BASELINE: released_style(deploy),  # eval mode, NCHW, as the released code runs
        "train form": train,
        DEPLOY: deploy,
        fast_row: fast,
    }
    if name.startswith("facelivtv2"):
        unfolded = unfolded_lite_mhla(deploy)
        rows[f"{UNFOLDED} (eager)"] = unfolded
        rows[f"{UNFOLDED} ({fast_row})"] = facelivt.optimize_for_inference(unfolded, backend=backend)
    rows["_train"] = train
    return rows


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
    rows, checks = {}, {}
    for name in args.models:
        model_rows = model_forms(name, args.backend)
        checks[name] = model_rows.pop("_train")
        rows.update({(name, form): fn for form, fn in model_rows.items()})
    results = []
    for batch in args.batches:
        x = torch.randn(batch, 3, 112, 112)
        with torch.inference_mode():
            for (name, row), fn in rows.items():
                ref = checks[name](x)
                err = (fn(x) - ref).abs().max().item()
                if err > 1e-3 * max(1.0, ref.abs().max().item()):
                    raise RuntimeError(f"{name} {row}: output differs from the train form by {err}")
        runs = max(10, args.runs // batch) if batch > 1 else args.runs
        ms = measure(rows, x, args.warmup if batch == 1 else 2, runs)
        for (name, row), t in ms.items():
            base = ms[(name, BASELINE)]
            peer = _edgeface_row(ms, row)
            results.append({"model": name, "batch": batch, "form": row, "ms": t, "images_per_s": 1000 * batch / t,
                            "ratio_vs_baseline": t / base, "ratio_vs_edgeface_xs": t / peer if peer else None})
    header = f"| {'model':<13} | {'batch':>5} | {'form':<44} | {'ms':>9} | {'images/s':>9} | {'x baseline':>10} | {'x EdgeFace-XS':>13} |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for r in results:
        peer = "-" if r["ratio_vs_edgeface_xs"] is None else f"{r['ratio_vs_edgeface_xs']:.3f}"
        print(f"| {r['model']:<13} | {r['batch']:>5} | {r['form']:<44} | {r['ms']:>9.2f} | {r['images_per_s']:>9.1f} | {r['ratio_vs_baseline']:>10.3f} | {peer:>13} |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"torch": torch.__version__, "threads": args.threads, "results": results}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
