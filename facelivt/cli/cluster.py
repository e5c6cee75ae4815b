"""``facelivt cluster``: group the faces of images or folders by identity (unknown faces: nobody is
enrolled), into a folder of folders and/or a CSV. The work is :mod:`facelivt.inference.cluster`'s."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from facelivt.cli.common import (
    add_model_args,
    check_threshold_option,
    input_files,
    make_recognizer,
    print_failures,
    print_several_faces,
)
from facelivt.devices import resolve_device
from facelivt.errors import InvalidInputError
from facelivt.files import check_not_input, check_writable, cleanup_new_folders
from facelivt.inference.cluster import (
    METHODS,
    check_cluster_folder,
    cluster_files,
    folder_name,
    write_cluster_csv,
    write_cluster_folders,
)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "cluster",
        help="group the faces of images or folders by identity, into folders or a CSV",
        description="Embed the largest face of each image (every face with --face all; aligned crops with "
                    "--aligned) and group faces whose cosine similarity reaches the threshold (the model's, as "
                    "in verify, or --threshold): scikit-learn's agglomerative clustering (average linkage) or "
                    "DBSCAN on cosine distance 1 - threshold. Groups smaller than --min-size are noise. "
                    "--out DIR writes DIR/cluster_000/ (the largest group), cluster_001/, ... and noise/ with "
                    "links to the photos (--copy: copies); --csv FILE writes path,face,cluster (-1: noise).",
    )
    p.add_argument("inputs", nargs="+", help="image files and/or folders (searched recursively)")
    p.add_argument("--out", metavar="DIR", help="output FOLDER: a folder per group and noise/ (replaced whole)")
    p.add_argument("--csv", metavar="FILE", help="output FILE: path,face,cluster per face")
    p.add_argument("--threshold", type=float, default=None,
                   help="cosine similarity at which two faces are the same person (default: the recognizer's)")
    p.add_argument("--method", choices=METHODS, default="agglomerative",
                   help="agglomerative (default; memory N x N) or dbscan")
    p.add_argument("--min-size", type=int, default=2, help="smallest group; smaller ones are noise (default 2)")
    p.add_argument("--copy", action="store_true", help="copy the photos into --out instead of linking them")
    p.add_argument("--json", action="store_true", help="print the groups as JSON on stdout")
    add_model_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with cleanup_new_folders(args.out, args.csv):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    if args.out is None and args.csv is None and not args.json:
        raise InvalidInputError("give --out DIR (a folder per group), --csv FILE or --json")
    if args.min_size < 1:
        raise InvalidInputError(f"--min-size must be at least 1, got {args.min_size}")
    check_threshold_option(args)
    files = input_files(args.inputs)
    for out in (args.out, args.csv):
        if out is not None:
            check_not_input(out, {"image": files, "input folder": args.inputs}, inside_input=True, holds_input=True)
    resolve_device(args.device, option="--device")
    if args.out is not None:
        check_cluster_folder(args.out)
        check_writable(Path(args.out).parent / f".{Path(args.out).name}")
    if args.csv is not None:
        check_writable(args.csv)
    rec = make_recognizer(args)
    result = cluster_files(rec, files, threshold=args.threshold, method=args.method, min_size=args.min_size,
                           aligned=args.aligned, face=args.face, progress=not args.quiet)
    print_failures(result.failures)
    print_several_faces(result.several_faces, args.face)
    if not result.paths:
        raise InvalidInputError(f"none of the {len(files)} input files gave an embedding")
    if args.out is not None:
        write_cluster_folders(result, args.out, copy=args.copy)
    if args.csv is not None:
        write_cluster_csv(result, args.csv)
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        sizes = [int((result.labels == g).sum()) for g in range(result.groups)]
        shown = ", ".join(f"{folder_name(g)}: {n}" for g, n in enumerate(sizes[:5])) + (", ..." if len(sizes) > 5 else "")
        where = " and ".join(x for x in (args.out, args.csv) if x)
        print(f"{len(result.paths)} faces: {result.groups} groups ({shown}), {result.noise} noise; "
              f"threshold {result.threshold:g}; written to {where}")
    return 0
