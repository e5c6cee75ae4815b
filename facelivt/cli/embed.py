"""``facelivt embed``: face embeddings of images or folders into a safetensors file.

Also holds the model options shared by ``verify``, ``enroll`` and ``identify``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from facelivt.cli.align import add_detector_args, make_detector
from facelivt.devices import resolve_device
from facelivt.files import check_writable, write_bytes

_SHOW = 20


def add_model_args(p: argparse.ArgumentParser, model_default: str | None = "facelivt_s") -> None:
    """Options selecting the recognition model and how it runs."""
    p.add_argument("--model", default=model_default,
                   help="model variant, see `facelivt info` " + (f"(default {model_default})" if model_default else
                                                                  "(default: the gallery's model, else facelivt_s)"))
    p.add_argument("--weights", required=True, metavar="FILE",
                   help="model weights: this project's .safetensors or the authors' released .pt")
    p.add_argument("--train-form", action="store_true", help="run the train form instead of the reparameterized one")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N, mps or auto")
    p.add_argument("--batch-size", type=int, default=64, help="crops per forward pass (default 64)")
    p.add_argument("--no-flip", action="store_true", help="do not add the embedding of the mirrored crop")
    p.add_argument("--aligned", action="store_true", help="inputs are already aligned 112x112 crops: no detection")
    p.add_argument("--face", choices=("largest", "all", "error"), default="largest",
                   help="a photo with several faces: use the largest (default; each such photo is named in a "
                        "warning), every face, or refuse the photo ('error')")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_detector_args(p)


def make_recognizer(args: argparse.Namespace, model: str | None = None, threshold: float | None = None):
    """A FaceRecognizer from the options of :func:`add_model_args`."""
    from facelivt.inference import FaceRecognizer

    device = resolve_device(args.device, option="--device")
    detector = None if args.aligned else make_detector(args)
    return FaceRecognizer(
        model or args.model, args.weights, device=device, deploy=not args.train_form, detector=detector,
        threshold=threshold, flip=not args.no_flip, batch_size=args.batch_size,
    )


def check_threshold_option(args: argparse.Namespace) -> None:
    """Refuse a --threshold that is not a finite cosine score in (-1, 1] (NaN, -1, 2, ...)."""
    from facelivt.inference import check_threshold

    if getattr(args, "threshold", None) is not None:
        args.threshold = check_threshold(args.threshold, "--threshold")


def print_several_faces(several, face: str) -> None:
    """Say which photos held several faces and what was done with them (``several``: (path, count))."""
    if not several or face == "error":  # with --face error they are among the skipped files
        return
    if face == "largest":
        for path, count in several:
            print(f"warning: {path}: {count} faces found, used the largest", file=sys.stderr)
        print(f"warning: {len(several)} photo(s) held several faces; the largest face of each was used "
              "(--face all or --face error to choose)", file=sys.stderr)
    else:
        print(f"{len(several)} photo(s) held several faces; every face was used", file=sys.stderr)


def print_failures(failures, title: str = "skipped") -> None:
    """List (path, reason) pairs on stderr, the first few."""
    if not failures:
        return
    print(f"{title} ({len(failures)}):", file=sys.stderr)
    for path, reason in failures[:_SHOW]:
        print(f"  {path}: {reason}", file=sys.stderr)
    if len(failures) > _SHOW:
        print(f"  ... and {len(failures) - _SHOW} more", file=sys.stderr)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "embed",
        help="embed the faces of images or folders into a safetensors file",
        description="Detect and align the largest face of each image (or take aligned crops with --aligned), "
                    "embed it and write an N x D 'embeddings' tensor (L2-normalised) to OUT; the file's "
                    "metadata lists the image path ('paths') and face index ('faces', 0 = largest) of each row. "
                    "With --face all every face is a row. Unusable images are reported and skipped.",
    )
    p.add_argument("inputs", nargs="+", help="image files and/or folders (searched recursively)")
    p.add_argument("--out", required=True, metavar="FILE.safetensors", help="output file")
    add_model_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from safetensors.numpy import save

    from facelivt.inference import embed_files, expand_inputs

    files = expand_inputs(args.inputs)
    if not files:
        raise ValueError("no input files found")
    out = Path(args.out)
    resolve_device(args.device, option="--device")  # a device this machine lacks: refused before any work
    check_writable(out)  # a folder in the way, no permission: say so before loading and embedding
    rec = make_recognizer(args)
    result = embed_files(rec, files, aligned=args.aligned, progress=not args.quiet, face=args.face)
    print_failures(result.failures)
    print_several_faces(result.several_faces, args.face)
    if not result.paths:
        raise ValueError(f"none of the {len(files)} input files gave an embedding")
    metadata = {
        "paths": json.dumps([str(p) for p in result.paths]),
        "faces": json.dumps(result.faces),
        "model": rec.model_name,
        "weights_fingerprint": rec.weights_fingerprint,
        "flip": str(rec.flip),
    }
    # Serialised in memory and written atomically: a full disk leaves an earlier file as it was.
    write_bytes(out, save({"embeddings": result.embeddings}, metadata=metadata))
    print(f"wrote {len(result.paths)} embeddings of dimension {result.embeddings.shape[1]} to {out} "
          f"({len(result.failures)} of {len(files)} files skipped)")
    return 0
