"""``facelivt enroll GALLERY``: add identities to a gallery folder (created if missing)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

from facelivt.cli.common import (
    add_model_args,
    check_threshold_option,
    open_gallery,
    print_failures,
    print_several_faces,
)
from facelivt.cli.options import add_json
from facelivt.errors import InputNotFoundError, InvalidInputError
from facelivt.files import check_not_input
from facelivt.inference import Gallery, GalleryWriteError, embed_files, expand_inputs, list_files, photo_sha256
from facelivt.inference.gallery_pg import is_pg_url, shown


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "enroll",
        help="add identities to a gallery",
        description="Embed photos and add them to a gallery folder (created if missing; the gallery is "
                    "GALLERY/gallery.sqlite). One identity: `enroll GALLERY --name NAME IMAGE_OR_FOLDER...`; many: "
                    "`enroll GALLERY ROOT...` where each subfolder of ROOT is an identity named after it. Each "
                    "identity is written in one transaction, so several enroll processes can share a gallery. "
                    "Unusable images are reported and skipped, and so are photos the identity already has (same "
                    "content): running an interrupted enroll again adds only what is missing.",
    )
    p.add_argument("gallery", help="gallery folder (holds gallery.sqlite; an old gallery.json + "
                                   "embeddings.safetensors there is imported once), or a PostgreSQL URL "
                                   "postgresql://user@host:port/db?gallery=NAME (needs facelivt[postgres])")
    p.add_argument("sources", nargs="+",
                   help="with --name: images (or folders of images) of that identity; "
                        "without: folders whose subfolders are identities")
    p.add_argument("--name", default=None, help="identity name for the given images")
    p.add_argument("--threshold", type=float, default=None,
                   help="store this verification threshold (a cosine score in (-1, 1]) in the gallery")
    p.add_argument("--calibrate", default=None, metavar="PAIRS",
                   help="store a threshold calibrated on a .bin set or a pairs list")
    p.add_argument("--target-far", type=float, default=None, help="with --calibrate: threshold at this FAR")
    add_json(p, "print the outcome (counts, the gallery's size and threshold) as JSON on stdout")
    add_model_args(p, gallery=True)
    p.set_defaults(func=run)


def identity_groups(sources: list[str], name: str | None) -> list[tuple[str, list[Path]]]:
    """(identity, files) to enroll: all sources under ``name``, or every subfolder of each source folder."""
    if name is not None:
        if not name.strip():
            raise InvalidInputError("--name must not be empty")
        return [(name, expand_inputs(sources))]
    groups: dict[str, list[Path]] = {}
    for src in sources:
        root = Path(src)
        if not root.is_dir():
            raise InputNotFoundError(f"{root} is not a folder: give --name NAME to enroll single images")
        subs = [d for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".")]
        if not subs:
            raise InvalidInputError(f"{root} has no identity subfolders (or give --name NAME)")
        for d in subs:
            groups.setdefault(d.name, []).extend(list_files(d))
    return list(groups.items())


def check_args(args: argparse.Namespace) -> None:
    if args.threshold is not None and args.calibrate is not None:
        raise InvalidInputError("give either --threshold or --calibrate, not both")
    if args.target_far is not None and args.calibrate is None:
        raise InvalidInputError("--target-far needs --calibrate")
    if args.face == "all":
        raise InvalidInputError("enroll takes one face per photo: --face all would put everyone in a group photo "
                                "under one name; use --face largest or --face error")
    check_threshold_option(args)
    if is_pg_url(args.gallery):
        return  # a gallery in PostgreSQL: no file of it can be an input
    # the gallery folder: not a photo folder (nor inside one: it would be read as an identity), nor the weights
    check_not_input(args.gallery, {"photos": args.sources}, inside_input=True)
    check_not_input(args.gallery, {"--weights": args.weights, "--calibrate": args.calibrate})


def run(args: argparse.Namespace) -> int:
    check_args(args)
    groups = identity_groups(args.sources, args.name)
    rec = open_gallery(args, must_exist=False, threshold=args.threshold)
    try:
        if args.calibrate is not None:
            cal = rec.calibrate(args.calibrate, target_far=args.target_far, aligned=args.aligned,
                                progress=not args.quiet)
            print(f"threshold {cal.threshold:.4f} ({cal.rule}, accuracy {100 * cal.accuracy:.2f}% "
                  f"on {cal.num_pairs} pairs)", file=sys.stderr if args.json else sys.stdout)
        added, enrolled, skipped = enroll_groups(rec, groups, args)
        if args.threshold is not None or args.calibrate is not None:
            rec.gallery.update_metadata(threshold=rec.threshold, threshold_source=rec.threshold_source)
        if args.json:
            print(json.dumps({"gallery": shown(args.gallery), "enrolled_images": added, "enrolled_identities": enrolled,
                              "skipped_known": skipped, "identities": len(rec.gallery),
                              "images": rec.gallery.num_embeddings, "threshold": rec.threshold,
                              "threshold_source": rec.threshold_source}))
            return 0
        known = f"; skipped {skipped} photos it already had" if skipped else ""
        print(f"enrolled {added} images of {enrolled} identities{known}; gallery {shown(args.gallery)} now holds "
              f"{len(rec.gallery)} identities ({rec.gallery.num_embeddings} images)")
    finally:
        rec.gallery.close()
    return 0


def enroll_groups(rec, groups: list[tuple[str, list[Path]]], args: argparse.Namespace) -> tuple[int, int, int]:
    """Embed and enroll each identity (one transaction each; the gallery is made by the first). Photos
    the identity has already (by content) are skipped. Returns the images and identities enrolled,
    and the photos skipped."""
    failures, several, empty, done = [], [], [], []
    added = skipped = 0
    if rec.gallery.path is None:  # nothing is written before the first enrolment
        Gallery.open_for(rec, args.gallery, create=True)
    outer = tqdm(groups, desc="enroll", unit="identity", disable=args.quiet or len(groups) == 1)
    for name, files in outer:
        todo, known = new_photos(rec.gallery, name, files)
        skipped += known
        if known and not todo:
            continue
        result = embed_files(rec, list(todo), aligned=args.aligned, progress=not args.quiet and len(groups) == 1,
                             face=args.face)
        failures.extend(result.failures)
        several.extend(result.several_faces)
        if len(result.paths) == 0:
            empty.append(name)
            continue
        try:
            count = rec.gallery.enroll_embeddings(name, result.embeddings, sources=result.paths,
                                                  hashes=[todo[p] for p in result.paths])
        except GalleryWriteError:
            if done:
                print(f"enrolled before the error, and kept ({len(done)}): {', '.join(done[:20])}", file=sys.stderr)
            raise
        skipped += len(result.paths) - count  # enrolled by another process meanwhile
        added += count
        done += [name] if count else []
    print_failures(failures)
    print_several_faces(several, args.face)
    if empty:
        print(f"identities with no usable image, not enrolled ({len(empty)}): {', '.join(empty[:20])}", file=sys.stderr)
    if added == 0 and skipped == 0:
        raise InvalidInputError("no image could be enrolled; the gallery was not changed")
    return added, len(done), skipped


def new_photos(gallery, name: str, files: list[Path]) -> tuple[dict[Path, str | None], int]:
    """The photos of ``name`` the gallery does not have yet (by content: a photo given twice counts
    once), with their sha256, and how many of ``files`` were left out."""
    hashes = [photo_sha256(f) for f in files]
    todo, seen = {}, set()
    for path, digest, known in zip(files, hashes, gallery.enrolled(name, hashes, files)):
        if known or (digest is not None and digest in seen):
            continue
        seen.add(digest)
        todo[path] = digest
    return todo, len(files) - len(todo)
