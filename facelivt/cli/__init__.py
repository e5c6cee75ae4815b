"""The ``facelivt`` command line: a thin layer over the library.

Each sub-command lives in its own module of this package and exposes
``register(subparsers)``, which adds its parser and sets ``func`` (a callable
taking the parsed ``argparse.Namespace`` and returning an exit code).
"""
from __future__ import annotations

import argparse
import importlib
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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Reuse freed activation memory instead of page-faulting fresh memory on every pass (glibc;
    # FACELIVT_MALLOC=default opts out). See facelivt/runtime.py.
    tune_allocator()
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (FaceLiVTError, OSError, ValueError, KeyError, RuntimeError) as exc:
        # Library errors are written for people: show them without a traceback. OSError covers
        # unreadable inputs and unwritable outputs (disk full, no permission, a folder in the way).
        print(f"facelivt {args.command}: error: {_message(exc)}", file=sys.stderr)
        return 2


def _message(exc: BaseException) -> str:
    if isinstance(exc, OSError) and not isinstance(exc, FaceLiVTError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}{where}"
    return str(exc)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
