"""int8 against float32 in ONNX Runtime, per registry model, in one run: the figures behind
facelivt.deploy.int8_choice (what ``optimize_for_inference(..., int8=True)`` and ``facelivt export --int8`` pick).

    python benchmarks/int8.py                                   # the table's models, 2 threads, batch 1 and 32
    python benchmarks/int8.py --models facelivt_s facelivtv2_xs --runs 20
    python benchmarks/int8.py --pairs 0                         # speed only, no accuracy section

Speed: each model's deploy form (random initial weights: speed does not depend on them) exported to ONNX
(dynamic batch) and statically quantised (facelivt.deploy.quantize: QDQ, per-channel int8 weights, uint8
activations, calibrated on ``--calib-images`` real aligned faces of ``--data``); fp32 and int8 sessions
timed interleaved (median) at batch 1 and 32; ``x fp32`` = int8 ms / fp32 ms (below 1: int8 faster).
``min cos`` / ``mean cos``: int8 vs fp32 embeddings of ``--check-images`` other real crops.

Accuracy: the committed FaceLiVT-S trained on the CelebA subset (tests/deploy/weights), fp32 and int8 ONNX,
on ``--pairs`` balanced pairs of the identities its training held out (calibrated on crops of training
identities): 10-fold verification accuracy, AUC, verdicts changed at the fp32 thresholds, cosine fp32 vs int8.
The CPU capability line comes first: int8 gains depend on the ISA (VNNI / AMX int8 dot products).
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open

import facelivt
from facelivt.cpu import cpu_capability, ort_int8_isa
from facelivt.data.folder import load_image, scan_image_folder
from facelivt.data.loader import split_identities
from facelivt.deploy.crops import load_crops
from facelivt.deploy.onnx_export import write_onnx
from facelivt.deploy.quantize import compare_int8, quantize_onnx_int8
from facelivt.deploy.sessions import onnx_runner, onnx_session, run_batched
from facelivt.evaluation import evaluate_distances, kfold_splits, pair_distances
from facelivt.files import write_json
from facelivt.models.preprocess import DEFAULT_PREPROCESS, preprocess_of
from facelivt.runtime import tune_allocator
from facelivt.training.heldout import build_pairs

ROOT = Path(__file__).resolve().parents[1]
TRAINED = ROOT / "tests" / "deploy" / "weights" / "facelivt_s_celeba.fp16.safetensors"
MODELS = ["facelivt_s", "facelivt_m", "facelivt_s_mhsa", "facelivtv2_xs", "facelivtv2_s", "facelivtv2_m", "edgeface_xs",
          "mobilefacenet"]


def speed_rows(name: str, args, tmp: Path) -> list[dict]:
    """fp32 vs int8 ONNX Runtime latency of ``name``'s deploy form at each batch, and their cosine on real crops."""
    torch.manual_seed(0)
    model = facelivt.reparameterize_model(facelivt.create_model(name).eval())
    pre = preprocess_of(model)
    fp32, int8 = tmp / f"{name}.onnx", tmp / f"{name}.int8.onnx"
    write_onnx(model, fp32)
    quantize_onnx_int8(fp32, int8, load_crops(args.data, args.calib_images, offset=0, preprocess=pre))
    check = load_crops(args.data, args.check_images, offset=1, preprocess=pre)
    q = compare_int8(fp32, int8, check, threads=args.threads, runs=args.runs, speed_batches=tuple(args.batches))
    return [{"model": name, "batch": s.batch, "fp32_ms": s.fp32_ms, "int8_ms": s.int8_ms, "ratio": s.int8_ms / s.fp32_ms,
             "min_cosine": q.min_cosine, "mean_cosine": q.mean_cosine, "fp32_mb": q.fp32_bytes / 1e6,
             "int8_mb": q.int8_bytes / 1e6} for s in q.speed]


