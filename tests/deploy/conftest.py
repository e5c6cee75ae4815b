"""Fixtures of the export/benchmark tests: real crops and a model with non-trivial weights."""
from __future__ import annotations

import pytest
import torch

import facelivt


@pytest.fixture(scope="session")
def crops_dir(shared_dir):
    root = shared_dir / "data" / "celeba_subset_112"
    assert root.is_dir(), f"real aligned crops are needed: {root}"
    return root


@pytest.fixture(scope="session")
def check_crops(crops_dir):
    """16 real crops spread over the identities (held out from calibration)."""
    from facelivt.deploy.crops import load_crops

    return load_crops(crops_dir, 16, offset=1)


@pytest.fixture(scope="session")
def reference_deploy(shared_dir):
    """FaceLiVT-S deploy form with the reference checkpoint's random but non-trivial weights and BN statistics."""
    torch.manual_seed(0)
    return facelivt.load_model("facelivt_s", shared_dir / "reference" / "official_facelivt_s.pt", deploy=True)
