"""``facelivt quickstart``: teacher, distilled student, held-out evaluation, deploy form, ONNX and a
benchmark in one command, with a report folder (see :mod:`facelivt.quickstart`)."""
from __future__ import annotations

import argparse
import sys

from facelivt.quickstart import QuickstartOptions, run_quickstart
from facelivt.quickstart.plan import DEFAULT_BUDGET_MINUTES, QUICK_BUDGET_MINUTES


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "quickstart",
        help="the whole FaceLiVT story end to end in minutes on a CPU, with a report",
        description=(
            "Split identities into training and held-out ones; train a small MHSA teacher, then FaceLiVT-S with "
            "distillation from it and without; evaluate verification on the held-out identities (10-fold protocol); "
            "reparameterize and check the deploy form; export ONNX and check it with ONNX Runtime; benchmark against "
            "EdgeFace-XS. Writes OUT/report.md, OUT/report.html, OUT/results.json, PNG figures and the weights of every "
            "model. Default data: built-in synthetic identities (no download)."
        ),
    )
    p.add_argument("--out", default="quickstart_out", metavar="DIR", help="report folder (default: quickstart_out)")
    p.add_argument("--budget", type=float, default=DEFAULT_BUDGET_MINUTES, metavar="MINUTES",
                   help=f"wall-time budget that sizes the run (default {DEFAULT_BUDGET_MINUTES:g}; under 1: the CI-sized run)")
    p.add_argument("--quick", action="store_true", help=f"the CI-sized run (same as --budget {QUICK_BUDGET_MINUTES:g})")
    p.add_argument("--data", default=None, metavar="DIR",
                   help="image folder DIR/<identity>/<image> instead of synthetic faces (aligned with MTCNN when the "
                        "images are not 112x112 crops), e.g. ../shared/data/celeba_subset_112")
    p.add_argument("--max-images", type=int, default=None,
                   help="images read from --data at most, whole identities (default: 4000 aligned crops, or about 2 per "
                        "second of budget when they must be detected and aligned first)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: the idle cores, from the load average, at least 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the data, split, pairs and training (default 0)")
    p.add_argument("--mtcnn-weights", default=None, metavar="DIR", help="MTCNN weights folder for --data (see `facelivt align`)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    options = QuickstartOptions(
        out=args.out,
        budget_minutes=QUICK_BUDGET_MINUTES if args.quick else args.budget,
        data=args.data,
        max_images=args.max_images,
        seed=args.seed,
        threads=args.threads,
        progress=not args.quiet,
        mtcnn_weights=args.mtcnn_weights,
    )
    result = run_quickstart(options)
    r = result.results
    v = r["verification"]
    lines = [
        f"held-out verification accuracy: teacher {100 * v['teacher']['accuracy']:.2f}%, "
        f"student distilled {100 * v['student_kd']['accuracy']:.2f}%, student plain {100 * v['student_plain']['accuracy']:.2f}%",
        f"checks (deploy form, ONNX): {'passed' if result.passed else 'FAILED'}",
        f"wall time {r['wall_seconds'] / 60:.1f} min; report: {result.out / 'report.md'} (and report.html)",
    ]
    print("\n".join(lines), file=sys.stderr)
    return 0 if result.passed else 1
