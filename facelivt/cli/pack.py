"""``facelivt pack IMAGES --out DIR``: image folder -> insightface RecordIO (train.rec / train.idx / property)."""
from __future__ import annotations

import argparse
import json

from facelivt.cli.options import add_json, add_out_dir, add_quiet
from facelivt.data.recordio import pack_image_folder
from facelivt.errors import InvalidInputError
from facelivt.files import check_not_input, cleanup_new_folders


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "pack",
        help="pack an image folder (root/<identity>/<image>) into insightface RecordIO",
        description="Write DIR/train.rec, DIR/train.idx, DIR/property (and DIR/classes.txt) in the "
        "insightface layout: record 0 is the header, then the images, then one record per identity.",
    )
    p.add_argument("images", metavar="IMAGES", help="image folder: IMAGES/<identity>/<image>")
    add_out_dir(p, "train.rec, train.idx, property, classes.txt (created if missing)", required=True)
    p.add_argument("--png", action="store_true", help="store images as PNG (lossless) instead of JPEG")
    p.add_argument("--quality", type=int, default=95, help="JPEG quality 1-100 (default 95)")
    p.add_argument("--size", type=int, default=112, help="image side in pixels; others are resized (default 112)")
    add_quiet(p)
    add_json(p, "print the counts as JSON on stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with cleanup_new_folders(args.out):  # a run that fails before writing leaves no empty folder behind
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    if args.size < 1:
        raise InvalidInputError(f"--size must be positive, got {args.size}")
    check_not_input(args.out, {"IMAGES": args.images}, inside_input=True)  # the output would be read as an identity
    stats = pack_image_folder(args.images, args.out, quality=args.quality, png=args.png, size=args.size,
                              progress=not args.quiet)
    if args.json:
        print(json.dumps({**stats, "out": str(args.out)}))
        return 0
    print(
        f"packed {stats['num_images']} images of {stats['num_classes']} identities into {args.out}"
        + (f" ({stats['skipped']} unreadable images skipped)" if stats["skipped"] else "")
    )
    return 0
