"""Atomic checkpoint writes, last/best pointers, RNG states through weights_only loading."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from facelivt.training import CheckpointManager, atomic_torch_save, load_checkpoint_file, rng_state, set_rng_state
from facelivt.training import checkpoint as ckpt_mod


def test_atomic_save_keeps_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "x.pt"
    atomic_torch_save({"a": torch.ones(3)}, path)

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt_mod.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        atomic_torch_save({"a": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.ones(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.pt"]  # no temporary left behind


def test_rng_state_round_trip_with_weights_only(tmp_path):
    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    np.random.normal()  # leave a cached gaussian in numpy's state
    state = rng_state()
    atomic_torch_save({"rng": state}, tmp_path / "r.pt")
    expected = (torch.rand(4), np.random.rand(4), [random.random() for _ in range(4)], np.random.normal())
    loaded = torch.load(tmp_path / "r.pt", weights_only=True)["rng"]
    torch.manual_seed(99)
    np.random.seed(99)
    random.seed(99)
    set_rng_state(loaded)
    again = (torch.rand(4), np.random.rand(4), [random.random() for _ in range(4)], np.random.normal())
    assert torch.equal(expected[0], again[0])
    assert np.array_equal(expected[1], again[1]) and expected[2] == again[2] and expected[3] == again[3]


def _state(v: float) -> dict:
    return {"model": {"w": torch.full((2,), v)}, "step": int(v)}


def test_manager_pointers_and_pruning(tmp_path):
    m = CheckpointManager(tmp_path)
    assert m.resolve() is None
    m.save(_state(1), 1)
    m.save(_state(2), 2)
    m.mark_best(2, "heldout", 0.7)
    m.save(_state(3), 3)
    assert sorted(p.name for p in tmp_path.glob("step-*")) == ["step-00000002", "step-00000003"]  # 1 pruned, 2 is best
    assert m.read_pointer("last")["step"] == 3
    best = m.read_pointer("best")
    assert best["step"] == 2 and best["metric"] == "heldout" and best["value"] == 0.7
    assert m.load(m.resolve())["step"] == 3
    assert m.load(m.resolve(name="best"))["step"] == 2
    assert m.resolve(tmp_path) == tmp_path / "step-00000003"  # a checkpoints root
    assert m.resolve(tmp_path / "step-00000002") == tmp_path / "step-00000002"  # a step folder
    m.save(_state(4), 4)
    assert sorted(p.name for p in tmp_path.glob("step-*")) == ["step-00000002", "step-00000004"]


def test_half_written_checkpoint_is_ignored(tmp_path):
    m = CheckpointManager(tmp_path)
    m.save(_state(5), 5)
    # a crash while the next checkpoint was written: its folder exists, the pointer was not moved
    (tmp_path / "step-00000006").mkdir()
    (tmp_path / "step-00000006" / ".rank0.pt.tmp123").write_bytes(b"partial")
    assert m.resolve() == tmp_path / "step-00000005"
    assert m.load(m.resolve())["step"] == 5


def test_world_size_mismatch_and_foreign_files(tmp_path):
    CheckpointManager(tmp_path, rank=0, world_size=2).save(_state(1), 1)
    with pytest.raises(ValueError, match="2 process"):
        CheckpointManager(tmp_path, rank=0, world_size=1).load(tmp_path / "step-00000001")
    torch.save({"x": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a facelivt training checkpoint"):
        load_checkpoint_file(tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="cannot read checkpoint"):
        load_checkpoint_file(tmp_path / "junk.pt")
    with pytest.raises(FileNotFoundError):
        load_checkpoint_file(tmp_path / "missing.pt")
    (tmp_path / "last.json").write_text("{not json")
    with pytest.raises(ValueError, match="unreadable"):
        CheckpointManager(tmp_path).resolve()
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        CheckpointManager(tmp_path).resolve(tmp_path / "nowhere")


def test_mark_best_needs_a_saved_step(tmp_path):
    with pytest.raises(FileNotFoundError, match="was not saved"):
        CheckpointManager(tmp_path).mark_best(7, "heldout", 0.5)


def test_checkpoint_refuses_arbitrary_pickles(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    import pickle

    with open(tmp_path / "evil.pt", "wb") as f:
        torch.save({"format": "facelivt-train-checkpoint", "x": Evil()}, f, pickle_module=pickle)
    with pytest.raises(ValueError, match="refusing to load .* as unsafe"):
        load_checkpoint_file(tmp_path / "evil.pt")
