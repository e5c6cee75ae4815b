"""Embedding distillation from a frozen teacher (FaceLiVT paper, ICIP 2025):
``L = L_cls + alpha * L_dis`` with alpha 0.5."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from facelivt.errors import InvalidInputError

DISTILL_KINDS = ("mse", "l1", "cosine")


class DistillationLoss(nn.Module):
    """``alpha * L_dis(student, teacher)``; add it to the classification loss.

    kinds:
      * ``"mse"`` (default, as the released code): mean squared error over all
        elements of the raw embeddings (``nn.MSELoss()``).
      * ``"l1"``: the seed's Eq. 9, ``sqrt((x1 - x2)^2)`` = mean absolute error.
      * ``"cosine"``: mean of ``1 - cos(student, teacher)`` over the batch (scale free).

    Embeddings are used raw (not normalised), as released; ``normalize=True``
    L2-normalises both first (only matters for mse and l1). The teacher
    embedding is detached: no gradient flows into the teacher.
    """

    def __init__(self, kind: str = "mse", alpha: float = 0.5, normalize: bool = False) -> None:
        super().__init__()
        kind = str(kind).lower()
        if kind not in DISTILL_KINDS:
            raise InvalidInputError(f"unknown distillation loss {kind!r}: choose one of {', '.join(DISTILL_KINDS)}")
        if alpha < 0:
            raise InvalidInputError(f"alpha must be >= 0, got {alpha}")
        self.kind = kind
        self.alpha = float(alpha)
        self.normalize = bool(normalize)

    def forward(self, student_emb: torch.Tensor, teacher_emb: torch.Tensor) -> torch.Tensor:
        if student_emb.shape != teacher_emb.shape:
            raise InvalidInputError(
                f"student and teacher embeddings differ in shape: {tuple(student_emb.shape)} vs {tuple(teacher_emb.shape)}"
            )
        if student_emb.ndim != 2:
            raise InvalidInputError(f"expected [batch, dim] embeddings, got shape {tuple(student_emb.shape)}")
        s = student_emb.float()
        t = teacher_emb.detach().float()
        if self.kind == "cosine":
            dis = (1.0 - F.cosine_similarity(s, t, dim=1)).mean()
        else:
            if self.normalize:
                s, t = F.normalize(s, dim=1), F.normalize(t, dim=1)
            dis = F.mse_loss(s, t) if self.kind == "mse" else F.l1_loss(s, t)
        return self.alpha * dis

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, alpha={self.alpha}, normalize={self.normalize}"
