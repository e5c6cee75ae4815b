"""Fixtures of the service tests: a server per test module (see tests/serve_helpers.py) and real photos
of the shared data chosen by the reference detections."""
from __future__ import annotations

from pathlib import Path

import pytest

from serve_helpers import CELEBA, start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The service with its default limits (one per test module)."""
    s = start_server(tmp_path_factory.mktemp("serve"))
    yield s
    assert s.stop() == 0, s.log()[-3000:]


@pytest.fixture(scope="session")
def single_face_photos(mtcnn_reference) -> dict[str, list[Path]]:
    """identity -> its celeba photos in which the reference found exactly one face (at least 4 each)."""
    out: dict[str, list[Path]] = {}
    for key in sorted(mtcnn_reference):
        faces = mtcnn_reference[key]
        if len(faces) == 1 and faces[0]["box"][2] - faces[0]["box"][0] > 60:
            out.setdefault(key.split("/")[0], []).append(CELEBA / key)
    return {k: v for k, v in out.items() if len(v) >= 4}


@pytest.fixture(scope="session")
def multi_face_photo(mtcnn_reference) -> Path:
    """A celeba photo where the reference found three or more faces."""
    return CELEBA / next(k for k in sorted(mtcnn_reference) if len(mtcnn_reference[k]) >= 3)


@pytest.fixture(scope="session")
def no_face_photo(mtcnn_reference) -> Path:
    """A celeba photo where the reference found no face."""
    return CELEBA / next(k for k in sorted(mtcnn_reference) if len(mtcnn_reference[k]) == 0)

