"""Export-friendly forms of the attention blocks, and tools to look at the graph ONNX Runtime runs.

``prepare_for_export(model)`` returns a copy of a (deploy-form) model in which every block whose
eager forward reads tensor shapes at run time is replaced by an equivalent module built for a fixed
map size, computing the same function (float32 round-off):

- FaceLiVT's MHLA becomes ``ExportMHLA``: the one-group GroupNorm is a LayerNormalization over
  (C, H, W) with the affine expanded to that shape; the heads go to the front, ``(He, B*C/He, N)``,
  so each head's token MLP is one MatMul whose rows are every channel of that head in the whole
  batch (the batched MatMul has He GEMMs of B*C/He rows instead of B*He GEMMs of C/He rows); the
  interleaved output layout is one Transpose. Every Reshape has a constant shape with the batch as
  -1, so a dynamic-batch graph has no Shape/Gather/Concat chains.
- MHSA becomes ``ExportMHSA`` (same idea; the 1/sqrt(d) scale is folded into the q projection).
- EdgeFace's SDTA block becomes ``ExportSDTA`` (constant positional encoding, shape-free reshapes,
  L2-normalisation without Expand), and PReLU (MobileFaceNet) becomes ``a*x + (1-a)*relu(x)``
  (ORT's PRelu kernel is slow and leaves the blocked conv layout), so the peers get the same care.

Other modules are kept. ``graph_ops`` / ``optimized_graph`` count the nodes before and after ONNX
Runtime's graph optimisations (``SessionOptions.optimized_model_filepath``).
"""
from __future__ import annotations

import collections
import copy
import os
import tempfile
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from facelivt.deploy.sessions import onnx_session
from facelivt.files import write_bytes
from facelivt.models.layers import MHLA, MHSA
from facelivt.models.peers.edgeface import SDTABlock


class ExportMHLA(nn.Module):
    """MHLA for a fixed ``(H, W)`` map, formulated for ONNX (see the module docstring)."""

    def __init__(self, m: MHLA, hw: tuple[int, int]):
        super().__init__()
        h, w = hw
        if h * w != m.num_tokens:
            raise ValueError(f"ExportMHLA: map {h}x{w} does not have the block's {m.num_tokens} tokens")
        self.heads, self.channels, self.tokens = m.num_heads, m.channels, m.num_tokens
        self.head_dim = m.channels // m.num_heads
        self.hw = (h, w)
        self.eps = m.norm.eps
        c = m.channels
        with torch.no_grad():
            self.register_buffer("norm_weight", m.norm.weight.detach()[:, None, None].expand(c, h, w).clone())
            self.register_buffer("norm_bias", m.norm.bias.detach()[:, None, None].expand(c, h, w).clone())
            self.register_buffer("w1", m.w1.detach().transpose(1, 2).contiguous())  # (He, N, 4N)
            self.register_buffer("b1", m.b1.detach()[:, None, :].clone())  # (He, 1, 4N)
            self.register_buffer("w2", m.w2.detach().transpose(1, 2).contiguous())  # (He, 4N, N)
            self.register_buffer("b2", m.b2.detach()[:, None, :].clone())  # (He, 1, N)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        he, c, n, d = self.heads, self.channels, self.tokens, self.head_dim
        x = F.layer_norm(x, (c, *self.hw), self.norm_weight, self.norm_bias, self.eps)
        t = x.reshape(-1, he, d, n).transpose(0, 1).reshape(he, -1, n)  # (He, B*d, N)
        t = F.gelu(torch.matmul(t, self.w1) + self.b1)
        t = torch.matmul(t, self.w2) + self.b2  # (He, B*d, N)
        t = t.reshape(he, -1, d, n).permute(1, 2, 0, 3)  # (B, d, He, N): channel j*He + h
        return t.reshape(-1, c, *self.hw)

    def macs(self, x: torch.Tensor, out: torch.Tensor) -> int:
        """Same count as the library MHLA (token MLPs) plus its GroupNorm, which is functional here."""
        b, c, h, w = x.shape
        n, hidden = h * w, self.w1.shape[-1]
        rows = b * c
        return rows * (n * hidden + hidden) + 2 * rows * hidden + rows * (hidden * n + n) + 2 * x.numel()


