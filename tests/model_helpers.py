"""Model helpers shared by the tests of several packages (tests/ is on sys.path through its conftest)."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from torch import nn

from facelivt.models import register_model, registry
from facelivt.models.facelivtv2 import LiteMHLA
from facelivt.models.layers import MHLA


def randomize_model(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give ``model`` non-trivial norms, BatchNorm statistics, biases, layer scales and PReLU slopes, so
    that folding and export mistakes show (fresh BNs are identities, the FFN's last BN starts at zero and
    fresh biases are zero). Weights are left as initialised; the train/eval mode is not changed."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "gamma" in name or "temperature" in name:
                p.copy_(0.5 + torch.rand(p.shape, generator=g))
        for m in model.modules():
            if isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)):
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=g))
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=g))
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(0.2 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
            if isinstance(m, nn.PReLU):
                m.weight.copy_(0.5 * torch.rand(m.weight.shape, generator=g))
            if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
                m.bias.copy_(0.05 * torch.randn(m.bias.shape, generator=g))
            if isinstance(m, MHLA):
                m.b1.copy_(0.1 * torch.randn(m.b1.shape, generator=g))
                m.b2.copy_(0.1 * torch.randn(m.b2.shape, generator=g))
            if isinstance(m, LiteMHLA):  # fresh alpha and ls are 1e-5: the mixer would be invisible
                m.alpha.copy_(0.5 + torch.rand(m.alpha.shape, generator=g))
                m.beta.copy_(0.2 * torch.randn(m.beta.shape, generator=g))
                m.ls.copy_(0.5 + torch.rand(m.ls.shape, generator=g))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
    return model


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


#: FaceLiVT-S trained for a few minutes on the CelebA subset less 20 % of its identities (deploy form,
#: float16; see tests/deploy/weights/README.md). Its metadata names the held-out identity folders.
TRAINED_FACELIVT_S = Path(__file__).resolve().parent / "deploy" / "weights" / "facelivt_s_celeba.fp16.safetensors"


def heldout_identities(weights: Path = TRAINED_FACELIVT_S) -> frozenset[str]:
    """The identity folders the trained weights never saw, as their metadata records them."""
    with safe_open(str(weights), framework="pt") as f:
        return frozenset(json.loads(f.metadata()["heldout_identities"]))


def register_tiny(monkeypatch, name: str) -> None:
    """Register ``name`` as a :class:`TinyEmbedder` for one test (the registry is restored after it):
    a model small enough that a FaceRecognizer or a command runs in no time."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry, "_PREPROCESS", dict(registry._PREPROCESS))
    register_model(name, lambda **kw: TinyEmbedder())
