"""``facelivt identify GALLERY IMAGE...``: who is in these photos?"""
from __future__ import annotations

import argparse
import json

from facelivt.cli.embed import add_model_args, print_failures
from facelivt.cli.enroll import open_gallery


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "identify",
        help="find the closest gallery identities for the face of each image",
        description="Embed the largest face of each image and list the top-k gallery identities by cosine "
                    "score; a match is accepted when its score reaches the gallery's (or the given) threshold.",
    )
    p.add_argument("gallery", help="gallery folder made by `facelivt enroll`")
    p.add_argument("images", nargs="+", help="image files and/or folders")
    p.add_argument("-k", "--top-k", dest="k", type=int, default=5, help="identities to list per image (default 5)")
    p.add_argument("--threshold", type=float, default=None, help="override the gallery's threshold")
    p.add_argument("--json", action="store_true", help="print one JSON object per image")
    add_model_args(p, model_default=None)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from facelivt.inference import expand_inputs

    if args.k < 1:
        raise ValueError(f"-k must be at least 1, got {args.k}")
    files = expand_inputs(args.images)
    if not files:
        raise ValueError("no input files found")
    rec = open_gallery(args, must_exist=True, threshold=args.threshold)
    failures = []
    for i, emb, error in rec.iter_embed(files, aligned=args.aligned, progress=not args.quiet and len(files) > 1):
        if error is not None:
            failures.append((files[i], str(error)))
            continue
        matches = [m for m in rec.gallery.search(emb, args.k)[0]]
        accepted = [m.score >= rec.threshold for m in matches]
        if args.json:
            print(json.dumps({
                "image": str(files[i]),
                "matches": [{"name": m.name, "score": round(m.score, 6), "accepted": a} for m, a in zip(matches, accepted)],
                "threshold": rec.threshold,
            }))
        else:
            best = matches[0].name if accepted[0] else "unknown"
            print(f"{files[i]}: {best}")
            for m, a in zip(matches, accepted):
                print(f"  {m.score:+.4f}  {m.name}{'  (accepted)' if a else ''}")
    print_failures(failures)
    if len(failures) == len(files):
        raise ValueError("no image could be identified")
    return 0
