from __future__ import annotations

import pytest

from facelivt.data import SyntheticIdentities


@pytest.fixture(scope="module")
def faces():
    """32 synthetic faces (8 identities x 4), decoded once per test module."""
    ds = SyntheticIdentities(8, 4, seed=1)
    _ = [ds[i] for i in range(len(ds))]  # warm the identity cache
    return ds