class ExportMHSA(nn.Module):
    """MHSA for a fixed ``(H, W)`` map with constant reshapes; the softmax scale lives in the q weights."""

    def __init__(self, m: MHSA, hw: tuple[int, int]):
        super().__init__()
        self.heads, self.key_dim, self.value_dim = m.num_heads, m.key_dim, m.value_dim
        self.hw = hw
        self.qkv = copy.deepcopy(m.qkv)
        self.proj = copy.deepcopy(m.proj)
        self.scale = m.scale
        # With a plain (fused) qkv conv the softmax scale goes into the q rows of its weights.
        self.scale_folded = isinstance(self.qkv, nn.Conv2d) and self.qkv.bias is not None
        if self.scale_folded:
            per_head = 2 * m.key_dim + m.value_dim
            with torch.no_grad():
                self.qkv.weight.view(m.num_heads, per_head, -1)[:, : m.key_dim] *= m.scale
                self.qkv.bias.view(m.num_heads, per_head)[:, : m.key_dim] *= m.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.hw[0] * self.hw[1]
        qkv = self.qkv(x).reshape(-1, self.heads, 2 * self.key_dim + self.value_dim, n)
        q, k, v = qkv.split([self.key_dim, self.key_dim, self.value_dim], dim=2)
        attn = torch.matmul(q.transpose(-2, -1), k)  # (B, heads, N, N)
        if not self.scale_folded:
            attn = attn * self.scale
        attn = attn.softmax(dim=-1)
        out = torch.matmul(v, attn.transpose(-2, -1))  # (B, heads, dv, N)
        return self.proj(out.reshape(-1, self.heads * self.value_dim, *self.hw))

    def macs(self, x: torch.Tensor, out: torch.Tensor) -> int:
        b, c, h, w = x.shape
        n = h * w
        return b * self.heads * n * n * (self.key_dim + self.value_dim)


class ExportPReLU(nn.Module):
    """``PReLU(x) = a*x + (1-a)*relu(x)``: ONNX Runtime's PRelu kernel broadcasts the per-channel slope
    slowly and breaks its blocked (NCHWc) convolution layout; this form stays in that layout (the
    per-channel products become convolutions there). Same function up to float round-off."""

    def __init__(self, m: nn.PReLU, hw: tuple[int, int] | None = None):
        super().__init__()
        a = m.weight.detach().reshape(1, -1, 1, 1)
        self.register_buffer("slope", a.clone())
        self.register_buffer("one_minus_slope", (1.0 - a).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"ExportPReLU expects an NCHW map, got shape {tuple(x.shape)}")
        return self.slope * x + self.one_minus_slope * torch.relu(x)

    def macs(self, x: torch.Tensor, out: torch.Tensor) -> int:
        return x.numel()  # as nn.PReLU is counted


