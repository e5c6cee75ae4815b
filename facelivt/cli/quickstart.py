"""``facelivt quickstart [--config FILE] [key=value ...]``: teacher, distilled student, held-out
evaluation, deploy form, ONNX and a benchmark in one command, with a report folder (see
:mod:`facelivt.quickstart`). The flags are shortcuts for overrides of the config file."""
from __future__ import annotations

import argparse
import json
import sys

from facelivt.cli.options import add_json, add_out_dir, add_quiet
from facelivt.extras import require
from facelivt.files import cleanup_new_folders
from facelivt.quickstart import DEFAULT_CONFIG, QUICK_BUDGET_MINUTES, load_quickstart_config, run_quickstart


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "quickstart",
        help="the whole FaceLiVT story end to end in minutes on a CPU, with a report",
        description=(
            "Split identities into training and held-out ones; train a small MHSA teacher, then FaceLiVT-S with "
            "distillation from it and without; evaluate verification on the held-out identities (10-fold protocol); "
            "reparameterize and check the deploy form; export ONNX and check it with ONNX Runtime; benchmark against "
            "EdgeFace-XS. Writes OUT/report.md, OUT/report.html, OUT/results.json, PNG figures and the weights of every "
            f"model. Settings: a config file (default {DEFAULT_CONFIG.name} in the package; --print-config shows it) with "
            "key=value overrides as for `facelivt train` (quickstart.* for the plan and report keys). Default data: "
            "built-in synthetic identities (no download)."
        ),
    )
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides (dotted keys, e.g. optim.lr=0.003)")
    p.add_argument("--config", default=None, metavar="FILE", help="config file (default: the package's quickstart.yaml)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    add_out_dir(p, "the report, figures and weights (quickstart.out; default quickstart_out)")
    p.add_argument("--budget", type=float, metavar="MINUTES",
                   help="wall-time budget that sizes the run (quickstart.budget_minutes; default 6.5; under 1: the CI-sized run)")
    p.add_argument("--quick", action="store_true", help=f"the CI-sized run (same as --budget {QUICK_BUDGET_MINUTES:g})")
    p.add_argument("--data", metavar="DIR",
                   help="image folder DIR/<identity>/<image> instead of synthetic faces (data.type=folder data.root=DIR; aligned "
                        "with MTCNN when the images are not 112x112 crops)")
    p.add_argument("--max-images", type=int, help="images read from --data at most, whole identities (quickstart.max_images "
                                                  "and quickstart.max_align_images)")
    p.add_argument("--threads", type=int, help="torch CPU threads (train.num_threads; default: the idle cores, at least 1)")
    p.add_argument("--seed", type=int, help="seed of the data, split, pairs and training (train.seed, data.split_seed, data.synthetic_seed)")
    p.add_argument("--mtcnn-weights", metavar="DIR", help="MTCNN weights folder for --data (quickstart.mtcnn_weights)")
    add_quiet(p, "no progress output")
    add_json(p, "print the results (as in results.json) as JSON on stdout at the end")
    p.set_defaults(func=run)


def flag_overrides(args: argparse.Namespace) -> list[str]:
    """The shortcut flags as config overrides (the key=value arguments come after them and win)."""
    pairs = [("quickstart.out", args.out), ("quickstart.budget_minutes", QUICK_BUDGET_MINUTES if args.quick else args.budget),
             ("quickstart.max_images", args.max_images), ("quickstart.max_align_images", args.max_images),
             ("train.num_threads", args.threads), ("quickstart.mtcnn_weights", args.mtcnn_weights)]
    if args.data is not None:
        pairs += [("data.type", "folder"), ("data.root", args.data)]
    if args.seed is not None:
        pairs += [(key, args.seed) for key in ("train.seed", "data.split_seed", "data.synthetic_seed")]
    if args.quiet:
        pairs += [("quickstart.progress", "false"), ("train.progress", "false")]
    return [f"{key}={value}" for key, value in pairs if value is not None]


def run(args: argparse.Namespace) -> int:
    config = load_quickstart_config(args.config, [*flag_overrides(args), *args.overrides])
    if args.print_config:
        print(config.to_yaml(), end="")
        return 0
    for module in ("onnx", "onnxruntime"):  # checked now, not after minutes of training
        require(module, "The quickstart (its ONNX export and latency steps)")
    with cleanup_new_folders(config.quickstart.out):  # a run refused before writing leaves no empty folder behind
        result = run_quickstart(config, say=_say if config.quickstart.progress else None)
    if args.json:
        print(json.dumps(result.results))
    s, v = result.summary, result.summary.verification
    _say("\n".join([
        f"held-out verification accuracy: teacher {100 * v['teacher'].accuracy:.2f}%, "
        f"student distilled {100 * v['student_kd'].accuracy:.2f}%, student plain {100 * v['student_plain'].accuracy:.2f}%",
        f"checks (deploy form, ONNX): {'passed' if result.passed else 'FAILED'}",
        f"wall time {s.wall_seconds / 60:.1f} min; report: {result.out / 'report.md'} (and report.html)",
    ]))
    return 0 if result.passed else 1


def _say(text: str) -> None:
    """The quickstart's progress and summary lines, on stderr."""
    print(text, file=sys.stderr, flush=True)
