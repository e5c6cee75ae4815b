from __future__ import annotations

import pytest
from model_helpers import TinyEmbedder, randomize_model


@pytest.fixture
def randomized():
    return randomize_model


@pytest.fixture
def tiny_model() -> TinyEmbedder:
    return TinyEmbedder()
