"""The optional dependencies and the extra that installs each (``pip install "facelivt[EXTRA]"``).

``pip install facelivt`` (and ``bash scripts/install.sh``) gives the runtime: models, weights, the
detector, ``verify`` / ``identify`` / ``enroll`` / ``embed`` / ``eval`` / ``train`` in PyTorch. What
needs more comes from an extra, and :func:`require` imports it or says which extra to install.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from facelivt.errors import UnavailableError

#: optional module -> the extra of pyproject.toml that installs it
EXTRAS = {
    "onnx": "export",
    "onnxruntime": "export",
    "onnxscript": "export",
    "coremltools": "coreml",
    "faiss": "gallery",
    "torch.utils.tensorboard": "train",
    "fastapi": "serve",
    "uvicorn": "serve",
    "uvicorn.supervisors": "serve",
    "python_multipart": "serve",
    "prometheus_client": "serve",
}


class MissingExtraError(UnavailableError, ImportError):
    """An optional package is not installed; the message names the extra that installs it. (Also an
    ``ImportError``, so code that catches that keeps working.)"""


def install_hint(module: str) -> str:
    """``pip install "facelivt[EXTRA]"`` for ``module`` (see :data:`EXTRAS`)."""
    return f'pip install "facelivt[{EXTRAS[module]}]" (or: bash scripts/install.sh {EXTRAS[module]})'


def require(module: str, purpose: str) -> ModuleType:
    """Import the optional ``module`` (a key of :data:`EXTRAS`) for ``purpose`` (e.g. "ONNX export"), or
    raise :class:`MissingExtraError` naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(f"{purpose} needs {module.split('.')[0]}, which is not installed here "
                                f"({exc}); install it with: {install_hint(module)}") from exc
