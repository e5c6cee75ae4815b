from __future__ import annotations

import pytest
from model_helpers import randomize_model


@pytest.fixture
def randomized():
    return randomize_model
