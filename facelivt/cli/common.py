"""Helpers shared by several sub-commands: model and detector options, the gallery a command works
on, and how problem files are listed on the terminal.

This module has no ``register``: it is not a sub-command (see :func:`facelivt.cli.build_parser`).
"""
from __future__ import annotations

import argparse
import sys

import torch

from facelivt.cli.options import add_batch_size, add_device, add_quiet
from facelivt.cpu import check_threads
from facelivt.devices import resolve_device
from facelivt.errors import InvalidInputError
from facelivt.inference import (
    DEFAULT_WORKERS,
    FACE_POLICIES,
    FaceDetector,
    FaceRecognizer,
    Gallery,
    GalleryNotFoundError,
    check_threshold,
    check_workers,
    expand_inputs,
)
from facelivt.inference.gallery_pg import shown
from facelivt.models import DEFAULT_PRETRAINED, weights_variant

SHOW = 20  # problem files listed on the terminal (all of them go to a --report where a command has one)


def add_detector_args(p: argparse.ArgumentParser) -> None:
    """Options of the MTCNN face detector."""
    p.add_argument("--mtcnn-weights", default=None, metavar="DIR",
                   help="folder with pnet.pt, rnet.pt, onet.pt (default: $FACELIVT_MTCNN_WEIGHTS, then the "
                        "installed facenet-pytorch package: pip install --no-deps facenet-pytorch==2.6.0)")
    p.add_argument("--min-face-size", type=float, default=20.0, help="smallest face to find, in pixels (default 20)")
    p.add_argument("--pad", type=float, default=0.0, metavar="FRACTION",
                   help="when no face is found, look again with a black border of FRACTION x the longest side "
                        "(e.g. 0.3; helps on tightly cropped faces); default 0: no second look")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's choice; 1 is best on a busy shared machine)")
    p.add_argument("--pad-always", action="store_true",
                   help="always detect with the --pad border (best for sets of tight face crops)")
    p.add_argument("--workers", type=int, default=DEFAULT_WORKERS, metavar="N",
                   help=f"threads that decode, detect and align photos a few ahead of the network (default "
                        f"{DEFAULT_WORKERS}; 0: one photo at a time; the results are the same)")


def make_detector(args: argparse.Namespace) -> FaceDetector:
    """A FaceDetector from the options of :func:`add_detector_args` (and ``--device``)."""
    apply_threads(args)
    if args.pad_always and args.pad <= 0:
        raise InvalidInputError("--pad-always needs --pad FRACTION (e.g. --pad 0.3)")
    return FaceDetector(args.mtcnn_weights, min_face_size=args.min_face_size,
                        device=resolve_device(args.device, option="--device"), pad=args.pad,
                        pad_always=args.pad_always)


def apply_threads(args: argparse.Namespace) -> None:
    """Check ``--threads`` (:func:`facelivt.cpu.check_threads`) and set torch's thread count to it;
    check ``--workers``."""
    check_workers(args.workers, "--workers")
    if check_threads(args.threads, "--threads") is not None:
        torch.set_num_threads(args.threads)


WEIGHTS_HELP = ("model weights: a file (this project's .safetensors or the authors' released .pt), a pretrained name "
                "(`facelivt models`), hf://owner/repo[@revision]/file or https://...; remote weights are fetched once "
                "into the cache (FACELIVT_HOME)")


def add_model_args(p: argparse.ArgumentParser, gallery: bool = False) -> None:
    """Options selecting the recognition model and how it runs."""
    default = f"the weights' model, {'else the gallery' + chr(39) + 's model, ' if gallery else ''}else {DEFAULT_PRETRAINED}"
    p.add_argument("--model", default=None, help=f"model variant, see `facelivt models` (default: {default})")
    p.add_argument("--weights", default=None, metavar="WEIGHTS",
                   help=WEIGHTS_HELP + f" (default: the pretrained weights of --model; {DEFAULT_PRETRAINED} when neither "
                   "is given: of the published models the best accuracy for its size)")
    p.add_argument("--train-form", action="store_true", help="run the train form instead of the reparameterized one")
    add_device(p)
    add_batch_size(p)
    p.add_argument("--no-flip", action="store_true", help="do not add the embedding of the mirrored crop")
    p.add_argument("--aligned", action="store_true", help="inputs are already aligned 112x112 crops: no detection")
    p.add_argument("--face", choices=FACE_POLICIES, default="largest",
                   help="a photo with several faces: use the largest (default; each such photo is named in a "
                        "warning), every face, or refuse the photo ('error')")
    add_quiet(p, "no progress bar and no 'model ...' line")
    add_detector_args(p)


