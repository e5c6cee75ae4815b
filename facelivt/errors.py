"""The errors a user can cause. Every one derives from :class:`FaceLiVTError`.

The command line turns a ``FaceLiVTError`` (and an ``OSError`` from reading or writing a file) into
one line on stderr and exit code 2; anything else is a bug and keeps its traceback.
Subclasses also derive from the built-in exception they refine (``ValueError``,
``FileNotFoundError``, ...), so code that caught those keeps working.
"""
from __future__ import annotations

import os
from pathlib import Path


class FaceLiVTError(Exception):
    """Base class of every error caused by the user's input, files or environment."""


class InvalidInputError(FaceLiVTError, ValueError):
    """A value the user gave is not valid: an argument, a command-line option, a config entry, or
    the content of an input file (a malformed list, an empty set, a corrupt record)."""


class InputNotFoundError(FaceLiVTError, FileNotFoundError):
    """An input the user named (a file or folder) does not exist."""


class UnknownNameError(FaceLiVTError, KeyError):
    """A name the user gave (an identity, a record key) is not where it was looked up."""

    def __str__(self) -> str:  # KeyError's own quotes the message: "'identity ...'"
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class UnavailableError(FaceLiVTError, RuntimeError):
    """Something the user asked for is not available here: an optional package, a device, a
    backend, or the launcher environment of a multi-process run."""


class OutputWriteError(FaceLiVTError, OSError):
    """An output file could not be written (disk full, no permission, a folder in the way, ...).

    Raised by :mod:`facelivt.files`; the existing file of that name, if any, is unchanged and no
    partial file is left behind.
    """

    def __init__(self, path, cause: OSError):
        self.path = str(path)
        self.cause = cause
        reason = cause.strerror or str(cause)
        super().__init__(cause.errno, f"cannot write {self.path}: {reason}")

    def __str__(self) -> str:  # OSError's default adds "[Errno N]"
        return self.args[1]


def check_input_file(path: str | os.PathLike, what: str) -> Path:
    """``path`` when it names a file to read; a folder there raises :class:`InvalidInputError` ("PATH is a
    folder, not a WHAT"), nothing there :class:`InputNotFoundError` ("WHAT not found: PATH")."""
    path = Path(path)
    if path.is_dir():
        raise InvalidInputError(f"{path} is a folder, not a {what}")
    if not path.is_file():
        raise InputNotFoundError(f"{what} not found: {path}")
    return path
