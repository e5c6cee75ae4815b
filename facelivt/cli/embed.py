"""``facelivt embed``: face embeddings of images or folders into a safetensors file (the model options
it shares with ``verify``, ``enroll`` and ``identify`` are :mod:`facelivt.cli.common`'s)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from safetensors.numpy import save

from facelivt.cli.common import add_model_args, make_recognizer, print_failures, print_several_faces
from facelivt.cli.options import add_json
from facelivt.devices import resolve_device
from facelivt.errors import InvalidInputError
from facelivt.files import check_not_input, check_writable, cleanup_new_folders, write_bytes
from facelivt.inference import embed_files, expand_inputs

def register(subparsers) -> None:
    p = subparsers.add_parser(
        "embed",
        help="embed the faces of images or folders into a safetensors file",
        description="Detect and align the largest face of each image (or take aligned crops with --aligned), "
                    "embed it and write an N x D 'embeddings' tensor (L2-normalised) to OUT; the file's "
                    "metadata lists the image path ('paths') and face index ('faces', 0 = largest) of each row. "
                    "With --face all every face is a row. Unusable images are reported and skipped.",
    )
    p.add_argument("inputs", nargs="+", help="image files and/or folders (searched recursively, following links to folders)")
    p.add_argument("--out", required=True, metavar="FILE.safetensors", help="output file")
    add_json(p, "print what was written (file, rows, dimension, files skipped) as JSON on stdout")
    add_model_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with cleanup_new_folders(args.out):  # a run that fails before writing leaves no empty folder behind
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    files = expand_inputs(args.inputs)
    if not files:
        raise InvalidInputError("no input files found")
    out = Path(args.out)
    check_not_input(out, {"--weights": args.weights, "image": files})  # `--weights w --out w` replaced the weights
    resolve_device(args.device, option="--device")  # a device this machine lacks: refused before any work
    check_writable(out)  # a folder in the way, no permission: say so before loading and embedding
    rec = make_recognizer(args)
    result = embed_files(rec, files, aligned=args.aligned, progress=not args.quiet, face=args.face)
    print_failures(result.failures)
    print_several_faces(result.several_faces, args.face)
    if not result.paths:
        raise InvalidInputError(f"none of the {len(files)} input files gave an embedding")
    metadata = {
        "paths": json.dumps([str(p) for p in result.paths]),
        "faces": json.dumps(result.faces),
        "model": rec.model_name,
        "weights_fingerprint": rec.weights_fingerprint,
        "weights": rec.weights_source,
        "flip": str(rec.flip),
    }
    # Serialised in memory and written atomically: a full disk leaves an earlier file as it was.
    write_bytes(out, save({"embeddings": result.embeddings}, metadata=metadata))
    if args.json:
        print(json.dumps({"out": str(out), "embeddings": len(result.paths), "dimension": int(result.embeddings.shape[1]),
                          "files": len(files), "skipped": len(result.failures), "model": rec.model_name}))
        return 0
    print(f"wrote {len(result.paths)} embeddings of dimension {result.embeddings.shape[1]} to {out} "
          f"({len(result.failures)} of {len(files)} files skipped)")
    return 0
