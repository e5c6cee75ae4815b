"""``facelivt embed``: face embeddings of images or folders, streamed into a folder (``embeddings.npy``
+ ``index.csv``, resumable: :mod:`facelivt.inference.embed_stream`) or written at the end into one
safetensors file (the model options it shares with ``verify``, ``enroll`` and ``identify`` are
:mod:`facelivt.cli.common`'s)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from safetensors.numpy import save

from facelivt.cli.common import add_model_args, input_files, make_recognizer, print_failures, print_several_faces
from facelivt.cli.options import add_json
from facelivt.devices import resolve_device
from facelivt.errors import InvalidInputError
from facelivt.files import check_not_input, check_writable, cleanup_new_folders, write_bytes
from facelivt.inference import embed_files, embed_to_folder
from facelivt.inference.embed_stream import INDEX_NAME

FORMATS = ("auto", "npy", "safetensors")

def register(subparsers) -> None:
    p = subparsers.add_parser(
        "embed",
        help="embed the faces of images or folders (streamed to .npy + CSV, or one safetensors file)",
        description="Detect and align the largest face of each image (or take aligned crops with --aligned) and "
                    "embed it (L2-normalised). By default the rows are written as they are made into the folder "
                    "OUT: embeddings.npy (N x D float32), index.csv (row,path,face,sha256) and run.json; a run "
                    "that was stopped continues with --resume (photos already there, by content, are skipped). "
                    "With OUT ending in .safetensors (or --format safetensors) one file is written at the end: an "
                    "'embeddings' tensor whose metadata lists the paths ('paths') and face indexes ('faces'). "
                    "With --face all every face is a row. Unusable images are reported and skipped.",
    )
    p.add_argument("inputs", nargs="+", help="image files and/or folders (searched recursively, following links to folders)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="output folder (npy format: embeddings.npy, index.csv, run.json); a name ending in "
                        ".safetensors is one file instead (safetensors format)")
    p.add_argument("--format", choices=FORMATS, default="auto",
                   help="npy: stream into the folder OUT (resumable); safetensors: one file OUT written at the end; "
                        "auto (default): safetensors when OUT ends in .safetensors, else npy")
    p.add_argument("--resume", action="store_true",
                   help="continue the run whose folder OUT holds (npy format): skip the photos it has by content, "
                        "embed again the ones that changed")
    add_json(p, "print what was written (output, rows, dimension, files skipped) as JSON on stdout")
    add_model_args(p)
    p.set_defaults(func=run)


def output_format(args: argparse.Namespace) -> str:
    """npy or safetensors: ``--format``, or for auto the suffix of ``--out``."""
    fmt = args.format
    if fmt == "auto":
        fmt = "safetensors" if Path(args.out).suffix.lower() == ".safetensors" else "npy"
    if args.resume and fmt != "npy":
        raise InvalidInputError("--resume continues a streamed run: give a folder as --out (npy format), "
                                "not a .safetensors file")
    return fmt


def run(args: argparse.Namespace) -> int:
    with cleanup_new_folders(args.out):  # a run that fails before writing leaves no empty folder behind
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    fmt = output_format(args)
    files = input_files(args.inputs)
    out = Path(args.out)
    # `--weights w --out w` replaced the weights; a folder among the inputs would list its own files
    check_not_input(out, {"--weights": args.weights, "image": files, "input folder": args.inputs},
                    inside_input=fmt == "npy")
    resolve_device(args.device, option="--device")  # a device this machine lacks: refused before any work
    if fmt == "npy":
        check_folder_output(out, args.resume)
        return _stream(args, files, out)
    check_writable(out)  # a folder in the way, no permission: say so before loading and embedding
    return _one_file(args, files, out)


def check_folder_output(out: Path, resume: bool) -> None:
    """Refuse, before loading a model, an output folder that is a file or holds a run not to resume."""
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"--out {out} is a file: the npy format writes a folder (give a folder, or a "
                                "name ending in .safetensors for one file)")
    if not resume and (out / INDEX_NAME).exists():
        raise InvalidInputError(f"{out} holds the embeddings of an earlier run: pass --resume to continue it, "
                                "or give another folder")
    check_writable(out / INDEX_NAME)


def _stream(args: argparse.Namespace, files: list[Path], out: Path) -> int:
    rec = make_recognizer(args)
    report = embed_to_folder(rec, files, out, aligned=args.aligned, face=args.face, resume=args.resume,
                             progress=not args.quiet)
    print_failures(report.failures)
    print_several_faces(report.several_faces, args.face)
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        print(f"{out}: {report.rows} embeddings of dimension {report.dim} ({report.rows_added} added from "
              f"{report.embedded} images at {report.images_per_second:.1f} images/s; {report.skipped} already "
              f"there, {report.replaced} changed and embedded again, {len(report.failures)} skipped)")
    if report.rows == 0:
        raise InvalidInputError(f"none of the {len(files)} input files gave an embedding")
    return 0


def _one_file(args: argparse.Namespace, files: list[Path], out: Path) -> int:
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
