"""The released implementation's way of running FaceLiVT, rebuilt on our modules for same-run baselines.

Two things differ from this project's forward pass, and nothing else:

- MHLA loops over its heads in Python, each head with its own ``nn.Linear`` pair, heads concatenated
  along the token axis and reshaped (which is where the channel interleave comes from);
- RepConv runs its two branches as two convolutions and adds them.

The baseline shares no tensors with the model it is made from (weights are copied), so it can be
trained alongside it. It computes the same function (float32 round-off).

``PerHeadLoopMHLA`` is deliberately not a form of :class:`facelivt.models.layers.MHLA`: it is the
released code's way of running the layer, kept here only as the baseline the benchmarks compare
against (the library's train, deploy and export forms all live in ``facelivt/models``). It is built
from the model's own MHLA, whose weights it copies.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from facelivt.models.facelivtv2 import LiteMHLA
from facelivt.models.layers import MHLA, RepConv, set_linear_1x1


class PerHeadLoopMHLA(nn.Module):
    """The released MHLA: 16 ``nn.Linear`` pairs called in a Python loop."""

    def __init__(self, m: MHLA):
        super().__init__()
        self.norm = copy.deepcopy(m.norm)
        self.num_heads = m.num_heads
        hidden, n = m.w1.shape[1], m.w1.shape[2]
        self.linear1 = nn.ModuleList(nn.Linear(n, hidden) for _ in range(m.num_heads))
        self.linear2 = nn.ModuleList(nn.Linear(hidden, n) for _ in range(m.num_heads))
        with torch.no_grad():
            for h in range(m.num_heads):
                self.linear1[h].weight.copy_(m.w1[h])
                self.linear1[h].bias.copy_(m.b1[h])
                self.linear2[h].weight.copy_(m.w2[h])
                self.linear2[h].bias.copy_(m.b2[h])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        x = self.norm(x).reshape(b, c, h * w)
        chunks = x.chunk(self.num_heads, dim=1)
        outs = [self.linear2[i](F.gelu(self.linear1[i](chunks[i]))) for i in range(self.num_heads)]
        return torch.cat(outs, dim=-1).reshape(b, c, h, w)


class PerHeadLoopLiteMHLA(nn.Module):
    """The released FaceLiVTv2 Lite MHLA (train and deploy form alike): affine, one ``nn.Linear(N, N)``
    per head called in a Python loop, heads concatenated along the channels, layer scale."""

    def __init__(self, m: LiteMHLA):
        super().__init__()
        self.num_heads = m.num_heads
        self.alpha = nn.Parameter(m.alpha.detach().clone())
        self.beta = nn.Parameter(m.beta.detach().clone())
        self.ls = nn.Parameter(m.ls.detach().clone())
        self.lin = nn.ModuleList(nn.Linear(m.num_tokens, m.num_tokens) for _ in range(m.num_heads))
        with torch.no_grad():
            for h, lin in enumerate(self.lin):
                lin.weight.copy_(m.weight[h])
                lin.bias.copy_(m.bias[h])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        t = self.alpha * x.reshape(b, c, h * w) + self.beta
        chunks = t.chunk(self.num_heads, dim=1)
        return torch.cat([self.lin[i](chunks[i]) for i in range(self.num_heads)], dim=1).reshape(b, c, h, w) * self.ls


def unfolded_lite_mhla(model: nn.Module) -> nn.Module:
    """A copy of a FaceLiVTv2 deploy form whose Lite MHLAs run as the train form (affine, matmul + bias,
    layer scale: the released deploy form, vectorised): the same-run reference for the fold."""
    base = copy.deepcopy(model)
    for module in list(base.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, LiteMHLA) and type(child) is not LiteMHLA:
                plain = LiteMHLA(child.channels, child.num_tokens, child.num_heads)
                plain.load_state_dict(child.state_dict())
                setattr(module, name, plain)
    return base.eval()


class TwoBranchRepConv(nn.Module):
    """The released RepConv in train form: ``BN(Conv_kxk(x) + Conv_1x1(x))`` as two convolutions."""

    def __init__(self, m: RepConv):
        super().__init__()
        self.conv_kxk = copy.deepcopy(m.conv_kxk)
        self.conv_1x1 = copy.deepcopy(m.conv_1x1)
        self.bn = copy.deepcopy(m.bn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv_kxk(x) + self.conv_1x1(x))


def released_style(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (train or deploy form) that runs as the released code does, in the default
    NCHW layout: per-head-loop MHLA (v1) or Lite MHLA (v2, whose released deploy form also keeps the
    affine and layer scale) and, in the train form, two-branch RepConvs."""
    base = set_linear_1x1(copy.deepcopy(model).to(memory_format=torch.contiguous_format), False)
    if hasattr(base, "channels_last"):
        base.channels_last = False
    for module in list(base.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, MHLA):
                setattr(module, name, PerHeadLoopMHLA(child))
            elif isinstance(child, LiteMHLA):
                setattr(module, name, PerHeadLoopLiteMHLA(child))
            elif isinstance(child, RepConv):
                setattr(module, name, TwoBranchRepConv(child))
    return base.train(model.training)
