"""``facelivt eval``: verification on .bin sets and IJB-B/C; prints a table, writes results.json and ROC PNGs."""
from __future__ import annotations

import argparse
from pathlib import Path

from facelivt.cli.common import WEIGHTS_HELP, model_name_for
from facelivt.cli.options import add_batch_size, add_device, add_json, add_out_dir, add_quiet
from facelivt.cpu import check_threads
from facelivt.devices import resolve_device
from facelivt.errors import InvalidInputError
from facelivt.evaluation import build_model, evaluate_sets, format_table
from facelivt.evaluation.runner import check_sets, describe_model
from facelivt.files import check_not_input, cleanup_new_folders
from facelivt.models import DEFAULT_PRETRAINED
from facelivt.models.config import HEADS


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval",
        help="evaluate a model on .bin verification sets (LFW, CFP-FP, AgeDB-30, ...) and IJB-B/C",
        description=(
            "Embed every image with its horizontal flip (summed), then report the 10-fold accuracy, TAR at FAR, "
            "AUC and EER of each .bin set and the TAR at FAR of IJB-B/C template pairs. Thresholds are cosine "
            "similarities, as in verify and identify. Writes DIR/results.json (naming the model, the weights file "
            f"and its sha256) and DIR/<set>_roc.png. Without --model and --weights: the pretrained {DEFAULT_PRETRAINED}."
        ),
    )
    p.add_argument("--model", default=None, help="model name (see `facelivt models`; default: the one the --weights "
                   f"hold, else {DEFAULT_PRETRAINED})")
    p.add_argument("--weights", metavar="WEIGHTS", help=WEIGHTS_HELP + " (default: the pretrained "
                   f"{DEFAULT_PRETRAINED} when --model is not given either; with --model only: random init)")
    p.add_argument("--bin", nargs="+", default=[], type=Path, metavar="FILE.bin", help="verification sets")
    p.add_argument("--ijb", type=Path, metavar="DIR", help="IJB release folder (holding loose_crop/ and meta/)")
    p.add_argument("--ijb-name", default="IJBC", help="IJBB or IJBC: prefix of the meta files (default IJBC)")
    add_out_dir(p, "results.json and the ROC figures (default outputs/eval)", type=Path, default=Path("outputs/eval"))
    add_batch_size(p, what="images per batch")
    add_device(p)
    p.add_argument("--workers", type=int, default=2, help="threads reading IJB images (default 2)")
    p.add_argument("--no-flip", action="store_true", help="embed without the flip-sum")
    p.add_argument("--train-form", action="store_true", help="evaluate the train form instead of the deploy form")
    p.add_argument("--head", choices=HEADS, help="embedding head override")
    p.add_argument("--num-heads", type=int, help="MHLA heads override")
    p.add_argument("--embedding-size", type=int, help="embedding size override")
    p.add_argument("--seed", type=int, default=0, help="seed of the random initialisation when --weights is omitted")
    add_quiet(p, "no progress bars")
    add_json(p, "print the results (as in results.json) as JSON on stdout instead of the table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with cleanup_new_folders(args.out):  # a run that fails before writing leaves no empty folder behind
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    if not args.bin and args.ijb is None:
        raise InvalidInputError("nothing to evaluate: give --bin FILE.bin ... and/or --ijb DIR")
    if args.batch_size < 1:
        raise InvalidInputError(f"--batch-size must be >= 1, got {args.batch_size}")
    check_threads(args.workers, "--workers")
    check_sets(args.bin, args.ijb, args.ijb_name)
    check_not_input(args.out, {"--weights": args.weights, "--bin": args.bin, "--ijb": args.ijb})
    device = resolve_device(args.device, option="--device")
    weights = DEFAULT_PRETRAINED if args.model is None and args.weights is None else args.weights
    name = model_name_for(args.model, weights, None, progress=not args.quiet)
    model = build_model(
        name,
        weights,
        deploy=not args.train_form,
        device=device,
        seed=args.seed,
        head=args.head,
        num_heads=args.num_heads,
        embedding_size=args.embedding_size,
    )
    results = evaluate_sets(
        model,
        bins=args.bin,
        out_dir=args.out,
        ijb=args.ijb,
        ijb_name=args.ijb_name,
        batch_size=args.batch_size,
        device=device,
        flip=not args.no_flip,
        workers=args.workers,
        progress=not args.quiet,
        about=describe_model(model, name, args.weights if args.weights is not None else f"random initialisation (seed {args.seed})"),
    )
    if args.json:
        print((args.out / "results.json").read_text(encoding="utf-8"))
        return 0
    print(format_table(results))
    print(f"results written to {args.out / 'results.json'}")
    return 0
