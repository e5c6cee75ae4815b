"""Fixtures of the command-line tests."""
from __future__ import annotations

from pathlib import Path

import pytest

from facelivt import create_model
from facelivt.models import save_weights


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """FaceLiVT-S weights at their random initialisation (eval mode), one file per test module: what the
    photo commands need to run, not to recognise anyone."""
    path = tmp_path_factory.mktemp("w") / "facelivt_s.safetensors"
    save_weights(create_model("facelivt_s").eval(), path)
    return path
