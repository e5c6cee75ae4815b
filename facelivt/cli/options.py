"""The options every sub-command spells the same way (argparse only, so a light command such as
``info`` or ``pack`` pays for nothing else; the model and detector options are :mod:`facelivt.cli.common`'s).

One spelling per concept:

- ``--quiet``: no progress output (never ``--no-progress``);
- ``--json``: the command's report as JSON on stdout (the same facts as its text);
- ``--device``: default ``auto`` (see :func:`facelivt.devices.resolve_device`);
- ``--batch-size``: items per forward pass (never ``--batch``);
- ``--out``: a FILE for a command that writes one file, a folder (DIR) for one that writes several;
  the metavar and the help say which.

``tests/cli/test_cli_rules.py`` walks every parser and checks these rules.
"""
from __future__ import annotations

import argparse

DEVICE_CHOICES = "auto (default: a usable CUDA GPU, else the CPU), cpu, cuda, cuda:N or mps"


def add_quiet(p: argparse.ArgumentParser, what: str = "no progress bar") -> None:
    """``--quiet``: no progress output."""
    p.add_argument("--quiet", action="store_true", help=what)


def add_json(p: argparse.ArgumentParser, what: str = "print the report as JSON on stdout") -> None:
    """``--json``: the command's report as JSON on stdout."""
    p.add_argument("--json", action="store_true", help=what)


def add_device(p: argparse.ArgumentParser, what: str = "device") -> None:
    """``--device``, default ``auto``."""
    p.add_argument("--device", default="auto", help=f"{what}: {DEVICE_CHOICES}")


def add_batch_size(p: argparse.ArgumentParser, default: int = 64, what: str = "crops per forward pass") -> None:
    """``--batch-size N``."""
    p.add_argument("--batch-size", type=int, default=default, metavar="N", help=f"{what} (default {default})")


def add_out_file(p: argparse.ArgumentParser, what: str, metavar: str = "FILE", **kwargs) -> None:
    """``--out FILE``: the one file the command writes (``what`` completes "output file: ...")."""
    p.add_argument("--out", metavar=metavar, help=f"output file: {what}", **kwargs)


def add_out_dir(p: argparse.ArgumentParser, what: str, metavar: str = "DIR", **kwargs) -> None:
    """``--out DIR``: the folder the command writes its files into."""
    p.add_argument("--out", metavar=metavar, help=f"output folder: {what}", **kwargs)
