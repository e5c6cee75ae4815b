"""Shared fixtures of the evaluation tests: the ../shared data folder and a tiny embedding model."""
from __future__ import annotations

from pathlib import Path

import pytest
from model_helpers import TinyEmbedder

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"


@pytest.fixture
def tiny_model() -> TinyEmbedder:
    return TinyEmbedder()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    d = SHARED / "data"
    assert d.is_dir(), f"shared data folder missing: {d}"
    return d