def heldout_pairs(data: Path, weights: Path, num_pairs: int, calib: int):
    """The trained weights' held-out identities as balanced pairs (distinct images, rows, issame) and
    ``calib`` crops of training identities, the split the weights were trained with (seed 0, 20 %)."""
    classes, samples = scan_image_folder(data)
    labels = np.array([label for _, label in samples])
    train_idx, held_idx = split_identities(labels, 0.2, 0)
    with safe_open(str(weights), framework="pt") as f:
        recorded = set(json.loads(f.metadata()["heldout_identities"]))
    if {classes[labels[i]] for i in held_idx} != recorded:
        raise SystemExit(f"{data} does not split into the held-out identities recorded in {weights}")
    pairs, issame = build_pairs(labels[held_idx], num_pairs, seed=0)
    used, rows = np.unique(pairs.reshape(-1), return_inverse=True)
    pick = train_idx[:: max(1, len(train_idx) // calib)][:calib]

    def load(indices):
        return DEFAULT_PREPROCESS.batch(np.stack([load_image(samples[i][0]) for i in indices]))

    return load(held_idx[used]), rows.reshape(-1), issame, load(pick)


def accuracy(args, tmp: Path) -> dict:
    """fp32 vs int8 ONNX Runtime verification of the trained FaceLiVT-S on held-out pairs."""
    model = facelivt.load_model("facelivt_s", args.weights, deploy=True)
    images, rows, issame, calib = heldout_pairs(args.data, args.weights, args.pairs, args.calib_images)
    fp32, int8 = tmp / "trained.onnx", tmp / "trained.int8.onnx"
    write_onnx(model, fp32)
    quantize_onnx_int8(fp32, int8, calib)
    e32, e8 = (run_batched(onnx_runner(onnx_session(p, args.threads)), images.numpy(), None) for p in (fp32, int8))
    cos = np.sum(e32 * e8, 1) / (np.linalg.norm(e32, axis=1) * np.linalg.norm(e8, axis=1))
    d32, d8 = pair_distances(e32[rows]), pair_distances(e8[rows])
    r32, r8 = evaluate_distances(d32, issame), evaluate_distances(d8, issame)
    changed = 0
    for (_, test), t in zip(kfold_splits(len(d32)), r32["distance_thresholds"]):
        changed += int(np.sum((d32[test] < t) != (d8[test] < t)))
    return {"pairs": len(issame), "images": len(images), "fp32_accuracy": r32["accuracy"], "int8_accuracy": r8["accuracy"],
            "fp32_auc": r32["auc"], "int8_auc": r8["auc"], "verdicts_changed": changed,
            "min_cosine": float(cos.min()), "mean_cosine": float(cos.mean())}


def print_speed(rows: list[dict]) -> None:
    header = f"| {'model':<16} | {'batch':>5} | {'fp32 ms':>8} | {'int8 ms':>8} | {'x fp32':>6} | {'min cos':>7} | {'mean cos':>8} | {'MB fp32/int8':>12} |"
    print(header)
    print("|" + "|".join("-" * len(c) for c in header.split("|")[1:-1]) + "|")
    for r in rows:
        print(f"| {r['model']:<16} | {r['batch']:>5} | {r['fp32_ms']:>8.2f} | {r['int8_ms']:>8.2f} | {r['ratio']:>6.2f} | "
              f"{r['min_cosine']:>7.4f} | {r['mean_cosine']:>8.5f} | {r['fp32_mb']:>5.1f} / {r['int8_mb']:<4.1f} |")


def print_accuracy(a: dict) -> None:
    print(f"trained FaceLiVT-S, {a['pairs']} held-out pairs ({a['images']} images): accuracy fp32 {a['fp32_accuracy']:.4f} "
          f"-> int8 {a['int8_accuracy']:.4f} ({100 * (a['int8_accuracy'] - a['fp32_accuracy']):+.2f} points), AUC "
          f"{a['fp32_auc']:.4f} -> {a['int8_auc']:.4f}, {a['verdicts_changed']} verdicts changed at the fp32 thresholds; "
          f"cosine int8 vs fp32 min {a['min_cosine']:.4f}, mean {a['mean_cosine']:.5f}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="*", default=MODELS, help="registry names (none: accuracy only)")
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 32])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=20, help="timed runs at batch 1 (a quarter of them at larger batches)")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "celeba_subset_112",
                    help="real aligned 112x112 crops, <identity>/<image>")
    ap.add_argument("--calib-images", type=int, default=64, help="calibration crops (default 64)")
    ap.add_argument("--check-images", type=int, default=32, help="crops of the cosine columns (default 32)")
    ap.add_argument("--pairs", type=int, default=400, help="held-out pairs of the accuracy section (0: skip it)")
    ap.add_argument("--weights", type=Path, default=TRAINED, help="the trained FaceLiVT-S of the accuracy section")
    ap.add_argument("--out", help="also write the results as JSON here")
    args = ap.parse_args(argv)
    known = facelivt.list_models()
    if any(m not in known for m in args.models):
        ap.error(f"--models must be among {', '.join(known)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tune_allocator()
    torch.set_num_threads(args.threads)
    cap = cpu_capability()
    print(f"CPU capability: {cap.summary()}; int8 ISA (MLAS u8s8 kernels): {ort_int8_isa()}")
    print(f"{args.threads} ONNX Runtime threads, medians of interleaved runs, calibrated on {args.calib_images} real crops")
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        rows = [r for name in args.models for r in speed_rows(name, args, tmp)]
        if rows:
            print_speed(rows)
        acc = accuracy(args, tmp) if args.pairs else None
        if acc:
            print_accuracy(acc)
    if args.out:
        write_json(args.out, {"cpu_capability": cap.to_dict(), "int8_isa": ort_int8_isa(), "threads": args.threads,
                              "speed": rows, "accuracy": acc})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
