"""Margin heads against hand-computed logits."""
from __future__ import annotations

import math

import pytest
import torch

from facelivt.losses import CombinedMarginLoss, margin_loss

COS = [[0.5, 0.2, -0.1], [0.3, 0.9, 0.0], [0.7, -0.4, 0.1]]
LABELS = [0, -1, 2]


def apply(head, cos=COS, labels=LABELS):
    x = torch.tensor(cos, dtype=torch.float64)
    before = x.clone()
    out = head(x, torch.tensor(labels))
    assert torch.equal(x, before)  # input untouched
    return out


def hand(cos, labels, fn, s):
    out = [[s * c for c in row] for row in cos]
    for i, y in enumerate(labels):
        if y >= 0:
            out[i][y] = s * fn(cos[i][y])
    return torch.tensor(out, dtype=torch.float64)


def test_cosface_default():
    head = margin_loss()  # cosface is the default
    assert (head.s, head.m1, head.m2, head.m3) == (64.0, 1.0, 0.0, 0.4)
    out = apply(head)
    assert out[0, 0].item() == pytest.approx(64 * 0.1)
    assert out[2, 2].item() == pytest.approx(64 * (0.1 - 0.4))
    assert torch.allclose(out[1], torch.tensor(COS[1], dtype=torch.float64) * 64)  # ignored row
    assert torch.allclose(out, hand(COS, LABELS, lambda c: c - 0.4, 64))


def test_arcface():
    head = margin_loss("arcface")
    assert (head.m1, head.m2, head.m3) == (1.0, 0.5, 0.0)
    out = apply(head)
    assert out[0, 0].item() == pytest.approx(64 * math.cos(math.pi / 3 + 0.5))
    assert torch.allclose(out, hand(COS, LABELS, lambda c: math.cos(math.acos(c) + 0.5), 64))


def test_combined_and_overrides():
    head = margin_loss("combined", m1=0.9, m2=0.3, m3=0.2, s=30)
    out = apply(head)
    assert torch.allclose(out, hand(COS, LABELS, lambda c: math.cos(0.9 * math.acos(c) + 0.3) - 0.2, 30))
    default = margin_loss("combined")
    assert (default.m1, default.m2, default.m3) == (1.0, 0.3, 0.2)
    assert torch.allclose(apply(default), hand(COS, LABELS, lambda c: math.cos(math.acos(c) + 0.3) - 0.2, 64))


def test_gradients_match_formula():
    for head in [CombinedMarginLoss(8, 1.0, 0.0, 0.35), CombinedMarginLoss(8, 1.0, 0.5, 0.0),
                 CombinedMarginLoss(8, 1.2, 0.2, 0.1)]:
        x = torch.tensor(COS, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(lambda t: head(t, torch.tensor(LABELS)), (x,))


def test_stable_at_cosine_one():
    x = torch.tensor([[1.0, -1.0]], requires_grad=True)
    out = margin_loss("arcface")(x, torch.tensor([0]))
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(x.grad).all()
    assert out[0, 0].item() == pytest.approx(64 * math.cos(0.5), abs=1e-3)


def test_errors():
    head = margin_loss()
    with pytest.raises(ValueError, match="labels must be in"):
        head(torch.zeros(2, 3), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="labels must be in"):
        head(torch.zeros(2, 3), torch.tensor([0, -2]))
    with pytest.raises(ValueError, match="labels for"):
        head(torch.zeros(2, 3), torch.tensor([0]))
    with pytest.raises(ValueError, match="cosine logits"):
        head(torch.zeros(3), torch.tensor([0]))
    with pytest.raises(ValueError, match="unknown margin loss"):
        margin_loss("sphereface")
    with pytest.raises(ValueError, match="unknown margin parameters"):
        margin_loss("cosface", margin=0.3)
    with pytest.raises(ValueError, match="scale"):
        CombinedMarginLoss(s=0)
