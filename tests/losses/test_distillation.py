"""Distillation losses: values by hand, alpha, teacher frozen."""
from __future__ import annotations

import pytest
import torch

from facelivt.losses import DistillationLoss

S = [[1.0, 2.0, 3.0], [0.0, -1.0, 1.0]]
T = [[2.0, 2.0, 1.0], [1.0, 1.0, 1.0]]


def run(kind, **kw):
    s = torch.tensor(S, requires_grad=True)
    t = torch.tensor(T, requires_grad=True)
    loss = DistillationLoss(kind, **kw)(s, t)
    loss.backward()
    assert t.grad is None  # the teacher gets no gradient
    return loss.item(), s.grad


def test_mse_default_alpha_half():
    value, grad = run("mse")
    # squared diffs: 1,0,4,1,4,0 -> mean 10/6; alpha 0.5
    assert value == pytest.approx(0.5 * 10 / 6)
    assert torch.allclose(grad, 0.5 * 2 * (torch.tensor(S) - torch.tensor(T)) / 6)
    assert DistillationLoss().kind == "mse" and DistillationLoss().alpha == 0.5


def test_l1_eq9():
    value, _ = run("l1", alpha=1.0)
    assert value == pytest.approx((1 + 0 + 2 + 1 + 2 + 0) / 6)


def test_cosine():
    value, _ = run("cosine", alpha=2.0)
    c0 = (2 + 4 + 3) / ((1 + 4 + 9) ** 0.5 * (4 + 4 + 1) ** 0.5)
    c1 = (0 - 1 + 1) / (2 ** 0.5 * 3 ** 0.5)
    assert value == pytest.approx(2.0 * ((1 - c0) + (1 - c1)) / 2)
    x = torch.randn(4, 8)
    assert DistillationLoss("cosine")(x, 3 * x).item() == pytest.approx(0.0, abs=1e-6)


def test_normalize_option():
    x = torch.randn(4, 8)
    assert DistillationLoss("mse")(x, 2 * x).item() > 0
    assert DistillationLoss("mse", normalize=True)(x, 2 * x).item() == pytest.approx(0.0, abs=1e-7)


def test_errors():
    with pytest.raises(ValueError, match="unknown distillation"):
        DistillationLoss("kl")
    with pytest.raises(ValueError, match="alpha"):
        DistillationLoss(alpha=-1)
    with pytest.raises(ValueError, match="differ in shape"):
        DistillationLoss()(torch.zeros(2, 4), torch.zeros(2, 5))
