"""Fixtures of the export/benchmark tests: real crops, a model with non-trivial weights, and a trained model with
verification pairs of identities it never saw."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

import facelivt
from facelivt.data.folder import load_image, scan_image_folder
from facelivt.data.loader import split_identities
from facelivt.data.transforms import to_tensor_batch
from facelivt.training.heldout import build_pairs
from model_helpers import TRAINED_FACELIVT_S, heldout_identities


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


TRAINED_WEIGHTS = TRAINED_FACELIVT_S
HELDOUT_PAIRS = 400  # 200 same-identity and 200 different-identity pairs


@dataclass(frozen=True)
class HeldoutFaces:
    """Verification pairs of the identities the trained weights never saw, and calibration crops of others."""

    images: torch.Tensor  # the distinct images of the pairs, normalised (N, 3, 112, 112)
    rows: np.ndarray  # row in ``images`` of each pair member: pair k is rows 2k, 2k+1
    issame: np.ndarray
    identities: frozenset  # held-out identity folders
    calibration: torch.Tensor  # 32 crops of training identities
    calibration_identities: frozenset


@pytest.fixture(scope="session")
def trained_deploy():
    """FaceLiVT-S trained on the CelebA subset less 20 % of its identities (weights/README.md), deploy form."""
    return facelivt.load_model("facelivt_s", TRAINED_WEIGHTS, deploy=True)


@pytest.fixture(scope="session")
def trained_heldout_identities() -> frozenset:
    """The identity folders held out of the trained weights' training, as their metadata records them."""
    return heldout_identities(TRAINED_WEIGHTS)


@pytest.fixture(scope="session")
def heldout_faces(crops_dir):
    classes, samples = scan_image_folder(crops_dir)
    labels = np.array([label for _, label in samples])
    train_idx, held_idx = split_identities(labels, 0.2, 0)  # the split the weights were trained with
    pairs, issame = build_pairs(labels[held_idx], HELDOUT_PAIRS, seed=0)
    used, rows = np.unique(pairs.reshape(-1), return_inverse=True)
    calib = train_idx[:: len(train_idx) // 32][:32]

    def load(indices):
        return to_tensor_batch(np.stack([load_image(samples[i][0]) for i in indices]))

    return HeldoutFaces(
        load(held_idx[used]), rows.reshape(-1), issame, frozenset(classes[labels[i]] for i in held_idx[used]),
        load(calib), frozenset(classes[labels[i]] for i in calib),
    )
