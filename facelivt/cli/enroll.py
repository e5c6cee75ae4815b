"""``facelivt enroll GALLERY``: add identities to a gallery folder (created if missing)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from facelivt.cli.embed import add_model_args, make_recognizer, print_failures


def gallery_model(folder: str) -> str | None:
    """The model name recorded in an existing gallery, or None when there is no gallery yet."""
    from facelivt.inference import Gallery

    if not (Path(folder) / "gallery.json").is_file():
        return None
    return Gallery.load(folder).metadata.get("model")


def open_gallery(args: argparse.Namespace, must_exist: bool, threshold: float | None = None):
    """A recognizer with the gallery of ``args.gallery`` loaded (or a new empty one)."""
    model = args.model or gallery_model(args.gallery) or "facelivt_s"
    rec = make_recognizer(args, model=model, threshold=threshold)
    if (Path(args.gallery) / "gallery.json").is_file():
        rec.load_gallery(args.gallery)
    elif must_exist:
        raise FileNotFoundError(f"no gallery in {args.gallery} (create one with `facelivt enroll`)")
    return rec


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "enroll",
        help="add identities to a gallery",
        description="Embed photos and add them to a gallery folder (created if missing). One identity: "
                    "`enroll GALLERY --name NAME IMAGE_OR_FOLDER...`; many: `enroll GALLERY ROOT...` where each "
                    "subfolder of ROOT is an identity named after it. Unusable images are reported and skipped.",
    )
    p.add_argument("gallery", help="gallery folder (gallery.json + embeddings.safetensors)")
    p.add_argument("sources", nargs="+",
                   help="with --name: images (or folders of images) of that identity; "
                        "without: folders whose subfolders are identities")
    p.add_argument("--name", default=None, help="identity name for the given images")
    p.add_argument("--threshold", type=float, default=None, help="store this verification threshold in the gallery")
    p.add_argument("--calibrate", default=None, metavar="PAIRS",
                   help="store a threshold calibrated on a .bin set or a pairs list")
    p.add_argument("--target-far", type=float, default=None, help="with --calibrate: threshold at this FAR")
    add_model_args(p, model_default=None)
    p.set_defaults(func=run)


def identity_groups(sources: list[str], name: str | None) -> list[tuple[str, list[Path]]]:
    """(identity, files) to enroll: all sources under ``name``, or every subfolder of each source folder."""
    from facelivt.inference import expand_inputs, list_files

    if name is not None:
        if not name.strip():
            raise ValueError("--name must not be empty")
        return [(name, expand_inputs(sources))]
    groups: dict[str, list[Path]] = {}
    for src in sources:
        root = Path(src)
        if not root.is_dir():
            raise FileNotFoundError(f"{root} is not a folder: give --name NAME to enroll single images")
        subs = [d for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".")]
        if not subs:
            raise ValueError(f"{root} has no identity subfolders (or give --name NAME)")
        for d in subs:
            groups.setdefault(d.name, []).extend(list_files(d))
    return list(groups.items())


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from facelivt.inference import embed_files

    if args.threshold is not None and args.calibrate is not None:
        raise ValueError("give either --threshold or --calibrate, not both")
    if args.target_far is not None and args.calibrate is None:
        raise ValueError("--target-far needs --calibrate")
    groups = identity_groups(args.sources, args.name)
    rec = open_gallery(args, must_exist=False, threshold=args.threshold)
    if args.calibrate is not None:
        cal = rec.calibrate(args.calibrate, target_far=args.target_far, aligned=args.aligned, progress=not args.quiet)
        print(f"threshold {cal.threshold:.4f} ({cal.rule}, accuracy {100 * cal.accuracy:.2f}% on {cal.num_pairs} pairs)")
    failures, empty, added = [], [], 0
    outer = tqdm(groups, desc="enroll", unit="identity", disable=args.quiet or len(groups) == 1)
    for name, files in outer:
        result = embed_files(rec, files, aligned=args.aligned, progress=not args.quiet and len(groups) == 1)
        failures.extend(result.failures)
        if len(result.paths) == 0:
            empty.append(name)
            continue
        rec.gallery.enroll_embeddings(name, result.embeddings)
        added += len(result.paths)
    print_failures(failures)
    if empty:
        print(f"identities with no usable image, not enrolled ({len(empty)}): {', '.join(empty[:20])}", file=sys.stderr)
    if added == 0:
        raise ValueError("no image could be enrolled; the gallery was not changed")
    rec.save_gallery(args.gallery)
    print(f"enrolled {added} images of {len(groups) - len(empty)} identities; gallery {args.gallery} now holds "
          f"{len(rec.gallery)} identities ({rec.gallery.num_embeddings} images)")
    return 0
