"""Margin softmax heads on cosine logits: CosFace, ArcFace and the combined margin.

The target logit of every sample becomes ``s * (cos(m1 * theta + m2) - m3)`` with
``theta = arccos(cos)``; all other logits become ``s * cos``. CosFace is
``(1, 0, m3)``, ArcFace ``(1, m2, 0)``. As in insightface's combined margin, no
"easy margin" correction is applied: for ``m1 * theta + m2 > pi`` the target logit
is no longer monotonic in theta.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from facelivt.errors import InvalidInputError

_ARCCOS_EPS = 1e-7


class CombinedMarginLoss(nn.Module):
    """Maps cosine logits ``[B, C]`` and labels ``[B]`` to margin-adjusted, scaled logits.

    Label -1 means "the target class is not among these columns" (Partial FC
    shards): that row only gets scaled. The input is not modified.
    """

    def __init__(self, s: float = 64.0, m1: float = 1.0, m2: float = 0.0, m3: float = 0.4) -> None:
        super().__init__()
        if s <= 0:
            raise InvalidInputError(f"scale s must be positive, got {s}")
        if m1 <= 0:
            raise InvalidInputError(f"m1 must be positive, got {m1}")
        self.s, self.m1, self.m2, self.m3 = float(s), float(m1), float(m2), float(m3)

    def target_logit(self, cos: torch.Tensor) -> torch.Tensor:
        """``cos(m1 * theta + m2) - m3`` for the target cosines (unscaled)."""
        if self.m1 == 1.0 and self.m2 == 0.0:
            out = cos  # CosFace: exact, no arccos
        elif self.m1 == 1.0:
            # ArcFace: cos(theta + m) = cos*cos(m) - sin*sin(m); avoids arccos's gradient pole at +-1
            sin = torch.sqrt((1.0 - cos * cos).clamp_min(1e-12))
            out = cos * math.cos(self.m2) - sin * math.sin(self.m2)
        else:
            theta = torch.acos(cos.clamp(-1.0 + _ARCCOS_EPS, 1.0 - _ARCCOS_EPS))
            out = torch.cos(self.m1 * theta + self.m2)
        return out - self.m3 if self.m3 != 0.0 else out

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if logits.ndim != 2:
            raise InvalidInputError(f"expected [batch, classes] cosine logits, got shape {tuple(logits.shape)}")
        labels = labels.reshape(-1)
        if labels.numel() != logits.shape[0]:
            raise InvalidInputError(f"{labels.numel()} labels for {logits.shape[0]} rows of logits")
        if labels.numel() and (int(labels.max()) >= logits.shape[1] or int(labels.min()) < -1):
            raise InvalidInputError(
                f"labels must be in [0, {logits.shape[1]}) or -1 (ignore); got range "
                f"[{int(labels.min())}, {int(labels.max())}]"
            )
        rows = torch.nonzero(labels != -1, as_tuple=True)[0]
        cols = labels[rows].long()
        target = self.target_logit(logits[rows, cols])
        out = logits.index_put((rows, cols), target.to(logits.dtype))
        return out * self.s

    def extra_repr(self) -> str:
        return f"s={self.s}, m1={self.m1}, m2={self.m2}, m3={self.m3}"


_PRESETS = {
    "cosface": dict(s=64.0, m1=1.0, m2=0.0, m3=0.4),
    "arcface": dict(s=64.0, m1=1.0, m2=0.5, m3=0.0),
    "combined": dict(s=64.0, m1=1.0, m2=0.3, m3=0.2),
}
MARGINS = tuple(_PRESETS)  # the margin heads loss.margin may name


def margin_loss(name: str = "cosface", **overrides: float) -> CombinedMarginLoss:
    """``"cosface"`` (s=64, m3=0.4; the FaceLiVT paper's loss), ``"arcface"``
    (m2=0.5) or ``"combined"`` (m1, m2, m3 = 1.0, 0.3, 0.2 unless given).
    ``overrides`` may set any of s, m1, m2, m3."""
    key = str(name).lower()
    if key not in _PRESETS:
        raise InvalidInputError(f"unknown margin loss {name!r}: choose one of {', '.join(_PRESETS)}")
    unknown = set(overrides) - {"s", "m1", "m2", "m3"}
    if unknown:
        raise InvalidInputError(f"unknown margin parameters {sorted(unknown)}: use s, m1, m2, m3")
    params = dict(_PRESETS[key])
    params.update({k: float(v) for k, v in overrides.items()})
    return CombinedMarginLoss(**params)
