"""``facelivt.deploy.crops``: the crops of parity checks and int8 calibration, from a folder of real
aligned crops or, with no folder, the bundled synthetic faces (nothing outside the package is read)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from facelivt.deploy.crops import load_crops, synthetic_crops
from facelivt.errors import InputNotFoundError, InvalidInputError
from facelivt.models.preprocess import DEFAULT_PREPROCESS


def test_no_folder_gives_the_bundled_synthetic_faces(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing beside the working folder is looked for
    batch = load_crops(None, 6)
    assert batch.shape == (6, 3, 112, 112) and batch.dtype == torch.float32
    assert torch.equal(batch, load_crops(None, 6))  # the same pixels every time
    assert torch.equal(batch, DEFAULT_PREPROCESS.batch(synthetic_crops(6)))
    other = load_crops(None, 6, offset=1)  # another view of each identity: a disjoint set
    assert not any(torch.equal(a, b) for a in batch for b in other)
    faces = synthetic_crops(6)
    assert faces.shape == (6, 112, 112, 3) and faces.dtype == np.uint8 and faces.std() > 20  # not blank images


def test_bad_requests_are_explained(tmp_path, crops_dir):
    with pytest.raises(InvalidInputError, match="offset must be in"):
        load_crops(None, 4, offset=2)
    with pytest.raises(InvalidInputError, match="count must be positive"):
        load_crops(None, 0)
    with pytest.raises(InputNotFoundError, match="crops folder not found"):
        load_crops(tmp_path / "missing", 4)
    assert load_crops(crops_dir, 4).shape == (4, 3, 112, 112)  # a real folder as before
