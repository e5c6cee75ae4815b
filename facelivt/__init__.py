"""facelivt: FaceLiVT face recognition (ICIP 2025) as an installable library and command-line tool.

The public names below are loaded on first use (PEP 562), so that ``import facelivt`` and the
command line's ``--help`` cost nothing before a model is needed: ``_EXPORTS`` maps each name to the
module that owns it (``scripts/check_imports.py`` reads this table as imports of those modules).
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "convert_released_state_dict": "facelivt.models",
    "create_model": "facelivt.models",
    "list_models": "facelivt.models",
    "load_model": "facelivt.models",
    "reparameterize_model": "facelivt.models",
    "save_weights": "facelivt.models",
    "ModelCard": "facelivt.models.card",
    "read_card": "facelivt.models.card",
    "optimize_for_inference": "facelivt.deploy.optimize",
    # the Python API of photos (README "Python API"): deepface-like functions, insightface-like object
    "verify": "facelivt.inference.api",
    "represent": "facelivt.inference.api",
    "find": "facelivt.inference.api",
    "FaceAnalysis": "facelivt.inference.api",
    "FaceRecognizer": "facelivt.inference.recognizer",
    "Gallery": "facelivt.inference.gallery",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str):
    owner = _EXPORTS.get(name)
    if owner is None:
        raise AttributeError(f"module 'facelivt' has no attribute {name!r}")
    value = getattr(importlib.import_module(owner), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
