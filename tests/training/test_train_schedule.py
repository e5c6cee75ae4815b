"""Per-step polynomial decay with linear warm-up."""
from __future__ import annotations

import pytest
import torch

from facelivt.training import PolyWarmupScheduler, poly_lr
from facelivt.training.schedule import MAX_SUGGESTED_LR, lower_lr


def test_poly_decay_endpoints_and_linearity():
    assert poly_lr(0, 6e-3, 100, 1e-5) == pytest.approx(6e-3)
    assert poly_lr(100, 6e-3, 100, 1e-5) == pytest.approx(1e-5)
    assert poly_lr(150, 6e-3, 100, 1e-5) == pytest.approx(1e-5)  # clamped after the end
    assert poly_lr(50, 6e-3, 100, 1e-5) == pytest.approx(1e-5 + (6e-3 - 1e-5) * 0.5)
    lrs = [poly_lr(s, 1.0, 10, 0.0) for s in range(11)]
    diffs = [a - b for a, b in zip(lrs, lrs[1:])]
    assert all(d == pytest.approx(0.1) for d in diffs)  # power 1: a straight line


def test_power_two():
    assert poly_lr(5, 1.0, 10, 0.0, power=2.0) == pytest.approx(0.25)
    assert poly_lr(5, 1.0, 10, 0.1, power=2.0) == pytest.approx(0.1 + 0.9 * 0.25)


def test_warmup_rises_linearly_then_decays():
    lrs = [poly_lr(s, 1.0, 14, 0.0, warmup_steps=4) for s in range(15)]
    assert lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert lrs[4] == pytest.approx(1.0)  # first decay step starts from the base lr
    assert lrs[9] == pytest.approx(0.5)
    assert lrs[14] == pytest.approx(0.0)


@pytest.mark.parametrize("kwargs", [dict(total_steps=0), dict(warmup_steps=10), dict(step=-1)])
def test_bad_arguments(kwargs):
    args = dict(step=0, base_lr=1.0, total_steps=10, min_lr=0.0, power=1.0, warmup_steps=0)
    args.update(kwargs)
    with pytest.raises(ValueError):
        poly_lr(**args)


def test_scheduler_drives_optimizer_and_resumes():
    p = torch.nn.Parameter(torch.zeros(1))
    q = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([{"params": [p]}, {"params": [q], "lr": 2e-3}], lr=6e-3)
    sched = PolyWarmupScheduler(opt, total_steps=10, min_lr=1e-5, warmup_steps=2)
    seen = []
    for _ in range(6):
        seen.append(sched.get_last_lr())
        opt.step()
        sched.step()
    assert seen[0] == pytest.approx([3e-3, 1e-3])
    assert seen[1] == pytest.approx([6e-3, 2e-3])
    state = sched.state_dict()
    opt2 = torch.optim.AdamW([{"params": [p]}, {"params": [q], "lr": 2e-3}], lr=6e-3)
    sched2 = PolyWarmupScheduler(opt2, total_steps=10, min_lr=1e-5, warmup_steps=2)
    sched2.load_state_dict(state)
    assert sched2.get_last_lr() == pytest.approx(sched.get_last_lr())
    for _ in range(4):
        sched.step()
        sched2.step()
    assert sched.get_last_lr() == pytest.approx([1e-5, 1e-5])
    assert sched2.get_last_lr() == pytest.approx(sched.get_last_lr())


@pytest.mark.parametrize("lr, checkpoint_lr, want", [
    (1e6, None, 1e-2),      # a tenth of 1e6 diverges again: capped at what AdamW tolerates
    (1e6, 1e-3, 1e-4),      # the run that wrote the last good checkpoint trained at 1e-3
    (6e-3, None, 6e-4),
    (1e-3, 6e-3, 1e-4),     # the lower of the two
    (0.5, 0.5, 1e-2),
])
def test_the_lower_lr_after_a_divergence(lr, checkpoint_lr, want):
    assert lower_lr(lr, checkpoint_lr) == pytest.approx(want)
    assert lower_lr(lr, checkpoint_lr) <= MAX_SUGGESTED_LR and lower_lr(lr, checkpoint_lr) < lr
