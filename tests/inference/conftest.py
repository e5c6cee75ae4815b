"""Shared fixtures for the inference tests: data paths, the MTCNN detector, the reference detections."""
from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
DATA = SHARED / "data"
CELEBA = DATA / "celeba_subset"


@pytest.fixture(autouse=True)
def _inference_on_one_thread(one_torch_thread):
    """Every inference test runs on one torch thread (see tests/conftest.py)."""


@pytest.fixture(scope="session")
def reference(mtcnn_reference) -> dict:
    """Reference MTCNN detections on every celeba_subset photo."""
    return mtcnn_reference


@pytest.fixture(scope="session")
def detector():
    from facelivt.inference import FaceDetector

    return FaceDetector()


@pytest.fixture(scope="session")
def one_face_photo(reference) -> Path:
    """A celeba photo with exactly one large face."""
    for key in sorted(reference):
        faces = reference[key]
        if len(faces) == 1 and faces[0]["box"][2] - faces[0]["box"][0] > 80:
            return CELEBA / key
    raise AssertionError("no single-face photo in the reference")


@pytest.fixture(scope="session")
def multi_face_photo(reference) -> Path:
    """A celeba photo where the reference found three or more faces."""
    key = next(k for k in sorted(reference) if len(reference[k]) >= 3)
    return CELEBA / key


@pytest.fixture(scope="session")
def no_face_photo(reference) -> Path:
    """A celeba photo where the reference found no face."""
    key = next(k for k in sorted(reference) if len(reference[k]) == 0)
    return CELEBA / key
