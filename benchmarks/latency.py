"""Latency of FaceLiVT (v1 and v2) and a peer on this machine: train form, deploy form,
optimize_for_inference (ONNX Runtime always, plus ``--backend``'s choice when it differs), and a
per-head-loop baseline (the released implementation's nn.Linear per head), same weights, same run.

    python benchmarks/latency.py                      # FaceLiVT-S and -M against EdgeFace-XS, 2 threads, batch 1 and 32
    python benchmarks/latency.py --models facelivtv2_xs facelivtv2_s facelivt_s --backend onnxruntime
    python benchmarks/latency.py --threads 1 --runs 200 --out latency.json

Each figure is the median of ``--runs`` timed forward passes after ``--warmup`` untimed ones. The rows
of every model, the peer's (``--peer``, default EdgeFace-XS) included, run interleaved, round by round,
so that background load affects every row alike. ``x baseline`` is a row's time over the per-head-loop
baseline of the same model and batch; ``x peer`` its time over the peer's row in the same runtime
(ONNX Runtime rows against the peer's ONNX Runtime row, the others against the peer's eager deploy form).
FaceLiVTv2 models get one more row: the deploy form with the Lite MHLA's affine and layer scale left
unfolded (the released deploy form, vectorised), eager and through the same backend. ``--models`` takes
any registry names. The CPU capability (facelivt.cpu) is printed first and stored in ``--out``.
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
from baselines import released_style, unfolded_lite_mhla  # benchmarks/baselines.py


def measure(rows: dict, x: torch.Tensor, warmup: int, runs: int) -> dict:
    times: dict = {k: [] for k in rows}
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
ORT_ROW = "optimize_for_inference (onnxruntime)"
UNFOLDED = "deploy, Lite MHLA unfolded"


def model_forms(name: str, backend: str) -> tuple[nn.Module, dict[str, nn.Module]]:
    """The train form of one model (the reference of the checks) and its timed forms (same weights)."""
    train = facelivt.create_model(name).eval()
    deploy = facelivt.reparameterize_model(train)
    rows = {
        BASELINE: released_style(deploy),  # eval mode, NCHW, as the released code runs
        "train form": train,
        DEPLOY: deploy,
        ORT_ROW: facelivt.optimize_for_inference(deploy, backend="onnxruntime"),
    }
    fast = facelivt.optimize_for_inference(deploy, backend=backend)
    if fast.backend != "onnxruntime":
        rows[f"optimize_for_inference ({backend} -> {fast.backend})"] = fast
    if name.startswith("facelivtv2"):
        unfolded = unfolded_lite_mhla(deploy)
        rows[f"{UNFOLDED} (eager)"] = unfolded
        rows[f"{UNFOLDED} ({ORT_ROW})"] = facelivt.optimize_for_inference(unfolded, backend="onnxruntime")
    return train, rows


def check(rows: dict, trains: dict[str, nn.Module], x: torch.Tensor) -> None:
    with torch.inference_mode():
        refs = {name: train(x) for name, train in trains.items()}
        for (name, row), fn in rows.items():
            ref = refs[name]
            err = (fn(x) - ref).abs().max().item()
            if err > 1e-3 * max(1.0, ref.abs().max().item()):
                raise RuntimeError(f"{name} {row}: output differs from the train form by {err}")


def peer_time(ms: dict, peer: str | None, row: str) -> float | None:
    """The peer's time in the runtime of ``row`` (its ONNX Runtime row for an ONNX Runtime row, else its eager deploy form)."""
    if peer is None:
        return None
    return ms[(peer, ORT_ROW if "onnxruntime" in row else DEPLOY)]


def print_table(results: list[dict]) -> None:
    header = (f"| {'model':<13} | {'batch':>5} | {'form':<68} | {'ms':>9} | {'images/s':>9} | {'x baseline':>10} "
              f"| {'x peer':>7} |")
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for r in results:
        peer = "-" if r["ratio_vs_peer"] is None else f"{r['ratio_vs_peer']:.3f}"
        print(f"| {r['model']:<13} | {r['batch']:>5} | {r['form']:<68} | {r['ms']:>9.2f} | {r['images_per_s']:>9.1f} | "
              f"{r['ratio_vs_baseline']:>10.3f} | {peer:>7} |")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["facelivt_s", "facelivt_m"], help="registry names")
    ap.add_argument("--peer", default="edgeface_xs", help="model timed in the same rounds for the 'x peer' column ('none': no peer)")
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
    args.peer = None if args.peer == "none" else args.peer
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tuned = args.malloc == "tuned" and tune_allocator()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cap = cpu_capability()
    print(f"CPU capability: {cap.summary()}")
    print(f"torch {torch.__version__}, {args.threads} threads, median of timed runs after warm-up, "
          f"allocator {'tuned' if tuned else 'as it comes'}, peer {args.peer or 'none'}")
    rows, trains = {}, {}
    for name in dict.fromkeys([*args.models, *([args.peer] if args.peer else [])]):
        trains[name], forms = model_forms(name, args.backend)
        rows.update({(name, form): fn for form, fn in forms.items()})
    results = []
    for batch in args.batches:
        x = torch.randn(batch, 3, 112, 112)
        check(rows, trains, x)
        runs = max(10, args.runs // batch) if batch > 1 else args.runs
        ms = measure(rows, x, args.warmup if batch == 1 else 2, runs)
        for (name, row), t in ms.items():
            peer = peer_time(ms, args.peer, row)
            results.append({"model": name, "batch": batch, "form": row, "ms": t, "images_per_s": 1000 * batch / t,
                            "ratio_vs_baseline": t / ms[(name, BASELINE)], "ratio_vs_peer": t / peer if peer else None})
    print_table(results)
    if args.out:
        write_json(args.out, {"cpu_capability": cap.to_dict(), "torch": torch.__version__, "threads": args.threads,
                              "peer": args.peer, "results": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
