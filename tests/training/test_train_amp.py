"""Mixed precision with loss scaling (train.amp=fp16), the path CUDA runs take, exercised on the CPU:
float16 autocast, a GradScaler that skips an overflowing step instead of stopping the run, and a
resumed run that continues with the saved scale."""
from __future__ import annotations

import warnings

import pytest
import torch

from facelivt.cpu import machine_defaults
from facelivt.precision import resolve_amp
from facelivt.training import NonFiniteLossError, train

from train_helpers import TinyNet, last_state, nan_at_step, overflow_at_call, quick_config, state_equal

INIT_SCALE = 2.0**16  # torch.amp.GradScaler's default


def fp16_config(output):
    cfg = quick_config(output, epochs=2)  # 32 images, batch 8: 8 steps
    cfg.train.amp = "fp16"
    cfg.train.checkpoint_every_steps = 2
    return cfg


def quiet_train(cfg, **kw):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="train.amp=fp16 on a CPU")
        return train(cfg, **kw)


def test_amp_modes_resolve_per_device():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    # auto on a CPU is bf16 where it has native bf16 (tests/test_cpu.py covers the rule)
    assert resolve_amp("auto", cpu) is (torch.bfloat16 if machine_defaults().amp == "bf16" else None)
    assert resolve_amp("none", cuda) is None
    assert resolve_amp("bf16", cpu) is torch.bfloat16
    with pytest.warns(UserWarning, match="emulated"):
        assert resolve_amp("fp16", cpu) is torch.float16
    assert resolve_amp("fp16", cuda) is torch.float16
    with pytest.raises(ValueError, match="runs on CUDA"):
        resolve_amp("fp16", torch.device("meta"))
    with pytest.raises(ValueError, match="auto, none, bf16 or fp16"):
        resolve_amp("fp8", cpu)


def test_fp16_overflow_is_skipped_by_the_scaler_not_fatal(tmp_path, faces):
    out = tmp_path / "skip"
    model = TinyNet(dim=16)
    overflow_at_call(model, 4)  # optimiser step 3
    result = quiet_train(fp16_config(out), dataset=faces, model=model)
    assert result.stopped == "completed" and result.steps == 8
    assert all(torch.isfinite(torch.tensor(result.loss_history)))
    assert all(torch.isfinite(p).all() and p.dtype == torch.float32 for p in model.parameters())
    _, state = last_state(out)
    # CosFace's s=64 overflows float16 gradients at the initial scale too (as on a GPU, the first
    # steps find the scale): every overflow halved it and skipped its step, none stopped the run
    assert state["scaler"]["scale"] <= INIT_SCALE / 2
    # without a scaler the same overflow stops the run before the update (test_train_loop.py)
    fp32 = quick_config(tmp_path / "fp32", epochs=2)
    model32 = TinyNet(dim=16)
    overflow_at_call(model32, 4)
    with pytest.raises(NonFiniteLossError, match="gradients became non-finite"):
        train(fp32, dataset=faces, model=model32)


def test_fp16_skipped_step_leaves_the_weights_alone(tmp_path, faces, monkeypatch):
    """Steps 0-2 then an overflowing step 3: the weights after step 3 equal those after step 2."""
    a, b = TinyNet(dim=16), TinyNet(dim=16)
    overflow_at_call(b, 4)
    cfg_a, cfg_b = fp16_config(tmp_path / "a"), fp16_config(tmp_path / "b")
    # run a stops before step 3 (checkpoint after step 2); run b does step 3 (skipped) and stops before step 4
    for cfg, model, nan_step in ((cfg_a, a, 3), (cfg_b, b, 4)):
        nan_at_step(monkeypatch, nan_step)
        cfg.train.checkpoint_every_steps = 1
        with pytest.raises(NonFiniteLossError):
            quiet_train(cfg, dataset=faces, model=model)
    last_a, state_a = last_state(tmp_path / "a")
    last_b, state_b = last_state(tmp_path / "b")
    assert (last_a["step"], last_b["step"]) == (3, 4)
    assert state_equal(state_a["model"], state_b["model"]) == 0.0
    assert state_b["scaler"]["scale"] == state_a["scaler"]["scale"] / 2  # one more back-off, for step 3


def test_fp16_resume_continues_with_the_saved_scale(tmp_path, faces, monkeypatch):
    whole = TinyNet(dim=16)
    overflow_at_call(whole, 4)
    quiet_train(fp16_config(tmp_path / "whole"), dataset=faces, model=whole)

    out = tmp_path / "parts"
    first = TinyNet(dim=16)
    overflow_at_call(first, 4)
    cfg = fp16_config(out)
    nan_at_step(monkeypatch, 5)  # stops after the checkpoint of step 4, past the overflow
    with pytest.raises(NonFiniteLossError):
        quiet_train(cfg, dataset=faces, model=first)
    monkeypatch.undo()
    last, state = last_state(out)
    assert last["step"] == 4 and state["scaler"]["scale"] < INIT_SCALE  # a scale a fresh scaler would not have
    second = TinyNet(dim=16, seed=3)  # different start: everything must come from the checkpoint
    result = quiet_train(fp16_config(out), dataset=faces, model=second)
    assert result.stopped == "completed" and result.steps == 8
    _, end = last_state(out)
    _, end_whole = last_state(tmp_path / "whole")
    assert end["scaler"]["scale"] == end_whole["scaler"]["scale"]
    assert state_equal(second.state_dict(), whole.state_dict()) == 0.0
