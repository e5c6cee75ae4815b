"""``facelivt identify GALLERY IMAGE...``: who is in these photos?"""
from __future__ import annotations

import argparse
import json
import sys

from facelivt.cli.common import (
    add_model_args,
    check_threshold_option,
    input_files,
    open_gallery,
    print_failures,
    print_several_faces,
)
from facelivt.errors import InvalidInputError
from facelivt.inference import failure_reason
from facelivt.inference.calibration import UNRELIABLE


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "identify",
        help="find the closest gallery identities for the face of each image",
        description="Embed the largest face of each image (every face with --face all) and list the top-k "
                    "gallery identities by cosine score; a match is accepted when its score reaches the "
                    "gallery's (or the given) threshold. Runs while `facelivt enroll` adds to the gallery.",
    )
    p.add_argument("gallery", help="gallery folder made by `facelivt enroll`, or a PostgreSQL URL "
                                   "postgresql://user@host:port/db?gallery=NAME")
    p.add_argument("images", nargs="+", help="image files and/or folders")
    p.add_argument("-k", "--top-k", dest="k", type=int, default=5, help="identities to list per image (default 5)")
    p.add_argument("--threshold", type=float, default=None, help="override the gallery's threshold")
    p.add_argument("--json", action="store_true", help="print one JSON object per image (per face with --face all)")
    add_model_args(p, gallery=True)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.k < 1:
        raise InvalidInputError(f"-k must be at least 1, got {args.k}")
    check_threshold_option(args)
    files = input_files(args.images)
    rec = open_gallery(args, must_exist=True, threshold=args.threshold, readonly=True)
    if not args.json:
        print(f"threshold {rec.threshold:.4f} ({rec.threshold_source})", file=sys.stderr)
        if not rec.reliable:
            print(f"warning: {UNRELIABLE}: an accepted match means nothing", file=sys.stderr)
    try:
        failures, several = identify_files(rec, files, args)
    finally:
        rec.gallery.close()
    print_failures(failures)
    print_several_faces(several, args.face)
    if len(failures) == len(files):
        raise InvalidInputError("no image could be identified")
    return 0


def identify_files(rec, files, args: argparse.Namespace) -> tuple[list, list]:
    """Print the matches of each usable face; returns the failures and the photos with several faces."""
    failures, several = [], []
    for r in rec.iter_faces(files, aligned=args.aligned, face=args.face, progress=not args.quiet and len(files) > 1):
        if r.error is not None:
            failures.append((files[r.index], failure_reason(r.error, files[r.index])))
            continue
        if r.found > 1:
            several.append((files[r.index], r.found))
        for face, emb in zip(r.faces, r.embeddings):
            matches = rec.gallery.search(emb, args.k)[0]
            print_matches(files[r.index], face if args.face == "all" else None, matches, rec, args.json)
    return failures, several


def print_matches(path, face: int | None, matches, rec, as_json: bool) -> None:
    """One image's (or face's) matches: a JSON line, or the best accepted name and the scores."""
    accepted = [m.score >= rec.threshold for m in matches]
    if as_json:
        record = {"image": str(path)}
        if face is not None:
            record["face"] = face
        record["matches"] = [{"name": m.name, "score": round(m.score, 6), "accepted": a} for m, a in zip(matches, accepted)]
        record["threshold"] = rec.threshold
        record["threshold_source"] = rec.threshold_source
        record["reliable"] = rec.reliable
        print(json.dumps(record))
        return
    best = (matches[0].name if accepted[0] else "unknown") + ("" if rec.reliable else " (unreliable)")
    print(f"{path}{'' if face is None else f' (face {face})'}: {best}")
    for m, a in zip(matches, accepted):
        print(f"  {m.score:+.4f}  {m.name}{'  (accepted)' if a else ''}")
