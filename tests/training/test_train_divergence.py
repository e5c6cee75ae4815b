"""Training never keeps a bad state: a checkpoint whose weights, optimizer state or loss are not finite
is never written, the error names the last good checkpoint, and a run resumed from it works."""
from __future__ import annotations

import json
import math

import pytest
import torch

import facelivt
from facelivt.errors import FaceLiVTError
from facelivt.training import NonFiniteLossError, StepRunner, load_checkpoint_file, train
from facelivt.training.engine import DivergedError
from facelivt.training.schedule import MAX_SUGGESTED_LR

from train_helpers import TinyNet, last_state, nan_at_step, quick_config


def _facelivt(cfg, faces):
    return train(cfg, dataset=faces, model=facelivt.create_model("facelivt_s", embedding_size=16))


def _all_finite(state) -> bool:
    tensors = [v for v in state["model"].values() if v.is_floating_point()]
    tensors += [state["partial_fc"]["weight"], state["loss_history"]]
    tensors += [t for entry in state["optimizer"]["state"].values() for t in entry.values() if t.is_floating_point()]
    return all(torch.isfinite(t).all() for t in tensors)


@pytest.mark.slow
def test_lr_1e6_leaves_the_last_good_checkpoint_and_resuming_from_it_works(tmp_path, faces):
    out = tmp_path / "run"
    first = _facelivt(quick_config(out, epochs=1, checkpoint_every_steps=2), faces)  # 4 good steps
    assert first.stopped == "completed" and first.steps == 4

    blown = quick_config(out, epochs=2, checkpoint_every_steps=1)
    blown.optim.lr = 1e6  # one AdamW step moves every weight by ~lr: |w| ~ 1e6, whose activations overflow
    with pytest.raises(DivergedError) as info:
        _facelivt(blown, faces)
    message = str(info.value)
    assert isinstance(info.value, FaceLiVTError) and isinstance(info.value, NonFiniteLossError)
    assert "step 4 was not checkpointed" in message and "loss" in message
    assert str(out / "checkpoints" / "step-00000004") in message and "(e.g. optim.lr=0.0001)" in message  # a tenth of the good run's
    pointer, state = last_state(out)
    assert pointer["step"] == 4 and state["global_step"] == 4 and _all_finite(state)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["last.json", "step-00000004"]
    events = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert events[-1]["event"] == "error" and "step-00000004" in events[-1]["message"]

    resumed = _facelivt(quick_config(out, epochs=2), faces)  # a sane lr again: goes on from step 4
    assert resumed.stopped == "completed" and resumed.steps == 8
    assert resumed.loss_history[:4] == first.loss_history
    assert all(math.isfinite(v) for v in resumed.loss_history)
    assert _all_finite(last_state(out)[1])


@pytest.mark.slow
def test_lr_1e6_from_the_start_writes_no_checkpoint(tmp_path, faces):
    cfg = quick_config(tmp_path / "fresh", epochs=1, checkpoint_every_steps=1)
    cfg.optim.lr = 1e6
    with pytest.raises(DivergedError, match=r"step 0 was not checkpointed.*before any checkpoint was written.*optim\.lr=0\.01\)"):
        _facelivt(cfg, faces)
    assert not (tmp_path / "fresh" / "checkpoints" / "last.json").exists()
    assert not (tmp_path / "fresh" / "model.safetensors").exists()


def test_non_finite_optimizer_state_is_never_checkpointed(tmp_path, faces, monkeypatch):
    step = StepRunner.step

    def poisoned(self, micro_batches, step_index):
        stats = step(self, micro_batches, step_index)
        if step_index == 3:  # after the 4th update: one AdamW moment goes NaN, the weights are still fine
            moment = self.optimizer.state[next(iter(self.model.parameters()))]["exp_avg_sq"]
            moment[(0,) * moment.ndim] = float("nan")
        return stats

    monkeypatch.setattr(StepRunner, "step", poisoned)
    out = tmp_path / "opt"
    with pytest.raises(DivergedError, match="step 3 was not checkpointed: 1 of .* tensors hold NaN") as info:
        train(quick_config(out, epochs=2, checkpoint_every_steps=2), dataset=faces, model=TinyNet(dim=16))
    assert str(out / "checkpoints" / "step-00000002") in str(info.value)
    pointer, state = last_state(out)
    assert pointer["step"] == 2 and _all_finite(state)


def test_nan_loss_error_names_the_last_good_checkpoint(tmp_path, faces, monkeypatch):
    cfg = quick_config(tmp_path / "nan", epochs=2, checkpoint_every_steps=2)
    nan_at_step(monkeypatch, 5)
    with pytest.raises(NonFiniteLossError, match="loss became nan at optimiser step 5") as info:
        train(cfg, dataset=faces, model=TinyNet(dim=16))
    assert str(tmp_path / "nan" / "checkpoints" / "step-00000004") in str(info.value)
    assert load_checkpoint_file(tmp_path / "nan" / "checkpoints" / "step-00000004" / "rank0.pt")["global_step"] == 4


def _suggested_lr(message: str) -> float:
    return float(message.split("(e.g. optim.lr=", 1)[1].split(")", 1)[0])


def test_the_suggested_lr_is_sane_for_adamw_when_nothing_was_checkpointed(tmp_path, faces, monkeypatch):
    """At optim.lr=1e6 the advice was optim.lr=100000 (a tenth), which diverges again."""
    cfg = quick_config(tmp_path / "huge", epochs=1)
    cfg.optim.lr = 1e6
    nan_at_step(monkeypatch, 0)
    with pytest.raises(NonFiniteLossError, match="before any checkpoint was written") as info:
        train(cfg, dataset=faces, model=TinyNet(dim=16))
    assert _suggested_lr(str(info.value)) == MAX_SUGGESTED_LR == 1e-2


def test_the_suggested_lr_is_a_tenth_of_the_lr_that_wrote_the_last_good_checkpoint(tmp_path, faces, monkeypatch):
    out = tmp_path / "run"
    train(quick_config(out, epochs=1, checkpoint_every_steps=2), dataset=faces, model=TinyNet(dim=16))  # lr 1e-3
    raised = quick_config(out, epochs=2, checkpoint_every_steps=0)
    raised.optim.lr = 0.5
    nan_at_step(monkeypatch, 4)  # the first step after the checkpoint of step 4
    with pytest.raises(NonFiniteLossError, match="step-00000004") as info:
        train(raised, dataset=faces, model=TinyNet(dim=16))
    assert _suggested_lr(str(info.value)) == pytest.approx(1e-4)  # not 0.05: 0.5 is what diverged

    same = quick_config(tmp_path / "same", epochs=2, checkpoint_every_steps=2)
    same.optim.lr = 5e-3
    nan_at_step(monkeypatch, 5)  # this run wrote step 4 at 5e-3
    with pytest.raises(NonFiniteLossError, match="step-00000004") as info:
        train(same, dataset=faces, model=TinyNet(dim=16))
    assert _suggested_lr(str(info.value)) == pytest.approx(5e-4)