def model_name_for(model: str | None, weights: str | None, fallback: str | None, progress: bool = True) -> str:
    """The model to run: ``model`` (``--model``), else the one ``weights`` hold, else ``fallback``."""
    if model:
        return model
    if weights is not None:
        variant = weights_variant(weights, progress=progress)
        if variant is None:
            raise InvalidInputError(f"{weights} does not say which model it holds: give --model NAME")
        return variant
    if fallback is None:
        raise InvalidInputError("give --model NAME or --weights")
    return fallback


def choose_model(args: argparse.Namespace, fallback: str | None = None) -> str:
    """The model of a photo command: ``--model``, else the one the ``--weights`` hold, else ``fallback``
    (a gallery's model), else :data:`DEFAULT_PRETRAINED`."""
    return model_name_for(args.model, args.weights, fallback or DEFAULT_PRETRAINED, progress=not args.quiet)


def make_recognizer(args: argparse.Namespace, model: str | None = None,
                    threshold: float | None = None) -> FaceRecognizer:
    """A FaceRecognizer from the options of :func:`add_model_args`; says on stderr which weights it uses."""
    apply_threads(args)  # also with --aligned, where no detector is made
    device = resolve_device(args.device, option="--device")
    model = model or choose_model(args)
    detector = None if args.aligned else make_detector(args)
    rec = FaceRecognizer(
        model, args.weights, device=device, deploy=not args.train_form, detector=detector,
        threshold=threshold, flip=not args.no_flip, batch_size=args.batch_size, progress=not args.quiet,
        workers=args.workers,
    )
    if not args.quiet:
        print(f"model {rec.model_name}: {rec.weights_source}", file=sys.stderr)
    return rec


def input_files(inputs) -> list:
    """The image files of the command's inputs (files as given, the files of folders); none is an error."""
    files = expand_inputs(inputs)
    if not files:
        raise InvalidInputError("no input files found")
    return files


def check_threshold_option(args: argparse.Namespace) -> None:
    """Refuse a --threshold that is not a finite cosine score in (-1, 1] (NaN, -1, 2, ...)."""
    if getattr(args, "threshold", None) is not None:
        args.threshold = check_threshold(args.threshold, "--threshold")


def open_gallery(args: argparse.Namespace, must_exist: bool, threshold: float | None = None,
                 readonly: bool = False) -> FaceRecognizer:
    """A recognizer using the gallery of ``args.gallery`` (an old two-file gallery is imported first);
    without a gallery there, its in-memory gallery is empty (or, with ``must_exist``, an error).
    ``readonly``: the command only searches it (a read-only folder will do)."""
    apply_threads(args)
    try:
        gallery = Gallery.open(args.gallery, readonly=readonly)
    except GalleryNotFoundError:
        if must_exist:
            raise GalleryNotFoundError(f"no gallery in {shown(args.gallery)} (create one with `facelivt enroll`)") from None
        gallery = None
    try:
        model = choose_model(args, gallery.metadata.get("model") if gallery is not None else None)
        rec = make_recognizer(args, model=model, threshold=threshold)
        if gallery is not None:
            gallery.attach(rec)
    except BaseException:
        if gallery is not None:
            gallery.close()
        raise
    return rec


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
    for path, reason in failures[:SHOW]:
        print(f"  {path}: {reason}", file=sys.stderr)
    if len(failures) > SHOW:
        print(f"  ... and {len(failures) - SHOW} more", file=sys.stderr)
