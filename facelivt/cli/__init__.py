"""The ``facelivt`` command line: a thin layer over the library.

Each sub-command lives in its own module of this package, listed in :data:`COMMANDS`, and exposes
``register(subparsers)``, which adds its parser and sets ``func`` (a callable
taking the parsed ``argparse.Namespace`` and returning an exit code). Only the module of the
command being run is imported.

A :class:`~facelivt.errors.FaceLiVTError` (the user's input, files or environment) or an
``OSError`` becomes one line ``facelivt CMD: error: ...`` and exit code 2; any other exception is
a bug and keeps its traceback. The library's warnings (the ``facelivt`` logger) are written to
stderr as ``warning: ...``.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from facelivt.errors import FaceLiVTError
from facelivt.runtime import tune_allocator


# Every sub-command: its module in this package and its one-line help. ``facelivt --help`` lists them
# without importing any; a command imports only its own module (and what that module needs).
COMMANDS = {
    "align": ("align", "detect and align faces of an image folder into 112x112 crops"),
    "bench": ("bench", "latency tables of FaceLiVT against EdgeFace-XS / MobileFaceNet, or of your own weights / ONNX file"),
    "calibrate": ("calibrate", "choose the verification threshold of some weights and record it in their model card"),
    "cluster": ("cluster", "group the faces of images or folders by identity, into folders or a CSV"),
    "convert": ("convert", "convert a released .pt checkpoint to this project's safetensors"),
    "download": ("download", "fetch pretrained or remote weights into the cache (for offline machines: --out DIR)"),
    "embed": ("embed", "embed the faces of images or folders (streamed to .npy + CSV, or one safetensors file)"),
    "enroll": ("enroll", "add identities to a gallery"),
    "eval": ("eval", "evaluate a model on .bin verification sets (LFW, CFP-FP, AgeDB-30, ...) and IJB-B/C"),
    "export": ("export", "export a model (deploy form) to ONNX, TorchScript or Core ML and check it on face crops"),
    "gallery": ("gallery", "look after a gallery folder: list, show, rename, remove, export, check"),
    "identify": ("identify", "find the closest gallery identities for the face of each image"),
    "info": ("info", "parameters and MACs of model variants (train and deploy form)"),
    "make-bin": ("make_bin", "build a .bin verification set from root/<identity>/<image> and an LFW-style pairs list"),
    "models": ("models", "the pretrained models: published accuracy, licence, cache state"),
    "pack": ("pack", "pack an image folder (root/<identity>/<image>) into insightface RecordIO"),
    "quickstart": ("quickstart", "the whole FaceLiVT story end to end in minutes on a CPU, with a report"),
    "serve": ("serve", "the face-recognition HTTP service (API, web page) and its API keys"),
    "train": ("train", "train a model from a YAML config (key=value overrides; resumes from OUTPUT/checkpoints)"),
    "verify": ("verify", "compare the faces of two images"),
}


def command_module(name: str):
    """The module of sub-command ``name`` (imported now), which has ``register(subparsers)``."""
    return importlib.import_module(f"{__name__}.{COMMANDS[name][0]}")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``facelivt`` parser. ``command``: the one sub-command whose module is imported and whose full
    parser is built (the others are listed by name and help only); None builds all of them."""
    parser = argparse.ArgumentParser(
        prog="facelivt",
        description="FaceLiVT face recognition: models, training, evaluation, export, inference.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (_, summary) in COMMANDS.items():
        if command is None or name == command:
            command_module(name).register(sub)
        else:
            sub.add_parser(name, help=summary)
    return parser


def _chosen_command(argv: list[str]) -> str | None:
    """The sub-command named on the command line (the first word that is not an option), if known."""
    for word in argv:
        if not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


class _StderrHandler(logging.StreamHandler):
    """Writes to the ``sys.stderr`` of the moment (which tests and callers may replace)."""

    def __init__(self) -> None:
        super().__init__()
        self.setLevel(logging.WARNING)
        self.setFormatter(_LevelFormatter())

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ assigns it
        pass


class _LevelFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if record.levelno >= logging.ERROR:
            return f"error: {text}"
        return f"warning: {text}" if record.levelno >= logging.WARNING else text


def show_library_messages() -> None:
    """Send the ``facelivt`` logger's warnings to stderr (once per process)."""
    logger = logging.getLogger("facelivt")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        logger.addHandler(_StderrHandler())


def _error_line(command: str | None, message: str) -> None:
    """``facelivt CMD: error: MESSAGE`` on stderr in one write, newline included, so that the lines of
    several processes sharing the stream (torchrun's ranks) never run into each other."""
    sys.stderr.write(f"facelivt {command}: error: {message}\n")
    sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        parser = build_parser(_chosen_command(argv) or "")
    except FaceLiVTError as exc:  # a command whose optional extra is not installed (MissingExtraError)
        _error_line(_chosen_command(argv), str(exc))
        return 2
    args = parser.parse_args(argv)
    # Reuse freed activation memory instead of page-faulting fresh memory on every pass (glibc;
    # FACELIVT_MALLOC=default opts out). See facelivt/runtime.py.
    tune_allocator()
    show_library_messages()
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (FaceLiVTError, OSError) as exc:
        # Errors the user caused are written for people: show them without a traceback. OSError
        # covers unreadable inputs and unwritable outputs (disk full, no permission, a folder in
        # the way). Anything else is a bug: its traceback is shown.
        _error_line(args.command, _message(exc))
        return 2


def _message(exc: BaseException) -> str:
    if isinstance(exc, OSError) and not isinstance(exc, FaceLiVTError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}{where}"
    return str(exc)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
