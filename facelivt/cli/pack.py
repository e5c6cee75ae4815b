"""``facelivt pack``: image folder -> insightface RecordIO (train.rec / train.idx / property)."""
from __future__ import annotations

import argparse

from facelivt.data.recordio import pack_image_folder
from facelivt.errors import InvalidInputError
from facelivt.files import check_not_input, cleanup_new_folders


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "pack",
        help="pack an image folder (root/<identity>/<image>) into insightface RecordIO",
        description="Write OUT/train.rec, OUT/train.idx, OUT/property (and OUT/classes.txt) in the "
        "insightface layout: record 0 is the header, then the images, then one record per identity.",
    )
    p.add_argument("--images", required=True, help="image folder: DIR/<identity>/<image>")
    p.add_argument("--out", required=True, help="output folder (created if missing)")
    p.add_argument("--png", action="store_true", help="store images as PNG (lossless) instead of JPEG")
    p.add_argument("--quality", type=int, default=95, help="JPEG quality 1-100 (default 95)")
    p.add_argument("--size", type=int, default=112, help="image side in pixels; others are resized (default 112)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with cleanup_new_folders(args.out):  # a run that fails before writing leaves no empty folder behind
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    if args.size < 1:
        raise InvalidInputError(f"--size must be positive, got {args.size}")
    check_not_input(args.out, {"--images": args.images}, inside_input=True)  # the output would be read as an identity
    stats = pack_image_folder(args.images, args.out, quality=args.quality, png=args.png, size=args.size)
    print(
        f"packed {stats['num_images']} images of {stats['num_classes']} identities into {args.out}"
        + (f" ({stats['skipped']} unreadable images skipped)" if stats["skipped"] else "")
    )
    return 0
