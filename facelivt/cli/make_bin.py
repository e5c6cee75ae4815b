"""``facelivt make-bin IMAGES --pairs P --out FILE.bin``: build a ``.bin`` verification set from an image folder and a pairs list."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from facelivt.cli.options import add_json, add_out_file, add_quiet
from facelivt.errors import InvalidInputError
from facelivt.evaluation import generate_pairs, make_bin, parse_pairs, write_pairs
from facelivt.files import check_not_input, check_writable, cleanup_new_folders


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "make-bin",
        help="build a .bin verification set from root/<identity>/<image> and an LFW-style pairs list",
        description=(
            "Write a .bin verification set (insightface format) from an image folder and a pairs list in the "
            "LFW pairs.txt format ('name n1 n2' matched, 'name1 n1 name2 n2' mismatched). With --generate-pairs N "
            "a balanced, seeded random pairs list is written first (to --pairs, or next to --out)."
        ),
    )
    p.add_argument("images", metavar="IMAGES", type=Path, help="image folder: IMAGES/<identity>/<image>")
    p.add_argument("--pairs", type=Path, help="pairs list to read (or to write, with --generate-pairs)")
    add_out_file(p, "the .bin verification set to write", metavar="FILE.bin", required=True, type=Path)
    p.add_argument("--resize", type=int, default=112, help="resize every image to N x N (0 keeps the size; default 112)")
    p.add_argument("--format", choices=("jpg", "png"), default="jpg", help="image encoding inside the .bin (default jpg)")
    p.add_argument("--quality", type=int, default=95, help="JPEG quality (default 95)")
    p.add_argument("--generate-pairs", type=int, metavar="N", help="draw N balanced random pairs (multiple of 2 x folds)")
    p.add_argument("--folds", type=int, default=10, help="folds of the generated list (default 10)")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated list (default 0)")
    add_quiet(p)
    add_json(p, "print what was written (files, pair counts) as JSON on stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with cleanup_new_folders(args.out, args.pairs):  # a run that fails before writing leaves no empty folder behind
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    if args.resize < 0:
        raise InvalidInputError(f"--resize must be >= 0, got {args.resize}")
    if not 1 <= args.quality <= 100:
        raise InvalidInputError(f"--quality must be in 1..100, got {args.quality}")
    check_not_input(args.out, {"IMAGES": args.images, "--pairs": args.pairs})
    check_writable(args.out)  # a folder in the way, no permission: before reading the images
    generated = None
    if args.generate_pairs is not None:
        pairs_path = args.pairs or args.out.with_name(args.out.stem + "_pairs.txt")
        if pairs_path.exists():
            raise InvalidInputError(f"{pairs_path} exists: remove it or choose another --pairs path for the generated list")
        specs = generate_pairs(args.images, args.generate_pairs, seed=args.seed, n_folds=args.folds)
        generated = write_pairs(pairs_path, specs, n_folds=args.folds)
    else:
        if args.pairs is None:
            raise InvalidInputError("give --pairs PAIRS.txt, or --generate-pairs N to draw a pairs list")
        specs = parse_pairs(args.pairs)
    try:
        out = make_bin(args.images, specs, args.out, size=args.resize or None, fmt=args.format,
                       quality=args.quality, progress=not args.quiet)
    except BaseException:
        if generated is not None:  # the list drawn for this run: without its .bin a rerun would refuse it
            generated.unlink(missing_ok=True)
        raise
    n_same = sum(s.issame for s in specs)
    if args.json:
        print(json.dumps({"out": str(out), "pairs": len(specs), "matched": n_same, "mismatched": len(specs) - n_same,
                          "pairs_file": str(generated or args.pairs), "pairs_generated": generated is not None}))
        return 0
    if generated is not None:
        print(f"wrote {len(specs)} pairs to {generated}")
    print(f"wrote {out}: {len(specs)} pairs ({n_same} matched, {len(specs) - n_same} mismatched)")
    return 0