def _l2_normalize(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """``F.normalize(x, dim=-1)`` without the Expand node its export adds."""
    return x / torch.clamp_min(torch.linalg.vector_norm(x, dim=-1, keepdim=True), eps)


class ExportSDTA(nn.Module):
    """EdgeFace/EdgeNeXt SDTA block for a fixed map size: constant positional encoding, shape-free
    reshapes. Wraps (shares the layers of) the original block."""

    def __init__(self, block: nn.Module, hw: tuple[int, int]):
        super().__init__()
        self.block = block
        self.hw = hw
        c = block.norm.normalized_shape[0]
        self.channels = c
        # torch.chunk's split sizes, as constants (chunk itself exports with Shape/Slice nodes).
        k = block.num_splits + 1
        step = -(-c // k)
        self.split_sizes = [min(step, c - i) for i in range(0, c, step)]
        if block.pos_embd is not None:
            with torch.no_grad():
                p = block.pos_embd(hw[0], hw[1], block.norm.weight.device, block.norm.weight.dtype)
            self.register_buffer("pos", p.reshape(1, c, hw[0] * hw[1]).transpose(1, 2).contiguous())
        else:
            self.pos = None

    def _xca(self, x: torch.Tensor) -> torch.Tensor:
        xca = self.block.xca
        c = self.channels
        heads = xca.num_heads
        qkv = xca.qkv(x).reshape(-1, self.hw[0] * self.hw[1], 3, heads, c // heads).permute(2, 0, 3, 4, 1)
        q, k, v = qkv[0], qkv[1], qkv[2]  # (B, heads, d, N)
        attn = torch.matmul(_l2_normalize(q) * xca.temperature, _l2_normalize(k).transpose(-2, -1)).softmax(dim=-1)
        out = torch.matmul(attn, v).permute(0, 3, 1, 2).reshape(-1, self.hw[0] * self.hw[1], c)
        return xca.proj(out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        blk, (h, w), c = self.block, self.hw, self.channels
        shortcut = x
        # static split sizes: no shape arithmetic in the graph
        t = blk.cascade(torch.split(x, self.split_sizes, dim=1)).reshape(-1, c, h * w).transpose(1, 2)  # (B, N, C)
        if self.pos is not None:
            t = t + self.pos
        y = self._xca(blk.norm_xca(t))
        if blk.gamma_xca is not None:
            y = blk.gamma_xca * y
        t = (t + y).reshape(-1, h, w, c)
        y = blk.mlp(blk.norm(t))
        if blk.gamma is not None:
            y = blk.gamma * y
        return shortcut + y.permute(0, 3, 1, 2)

    def macs(self, x: torch.Tensor, out: torch.Tensor) -> int:
        b = x.shape[0]
        n = self.hw[0] * self.hw[1]
        d = self.channels // self.block.xca.num_heads
        return 2 * b * self.block.xca.num_heads * d * d * n


def export_converters() -> list[tuple[type, Callable[[nn.Module, tuple[int, int]], nn.Module]]]:
    """``(module class, converter(module, (H, W)) -> module)`` pairs applied by :func:`prepare_for_export`."""
    return [(MHLA, ExportMHLA), (MHSA, ExportMHSA), (nn.PReLU, ExportPReLU), (SDTABlock, ExportSDTA)]


@torch.no_grad()
def prepare_for_export(model: nn.Module, input_size: int = 112) -> nn.Module:
    """A copy of ``model`` (eval mode) with every shape-reading block replaced by its export form.

    The map size each block sees is recorded with one dry run at ``input_size``; the returned module
    is only valid at that input size (any batch size).
    """
    model = copy.deepcopy(model).eval()
    converters = export_converters()
    shapes: dict[nn.Module, tuple[int, int]] = {}
    handles = []
    for m in model.modules():
        if any(isinstance(m, cls) for cls, _ in converters):
            handles.append(m.register_forward_pre_hook(lambda mod, args: shapes.__setitem__(mod, tuple(args[0].shape[2:4]))))
    try:
        param = next(model.parameters())
        model(torch.zeros(1, 3, input_size, input_size, device=param.device, dtype=param.dtype))
    finally:
        for h in handles:
            h.remove()

    def replace(parent: nn.Module) -> None:
        for name, child in list(parent.named_children()):
            for cls, conv in converters:
                if isinstance(child, cls):
                    if child not in shapes:
                        raise RuntimeError(f"prepare_for_export: block {name} ({cls.__name__}) was not reached by the dry run")
                    setattr(parent, name, conv(child, shapes[child]))
                    break
            else:
                replace(child)

    replace(model)
    model.eval()
    return model


def graph_ops(path_or_model) -> dict[str, int]:
    """Node count per op type of an ONNX file or ``onnx.ModelProto``."""
    import onnx

    model = onnx.load(str(path_or_model)) if isinstance(path_or_model, (str, os.PathLike)) else path_or_model
    return dict(collections.Counter(n.op_type for n in model.graph.node))


def optimized_graph(path: str | os.PathLike, threads: int = 1, keep: str | os.PathLike | None = None) -> dict[str, int]:
    """Op counts of the graph ONNX Runtime actually runs (all optimisations on, CPU provider).

    ``keep``: also write that optimised model there (it is specific to this machine's CPU).
    """
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "optimized.onnx"
        onnx_session(path, threads, optimized_path=out)
        if keep:
            write_bytes(keep, out.read_bytes())
        return graph_ops(out)
