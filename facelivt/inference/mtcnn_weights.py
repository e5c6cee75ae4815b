"""Locate the MTCNN weights (P-Net, R-Net, O-Net state_dicts).

The MIT-licensed weights ship inside the PyPI package ``facenet-pytorch==2.6.0`` as
``facenet_pytorch/data/{pnet,rnet,onet}.pt``. That package is never imported here (it pins an
old torch and imports torchvision); only its data folder is located. Lookup order:

1. an explicit folder passed by the caller;
2. the environment variable ``FACELIVT_MTCNN_WEIGHTS`` (a folder holding the three files);
3. the installed ``facenet_pytorch`` package's ``data`` folder, found with
   :func:`importlib.util.find_spec`, which for a top-level package does not run its ``__init__``.

Nothing is ever downloaded.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from facelivt.errors import InputNotFoundError

ENV_VAR = "FACELIVT_MTCNN_WEIGHTS"
NET_NAMES = ("pnet", "rnet", "onet")
INSTALL_HINT = "pip install --no-deps facenet-pytorch==2.6.0"


class MTCNNWeightsNotFoundError(InputNotFoundError):
    """No folder with ``pnet.pt``, ``rnet.pt`` and ``onet.pt`` could be found."""


def _missing(folder: Path) -> list[str]:
    return [f"{n}.pt" for n in NET_NAMES if not (folder / f"{n}.pt").is_file()]


def installed_weights_dir() -> Path | None:
    """The ``data`` folder of an installed ``facenet_pytorch`` package (not imported), or None."""
    try:
        spec = importlib.util.find_spec("facenet_pytorch")
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).resolve().parent / "data"


def locate_mtcnn_weights(folder: str | os.PathLike | None = None) -> Path:
    """Return the folder holding ``pnet.pt``, ``rnet.pt`` and ``onet.pt``.

    An explicit ``folder`` or the ``FACELIVT_MTCNN_WEIGHTS`` variable must be complete (an error
    names what is missing); otherwise the installed facenet-pytorch data folder is used.
    """
    for source, value in (("argument", folder), (f"${ENV_VAR}", os.environ.get(ENV_VAR) or None)):
        if value is None:
            continue
        path = Path(value).expanduser()
        if not path.is_dir():
            raise MTCNNWeightsNotFoundError(f"MTCNN weights folder given by {source} does not exist: {path}")
        missing = _missing(path)
        if missing:
            raise MTCNNWeightsNotFoundError(
                f"MTCNN weights folder given by {source} ({path}) lacks {', '.join(missing)}"
            )
        return path
    installed = installed_weights_dir()
    if installed is not None and installed.is_dir() and not _missing(installed):
        return installed
    raise MTCNNWeightsNotFoundError(
        "MTCNN weights not found: install them with "
        f"`{INSTALL_HINT}` (the package is not imported, only its weights are read), "
        f"or set {ENV_VAR} to a folder holding pnet.pt, rnet.pt and onet.pt"
    )
