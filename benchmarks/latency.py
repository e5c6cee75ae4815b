"""Latency of FaceLiVT-S and -M on this machine: train form, deploy form, optimize_for_inference, and a
per-head-loop MHLA baseline (the released implementation's 16 nn.Linear pairs), same weights, same run.

    python benchmarks/latency.py                      # 2 threads, batch 1 and 32
    python benchmarks/latency.py --threads 1 --runs 200 --out latency.json

With ``--peer edgeface_xs`` (default) the peer's deploy form runs in the same rounds, eager and in ONNX
Runtime, and ``x peer`` gives each FaceLiVT row's time over the peer's in the same runtime (eager rows
against the peer's eager, ONNX Runtime rows against the peer's ONNX Runtime). ``--models`` takes any
registry names. The CPU capability (facelivt.cpu) is printed first and stored in ``--out``.

Each figure is the median of ``--runs`` timed forward passes after ``--warmup`` untimed ones; ratios
are against the per-head-loop baseline of the same model and batch. Rows run interleaved, round by
round, so that background load affects every row alike.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

import facelivt
from facelivt.cpu import cpu_capability
from facelivt.files import write_json
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


PEER_EAGER, PEER_ORT = "peer deploy form (eager)", "peer onnxruntime"
ORT_ROW = "optimize_for_inference (onnxruntime)"


def build_rows(name: str, backend: str, peer: nn.Module | None, peer_ort: nn.Module | None) -> tuple[nn.Module, dict[str, nn.Module]]:
    train = facelivt.create_model(name).eval()
    deploy = facelivt.reparameterize_model(train)
    rows = {
        "per-head loop (baseline)": released_style(deploy),  # eval mode, NCHW, as the released code runs
        "train form": train,
        "deploy form (eager)": deploy,
        ORT_ROW: facelivt.optimize_for_inference(deploy, backend="onnxruntime"),
    }
    fast = facelivt.optimize_for_inference(deploy, backend=backend)
    if fast.backend != "onnxruntime":
        rows[f"optimize_for_inference ({backend} -> {fast.backend})"] = fast
    if peer is not None:
        rows[PEER_EAGER], rows[PEER_ORT] = peer, peer_ort
    return train, rows


def check(name: str, train: nn.Module, rows: dict[str, nn.Module], x: torch.Tensor) -> None:
    with torch.inference_mode():
        ref = train(x)
        for row, fn in rows.items():
            if row.startswith("peer"):
                continue
            err = (fn(x) - ref).abs().max().item()
            if err > 1e-3 * max(1.0, ref.abs().max().item()):
                raise RuntimeError(f"{name} {row}: output differs from the train form by {err}")


def peer_ratio(row: str, ms: dict[str, float]) -> float | None:
    if PEER_EAGER not in ms or row.startswith("peer"):
        return None
    ref = ms[PEER_ORT] if "onnxruntime" in row else ms[PEER_EAGER]
    return ms[row] / ref


def print_table(results: list[dict]) -> None:
    header = f"| {'model':<11} | {'batch':>5} | {'form':<44} | {'ms':>9} | {'images/s':>9} | {'x baseline':>10} | {'x peer':>7} |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for r in results:
        peer = "-" if r["ratio_vs_peer"] is None else f"{r['ratio_vs_peer']:.3f}"
        print(f"| {r['model']:<11} | {r['batch']:>5} | {r['form']:<44} | {r['ms']:>9.2f} | {r['images_per_s']:>9.1f} | "
              f"{r['ratio_vs_baseline']:>10.3f} | {peer:>7} |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["facelivt_s", "facelivt_m"], help="registry names")
    ap.add_argument("--peer", default="edgeface_xs", help="peer model timed in the same rounds ('none': no peer rows)")
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 32])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--runs", type=int, default=100, help="timed runs at batch 1 (fewer at larger batches, at least 10)")
    ap.add_argument("--backend", default="auto", help="optimize_for_inference backend of the extra row (the ORT row is always there)")
    ap.add_argument("--malloc", choices=("tuned", "default"), default="tuned",
                    help="tuned (as the facelivt command runs): keep freed activation memory for reuse, see facelivt/runtime.py")
    ap.add_argument("--out", help="also write the results as JSON here")
    args = ap.parse_args(argv)
    known = facelivt.list_models()
    if any(m not in known for m in args.models) or args.peer not in (*known, "none"):
        ap.error(f"--models and --peer must be among {', '.join(known)}")
    tuned = args.malloc == "tuned" and tune_allocator()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cap = cpu_capability()
    print(f"CPU capability: {cap.summary()}")
    print(f"torch {torch.__version__}, {args.threads} threads, median of timed runs after warm-up, "
          f"allocator {'tuned' if tuned else 'as it comes'}")
    peer = peer_ort = None
    if args.peer != "none":
        peer = facelivt.reparameterize_model(facelivt.create_model(args.peer).eval())
        peer_ort = facelivt.optimize_for_inference(peer, backend="onnxruntime")
    results = []
    for name in args.models:
        train, rows = build_rows(name, args.backend, peer, peer_ort)
        for batch in args.batches:
            x = torch.randn(batch, 3, 112, 112)
            check(name, train, rows, x)
            runs = max(10, args.runs // batch) if batch > 1 else args.runs
            ms = measure(rows, x, args.warmup if batch == 1 else 2, runs)
            base = ms["per-head loop (baseline)"]
            for row, t in ms.items():
                results.append({"model": args.peer if row.startswith("peer") else name, "batch": batch, "form": row, "ms": t,
                                "images_per_s": 1000 * batch / t, "ratio_vs_baseline": t / base, "ratio_vs_peer": peer_ratio(row, ms)})
    print_table(results)
    if args.out:
        write_json(args.out, {"cpu_capability": cap.to_dict(), "torch": torch.__version__, "threads": args.threads, "results": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
