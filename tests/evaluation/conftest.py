"""Shared fixtures of the evaluation tests: the ../shared data folder and a tiny embedding model."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"


class TinyEmbedder(nn.Module):
    """A small, deterministic, left-right asymmetric embedder (pool to 4x4, linear to 16)."""

    def __init__(self, dim: int = 16, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.bn = nn.BatchNorm1d(48)
        self.fc = nn.Linear(48, dim)
        with torch.no_grad():
            self.fc.weight.copy_(torch.randn(dim, 48, generator=g))
            self.fc.bias.copy_(torch.randn(dim, generator=g))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.bn(self.pool(x).flatten(1)))


@pytest.fixture
def tiny_model() -> TinyEmbedder:
    return TinyEmbedder()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    d = SHARED / "data"
    assert d.is_dir(), f"shared data folder missing: {d}"
    return d
