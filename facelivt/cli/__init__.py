"""The ``facelivt`` command line: a thin layer over the library.

Each sub-command lives in its own module of this package and exposes
``register(subparsers)``, which adds its parser and sets ``func`` (a callable
taking the parsed ``argparse.Namespace`` and returning an exit code).

A :class:`~facelivt.errors.FaceLiVTError` (the user's input, files or environment) or an
``OSError`` becomes one line ``facelivt CMD: error: ...`` and exit code 2; any other exception is
a bug and keeps its traceback. The library's warnings (the ``facelivt`` logger) are written to
stderr as ``warning: ...``.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

from facelivt.errors import FaceLiVTError
from facelivt.runtime import tune_allocator


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="facelivt",
        description="FaceLiVT face recognition: models, training, evaluation, export, inference.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
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
        print(f"facelivt {args.command}: error: {_message(exc)}", file=sys.stderr)
        return 2


def _message(exc: BaseException) -> str:
    if isinstance(exc, OSError) and not isinstance(exc, FaceLiVTError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}{where}"
    return str(exc)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
