"""A planted training checkpoint (a pickle whose __reduce__ runs code) is refused as unsafe, never run.

Before, resuming from it printed torch's 'Weights only load failed ... Re-running torch.load with
weights_only set to False will likely succeed' advice, i.e. a hint to run the planted code.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from disk_helpers import assert_clean_failure, run_cli

from facelivt.errors import FaceLiVTError
from facelivt.training import load_checkpoint_file

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "synthetic_tiny.yaml"


class Planted:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _plant(run: Path, marker: Path, legacy: bool = False) -> Path:
    """A run folder whose last checkpoint is a rank0.pt carrying a Planted object."""
    folder = run / "checkpoints" / "step-00000002"
    folder.mkdir(parents=True)
    payload = {"format": "facelivt-train-checkpoint", "version": 1, "rank": 0, "world_size": 1, "model": Planted(marker)}
    torch.save(payload, folder / "rank0.pt", _use_new_zipfile_serialization=not legacy)
    (run / "checkpoints" / "last.json").write_text(json.dumps({"step": 2, "dir": folder.name, "world_size": 1}))
    return folder / "rank0.pt"


def _expected(path: Path) -> str:
    return (f"refusing to load {path} as unsafe: it is not a plain-tensor checkpoint "
            f"(it asks to run code: {os.system.__module__}.system); facelivt never unpickles arbitrary objects")


def test_resume_from_a_planted_checkpoint_is_refused(tmp_path):
    marker = tmp_path / "ran"
    planted = _plant(tmp_path / "run", marker)
    proc = run_cli("train", str(CONFIG), f"output={tmp_path / 'run'}", timeout=300)
    assert_clean_failure(proc)
    assert f"facelivt train: error: {_expected(planted)}" in proc.stderr, proc.stderr
    assert "weights_only" not in proc.stderr
    assert not marker.exists()


@pytest.mark.parametrize("legacy", [False, True])
def test_load_checkpoint_file_refuses_both_torch_formats(tmp_path, legacy):
    marker = tmp_path / "ran"
    planted = _plant(tmp_path / "run", marker, legacy=legacy)
    with pytest.raises(FaceLiVTError) as err:
        load_checkpoint_file(planted)
    assert str(err.value) == _expected(planted) and isinstance(err.value, ValueError)
    assert not marker.exists()
