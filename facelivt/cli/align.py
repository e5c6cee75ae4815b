"""``facelivt align IMAGES --out DIR``: detect, align and write 112x112 crops mirroring the input tree."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from facelivt.cli.common import SHOW as _SHOW
from facelivt.cli.common import add_detector_args, make_detector
from facelivt.cli.options import add_device, add_json, add_out_dir, add_quiet
from facelivt.devices import resolve_device
from facelivt.errors import InputNotFoundError, InvalidInputError
from facelivt.files import check_not_input, check_writable, cleanup_new_folders, write_text
from facelivt.inference import align_folder

def register(subparsers) -> None:
    p = subparsers.add_parser(
        "align",
        help="detect and align faces of an image folder into 112x112 crops",
        description="Detect faces (MTCNN) in every image under IMAGES, align them to the ArcFace template and "
                    "write the crops under --out DIR with the same relative paths. Unreadable files and images "
                    "without a face are reported; the exit code is 0 when the run completed.",
    )
    p.add_argument("in_dir", metavar="IMAGES", help="input folder (any tree of images, e.g. identity/image.jpg)")
    add_out_dir(p, "the crops, same relative paths (created; must not lie inside IMAGES)", required=True,
                dest="out_dir")
    p.add_argument("--all-faces", action="store_true",
                   help="write every face (extra faces as NAME_face1.EXT, ...); default: the largest face only")
    p.add_argument("--format", dest="fmt", choices=("same", "jpg", "png"), default="same",
                   help="output format; 'same' keeps jpg/png/bmp and writes other formats as png (default)")
    p.add_argument("--size", type=int, default=112, help="crop size (default 112)")
    p.add_argument("--skip-existing", action="store_true", help="leave images whose crop already exists")
    p.add_argument("--report", default=None, metavar="FILE.json", help="write the full report (every problem file)")
    add_device(p, "device for the detector")
    add_quiet(p)
    add_json(p, "print the report (counts and every problem file) as JSON on stdout")
    add_detector_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with cleanup_new_folders(args.out_dir, args.report):  # a run that fails before writing leaves no empty folder behind
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    if not Path(args.in_dir).is_dir():
        raise InputNotFoundError(f"input folder not found: {args.in_dir}")
    if args.size < 16:
        raise InvalidInputError(f"--size must be at least 16, got {args.size}")
    resolve_device(args.device, option="--device")  # a device this machine lacks: refused before any work
    check_not_input(args.out_dir, {"IMAGES": args.in_dir}, inside_input=True)  # before the detector is loaded
    if args.report:
        check_writable(args.report)  # before the run, not after it
    detector = make_detector(args)
    report = align_folder(
        detector, args.in_dir, args.out_dir,
        select="all" if args.all_faces else "largest", fmt=args.fmt, size=args.size,
        skip_existing=args.skip_existing, progress=not args.quiet, workers=args.workers,
    )
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        print(report.summary())
    for title, items in (("no face found", report.no_face), ("unreadable", [f"{p}: {r}" for p, r in report.unreadable])):
        if items:
            print(f"{title} ({len(items)}):", file=sys.stderr)
            for line in items[:_SHOW]:
                print(f"  {line}", file=sys.stderr)
            if len(items) > _SHOW:
                print(f"  ... and {len(items) - _SHOW} more" + ("" if args.report else " (use --report FILE.json)"),
                      file=sys.stderr)
    if args.report:
        write_text(args.report, json.dumps(report.to_dict(), indent=1))
        print(f"report written to {args.report}", file=sys.stderr if args.json else sys.stdout)
    return 0
