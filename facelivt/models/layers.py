"""Building blocks of FaceLiVT (FaceLiVT, ICIP 2025) in train form.

Every reparameterizable block owns its fusion: ``reparameterize(residual, fuse_bn)`` returns the
module that replaces it in the deploy form (no BatchNorm, one conv per RepConv). The walker in
:mod:`facelivt.models.reparam` calls these methods. A block whose eager forward reads tensor shapes
at run time also owns its export form: ``export_form((H, W))`` returns an equivalent module for a
fixed map size without shape arithmetic (``ExportMHLA``, ``ExportMHSA``), applied by
:func:`facelivt.models.export_form.export_form_model`.
"""
from __future__ import annotations

import copy
import math
import sys

import torch
import torch.nn.functional as F
from torch import nn

from facelivt.cpu import machine_defaults
from facelivt.errors import InvalidInputError
from facelivt.models.reparam import reparameterize_module


def trunc_normal_(tensor: torch.Tensor, std: float = 0.02) -> torch.Tensor:
    return nn.init.trunc_normal_(tensor, std=std, a=-2 * std, b=2 * std)


def fuse_conv_bn(weight: torch.Tensor, bias: torch.Tensor | None, bn: nn.BatchNorm2d | nn.BatchNorm1d):
    """Fold an eval-mode BatchNorm that follows a conv/linear into (weight, bias):
    ``w' = w * gamma / sqrt(var + eps)``, ``b' = (b - mean) * gamma / sqrt(var + eps) + beta``."""
    std = (bn.running_var + bn.eps).sqrt()
    scale = bn.weight / std
    shape = [-1] + [1] * (weight.dim() - 1)
    w = weight * scale.reshape(shape)
    b = bn.running_mean.new_zeros(bn.running_mean.shape) if bias is None else bias
    b = (b - bn.running_mean) * scale + bn.bias
    return w.detach().clone(), b.detach().clone()


# True under torch.compile / torch.export (dynamo), where shapes may be symbolic (torch >= 2.3; looked up once)
compiling = getattr(getattr(torch, "compiler", None), "is_compiling", lambda: False)


def exporting() -> bool:
    """True while tracing, scripting, exporting to ONNX or compiling: the blocks then take their plain,
    graph-friendly path (no shape- or layout-dependent shortcuts)."""
    return torch.jit.is_tracing() or torch.jit.is_scripting() or in_onnx_export() or compiling()


def in_onnx_export() -> bool:
    """``torch.onnx.is_in_onnx_export()`` without importing ``torch.onnx`` (start-up time of every
    command): while it is not imported, no ONNX export is running."""
    onnx = sys.modules.get("torch.onnx")
    return onnx is not None and onnx.is_in_onnx_export()


def is_channels_last(x: torch.Tensor) -> bool:
    """A 4D tensor in the channels-last (NHWC) memory layout and not also plain contiguous."""
    return x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


class PointwiseConv(nn.Conv2d):
    """A 1x1, stride-1, ungrouped convolution of the deploy form (same parameters as ``nn.Conv2d``).

    On a small channels-last input it runs as one ``F.linear`` over the NHWC view, which needs no
    copy: for such inputs PyTorch skips oneDNN for its generic im2col path, and the linear form
    measured 8.1 against 8.9 ms for FaceLiVT-S at batch 1 on the 2-core reference CPU (2 threads).
    Larger inputs, TorchScript tracing and ONNX export take the convolution, which oneDNN and ONNX
    Runtime fuse and lay out better. The bound is per machine (``facelivt.cpu.cpu_defaults``, measured
    per ISA); setting ``LINEAR_MAX_ROWS`` on the class or an instance overrides it (0: never linear).
    """

    LINEAR_MAX_ROWS: int | None = None  # batch * height * width up to which the linear form is used; None: per machine

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if exporting():
            return super().forward(x)  # checked first: shapes may be symbolic here
        b, _, h, w = x.shape
        limit = self.LINEAR_MAX_ROWS if self.LINEAR_MAX_ROWS is not None else machine_defaults().pointwise_linear_max_rows
        if b * h * w <= limit and is_channels_last(x):
            return F.linear(x.permute(0, 2, 3, 1), self.weight.flatten(1), self.bias).permute(0, 3, 1, 2)
        return super().forward(x)


def _conv_like(conv: nn.Conv2d, bias: bool = True) -> nn.Conv2d:
    pointwise = conv.kernel_size == (1, 1) and conv.stride == (1, 1) and conv.groups == 1 and conv.padding == (0, 0)
    return (PointwiseConv if pointwise else nn.Conv2d)(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        groups=conv.groups,
        bias=bias,
    )


class ConvBN(nn.Module):
    """Conv2d (no bias) + BatchNorm2d.

    A 1x1, stride-1, ungrouped ConvBN (the FFNs' and the downsamplers' projections) runs on a
    channels-last input as one ``F.linear`` over the NHWC view, forward and backward (one GEMM each
    for the input and the weight gradient, no layout reorders); elsewhere, and under tracing, ONNX
    export and ``torch.compile``, as the convolution. The same function and gradients (float32
    round-off). Whether the linear form is used is per machine (``facelivt.cpu.cpu_defaults``
    ``train_linear_1x1``, measured per ISA by ``benchmarks/train_throughput.py``, rows cl and cl_conv);
    ``linear_1x1`` on an instance (:func:`set_linear_1x1`, ``model.linear_1x1`` of a training config)
    overrides it. On a GPU the default is the convolution.
    """

    linear_1x1: bool | None = None  # None: as machine_defaults().train_linear_1x1

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 1, stride: int = 1, groups: int = 1, bn_weight_init: float = 1.0):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size, stride, kernel_size // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)
        nn.init.constant_(self.bn.weight, bn_weight_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._as_linear(x):
            y = F.linear(x.permute(0, 2, 3, 1), self.conv.weight.flatten(1))  # (B, H, W, C_out), contiguous
            return self.bn(y.permute(0, 3, 1, 2))  # channels-last view, as the conv would return
        return self.bn(self.conv(x))

    def _as_linear(self, x: torch.Tensor) -> bool:
        c = self.conv
        if c.kernel_size != (1, 1) or c.stride != (1, 1) or c.groups != 1:
            return False
        if exporting():
            return False
        use = self.linear_1x1
        if use is None:  # the CPU measurement; on a GPU the convolution
            use = x.device.type == "cpu" and machine_defaults().train_linear_1x1
        return use and is_channels_last(x)

    @torch.no_grad()
    def reparameterize(self, residual: bool = True, fuse_bn: bool = True) -> nn.Module:
        if not fuse_bn:
            return self
        conv = _conv_like(self.conv, bias=True)
        conv.weight.copy_(fuse_conv_bn(self.conv.weight, None, self.bn)[0])
        conv.bias.copy_(fuse_conv_bn(self.conv.weight, None, self.bn)[1])
        return conv


class ChannelsLastNCHWGrad(torch.autograd.Function):
    """An NCHW tensor made channels-last whose gradient goes back NCHW (a plain ``contiguous`` would pass
    the channels-last gradient through, and the NCHW ops before it would run their slow mixed-layout path)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad.contiguous()


class RepConv(nn.Module):
    """``BN(Conv_kxk(x) + Conv_1x1(x))``, both convs with bias, same stride and groups.

    The two branches are kept as separate parameters (the released layout), but the forward pass
    runs them as one kxk convolution with the summed kernel (the 1x1 kernel zero-padded to kxk): convolution is linear in
    its kernel, so this is the same function with the same gradients for both branches (the 1x1
    branch receives the centre tap of the merged kernel's gradient), at the cost of one conv
    instead of two. On the 2-core reference CPU this cut a FaceLiVT-S training step by about 10 %
    (benchmarks/train_throughput.py), and it keeps oneDNN's channels-last backward off the strided
    1x1 convolution that crashed it.

    With ``nchw=True`` (the networks' first stem conv) a channels-last input is run NCHW through the
    convolution and the BatchNorm, and the result handed on channels-last with its gradient coming back
    NCHW (:class:`ChannelsLastNCHWGrad`): ATen's channels-last BatchNorm backward is several times slower
    than the NCHW one on maps with few channels (16-20 at 56x56 here; ``benchmarks/batchnorm_layouts.py``).
    """

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3, stride: int = 1, groups: int = 1, nchw: bool = False):
        super().__init__()
        self.conv_kxk = nn.Conv2d(in_ch, out_ch, kernel_size, stride, kernel_size // 2, groups=groups, bias=True)
        self.conv_1x1 = nn.Conv2d(in_ch, out_ch, 1, stride, 0, groups=groups, bias=True)
        self.bn = nn.BatchNorm2d(out_ch)
        self.nchw = nchw

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w, b = self.merged_branches()
        c = self.conv_kxk
        if self.nchw and is_channels_last(x) and not (torch.jit.is_tracing() or torch.jit.is_scripting()):
            y = self.bn(F.conv2d(x.contiguous(), w.contiguous(), b, c.stride, c.padding, c.dilation, c.groups))
            return ChannelsLastNCHWGrad.apply(y)
        return self.bn(F.conv2d(x, w, b, c.stride, c.padding, c.dilation, c.groups))

    def macs(self, x: torch.Tensor, out: torch.Tensor) -> int:
        """MACs of the two branch convolutions as two separate convs would count (ptflops rules, see
        facelivt.deploy.counting), so the train-form figures describe the network, not how it runs;
        the BatchNorm child counts itself."""
        positions = out.shape[0] * out.shape[2] * out.shape[3]
        c = self.conv_kxk
        per_tap = (c.in_channels // c.groups) * c.out_channels
        k = c.kernel_size[0] * c.kernel_size[1]
        return positions * (k * per_tap + c.out_channels) + positions * (per_tap + c.out_channels)

    def merged_branches(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Kernel and bias of the single kxk conv equal to the sum of both branches (the 1x1 kernel zero-padded to kxk)."""
        k = self.conv_kxk.kernel_size[0]
        pad = k // 2
        w = self.conv_kxk.weight + F.pad(self.conv_1x1.weight, [pad, pad, pad, pad])
        b = self.conv_kxk.bias + self.conv_1x1.bias
        return w, b

    def is_identity_compatible(self) -> bool:
        """True when ``x + self(x)`` can be folded into the kernel (stride 1, depthwise, C_in == C_out)."""
        c = self.conv_kxk
        return c.stride == (1, 1) and c.in_channels == c.out_channels and c.groups == c.in_channels

    @torch.no_grad()
    def reparameterize(self, residual: bool = True, fuse_bn: bool = True, add_identity: bool = False) -> nn.Module:
        w, b = self.merged_branches()
        if add_identity:
            if not (fuse_bn and self.is_identity_compatible()):
                raise ValueError("the identity can only be folded into a fused stride-1 depthwise RepConv")
        conv = _conv_like(self.conv_kxk, bias=True)
        if not fuse_bn:
            conv.weight.copy_(w)
            conv.bias.copy_(b)
            bn = nn.BatchNorm2d(self.bn.num_features, eps=self.bn.eps)
            bn.load_state_dict(self.bn.state_dict())
            return nn.Sequential(conv, bn)
        w, b = fuse_conv_bn(w, b, self.bn)
        if add_identity:
            k = w.shape[-1]
            w[:, 0, k // 2, k // 2] += 1.0
        conv.weight.copy_(w)
        conv.bias.copy_(b)
        return conv


class Residual(nn.Module):
    """``x + fn(x)``. Around a stride-1 depthwise RepConv this is DWMix (seed Eq. 6), whose identity
    folds into the kernel centre in the deploy form."""

    def __init__(self, fn: nn.Module):
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fn(x)

    @torch.no_grad()
    def reparameterize(self, residual: bool = True, fuse_bn: bool = True) -> nn.Module:
        if isinstance(self.fn, RepConv) and residual and fuse_bn and self.fn.is_identity_compatible():
            return self.fn.reparameterize(residual, fuse_bn, add_identity=True)
        return Residual(reparameterize_module(self.fn, residual=residual, fuse_bn=fuse_bn))


def dwmix(channels: int, kernel_size: int = 3) -> Residual:
    """DWMix token mixer: ``x + BN(DWConv_kxk(x) + DWConv_1x1(x))``."""
    return Residual(RepConv(channels, channels, kernel_size, 1, groups=channels))


class FFN(nn.Module):
    """Channel mixer: ConvBN_1x1(C -> rC) -> GELU -> ConvBN_1x1(rC -> C); last BN weight starts at 0."""

    def __init__(self, channels: int, ratio: int):
        super().__init__()
        self.fc1 = ConvBN(channels, channels * ratio)
        self.act = nn.GELU()
        self.fc2 = ConvBN(channels * ratio, channels, bn_weight_init=0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def token_mlp_macs(x: torch.Tensor, hidden: int) -> int:
    """MACs of MHLA's token MLPs on an NCHW ``x``: per-row linears ``N -> hidden -> N``, the bias
    counted for every row and GELU as ``2 * numel`` (see :mod:`facelivt.deploy.counting`)."""
    b, c, h, w = x.shape
    n, rows = h * w, b * c
    return rows * (n * hidden + hidden) + 2 * rows * hidden + rows * (hidden * n + n)


def attention_macs(x: torch.Tensor, heads: int, key_dim: int, value_dim: int) -> int:
    """MACs of MHSA's two attention matmuls on an NCHW ``x`` (the projections count as convs)."""
    b, c, h, w = x.shape
    n = h * w
    return b * heads * n * n * (key_dim + value_dim)


class MHLA(nn.Module):
    """Multi-Head Linear Attention (FaceLiVT, ICIP 2025).

    GroupNorm(1, C), then each of ``num_heads`` contiguous channel groups mixes its tokens with its own
    MLP ``Linear(N -> 4N) -> GELU -> Linear(4N -> N)``. All heads run in one batched matmul. Output
    channel ``j * num_heads + h`` holds channel ``j`` of head ``h`` (the released network's interleave).
    """

    def __init__(self, channels: int, num_tokens: int, num_heads: int = 16, expansion: int = 4):
        super().__init__()
        if channels % num_heads:
            raise InvalidInputError(f"MHLA: channels ({channels}) must be divisible by num_heads ({num_heads})")
        self.channels = channels
        self.num_heads = num_heads
        self.num_tokens = num_tokens
        hidden = expansion * num_tokens
        self.norm = nn.GroupNorm(1, channels)
        # Per head weights in nn.Linear layout: w1[h] is (4N, N), w2[h] is (N, 4N).
        self.w1 = nn.Parameter(torch.empty(num_heads, hidden, num_tokens))
        self.b1 = nn.Parameter(torch.zeros(num_heads, hidden))
        self.w2 = nn.Parameter(torch.empty(num_heads, num_tokens, hidden))
        self.b2 = nn.Parameter(torch.zeros(num_heads, num_tokens))
        trunc_normal_(self.w1)
        trunc_normal_(self.w2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        n = h * w
        if n != self.num_tokens:
            raise InvalidInputError(f"MHLA was built for {self.num_tokens} tokens but got a {h}x{w} map; build the model with the matching input_size")
        heads, per_head = self.num_heads, c // self.num_heads
        x = self.norm(x)
        channels_last = is_channels_last(x)
        # Heads first, rows = (image, channel of the head), columns = tokens: one batched GEMM per layer.
        if channels_last:
            t = x.permute(0, 2, 3, 1).reshape(b, n, heads, per_head).permute(2, 0, 3, 1)
        else:
            t = x.reshape(b, heads, per_head, n).transpose(0, 1)
        t = t.reshape(heads, b * per_head, n)
        t = torch.baddbmm(self.b1.unsqueeze(1), t, self.w1.transpose(1, 2))
        t = F.gelu(t)
        t = torch.baddbmm(self.b2.unsqueeze(1), t, self.w2.transpose(1, 2))
        t = t.reshape(heads, b, per_head, n)
        # Channel j of head h -> output channel j * heads + h (the released interleave).
        if channels_last:
            return t.permute(1, 3, 2, 0).reshape(b, h, w, c).permute(0, 3, 1, 2)
        return t.permute(1, 2, 0, 3).reshape(b, c, h, w)

    def macs(self, x: torch.Tensor, out: torch.Tensor) -> int:
        """MACs of the token MLPs (the GroupNorm child is counted on its own), see facelivt.deploy.counting."""
        return token_mlp_macs(x, self.w1.shape[1])

    def export_form(self, hw: tuple[int, int]) -> nn.Module:
        """The ONNX-friendly form of this block for an ``hw`` map (:class:`ExportMHLA`)."""
        return ExportMHLA(self, hw)


class MHSA(nn.Module):
    """Multi-head self-attention over the HxW tokens (the FaceLiVT *-MHSA variants): 6 heads, q/k dim 32, v dim C/2."""

    def __init__(self, channels: int, num_heads: int = 6, key_dim: int = 32, value_ratio: float = 0.5):
        super().__init__()
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.value_dim = int(channels * value_ratio)
        self.scale = key_dim**-0.5
        per_head = 2 * key_dim + self.value_dim
        self.qkv = ConvBN(channels, num_heads * per_head)
        self.proj = ConvBN(num_heads * self.value_dim, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        n = h * w
        qkv = self.qkv(x).reshape(b, self.num_heads, 2 * self.key_dim + self.value_dim, n)
        q, k, v = qkv.split([self.key_dim, self.key_dim, self.value_dim], dim=2)
        attn = torch.matmul(q.transpose(-2, -1), k) * self.scale  # (b, heads, n, n)
        attn = attn.softmax(dim=-1)
        out = torch.matmul(v, attn.transpose(-2, -1))  # (b, heads, dv, n)
        return self.proj(out.reshape(b, self.num_heads * self.value_dim, h, w))

    def macs(self, x: torch.Tensor, out: torch.Tensor) -> int:
        """MACs of the two attention matmuls (the projections are counted as convs)."""
        return attention_macs(x, self.num_heads, self.key_dim, self.value_dim)

    def export_form(self, hw: tuple[int, int]) -> nn.Module:
        """The ONNX-friendly form of this block for an ``hw`` map (:class:`ExportMHSA`)."""
        return ExportMHSA(self, hw)


class ExportMHLA(nn.Module):
    """MHLA for a fixed ``(H, W)`` map, formulated for ONNX; the same function (float32 round-off).

    The one-group GroupNorm is a LayerNormalization over (C, H, W) with the affine expanded to that
    shape; the heads go to the front, ``(He, B*C/He, N)``, so each head's token MLP is one MatMul
    whose rows are every channel of that head in the whole batch (He GEMMs of B*C/He rows instead of
    B*He GEMMs of C/He rows); the interleaved output layout is one Transpose. Every Reshape has a
    constant shape with the batch as -1, so a dynamic-batch graph has no Shape/Gather/Concat chains.
    """

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
        """Same count as :class:`MHLA` (token MLPs) plus its GroupNorm, which is functional here."""
        return token_mlp_macs(x, self.w1.shape[-1]) + 2 * x.numel()


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
        return attention_macs(x, self.heads, self.key_dim, self.value_dim)


class GAPHead(nn.Module):
    """The paper's head: global average pool -> BatchNorm1d -> Linear."""

    def __init__(self, channels: int, embedding_size: int):
        super().__init__()
        self.norm = nn.BatchNorm1d(channels)
        self.fc = nn.Linear(channels, embedding_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.norm(x.mean((2, 3))))

    def macs(self, x: torch.Tensor, out: torch.Tensor) -> int:
        return x.numel()  # the pooling; norm and fc are counted as modules

    @torch.no_grad()
    def reparameterize(self, residual: bool = True, fuse_bn: bool = True) -> nn.Module:
        if not fuse_bn:
            return self
        return PooledLinear(fuse_bn_linear(self.norm, self.fc))


class PooledLinear(nn.Module):
    """Deploy form of :class:`GAPHead`: mean over the map, then one Linear."""

    def __init__(self, fc: nn.Linear):
        super().__init__()
        self.fc = fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean((2, 3)))

    def macs(self, x: torch.Tensor, out: torch.Tensor) -> int:
        return x.numel()  # the pooling; fc is counted as a module


class GDCHead(nn.Module):
    """Global depthwise conv head (MobileFaceNet style): DWConv over the whole map + BN2d -> flatten ->
    Linear (no bias) -> BN1d."""

    def __init__(self, channels: int, embedding_size: int, map_size: int):
        super().__init__()
        self.dw = ConvBN(channels, channels, kernel_size=map_size, groups=channels)
        self.dw.conv.padding = (0, 0)
        self.fc = nn.Linear(channels, embedding_size, bias=False)
        self.norm = nn.BatchNorm1d(embedding_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.fc(self.dw(x).flatten(1)))

    @torch.no_grad()
    def reparameterize(self, residual: bool = True, fuse_bn: bool = True) -> nn.Module:
        if not fuse_bn:
            return self
        dw = self.dw.reparameterize(residual, fuse_bn)
        w, b = fuse_conv_bn(self.fc.weight, None, self.norm)
        fc = nn.Linear(self.fc.in_features, self.fc.out_features)
        fc.weight.copy_(w)
        fc.bias.copy_(b)
        return nn.Sequential(dw, nn.Flatten(1), fc)


@torch.no_grad()
def fuse_bn_linear(norm: nn.BatchNorm1d, fc: nn.Linear) -> nn.Linear:
    """One Linear equal to ``fc(norm(x))`` for an eval-mode BatchNorm1d *before* the Linear:
    ``W' = W * gamma / sqrt(var + eps)`` per input, ``b' = b + W @ (beta - mean * gamma / sqrt(var + eps))``."""
    scale = norm.weight / (norm.running_var + norm.eps).sqrt()
    shift = norm.bias - norm.running_mean * scale
    fused = nn.Linear(fc.in_features, fc.out_features)
    fused.weight.copy_(fc.weight * scale[None, :])
    fused.bias.copy_(fc.bias + fc.weight @ shift)
    return fused


def init_weights(model: nn.Module) -> None:
    """The networks' init: trunc-normal (std 0.02, cut at 2 std) for every conv and linear weight, zero
    biases. Norm layers keep their constructor values (weight 1, bias 0; the FFN's last BN weight 0)."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            trunc_normal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def set_linear_1x1(model: nn.Module, value: bool | None) -> nn.Module:
    """Set (True / False) or reset to the machine's default (None) the linear form of every 1x1
    :class:`ConvBN` in ``model`` (see there); returns ``model``."""
    for m in model.modules():
        if isinstance(m, ConvBN):
            m.linear_1x1 = value
    return model


def spatial_size(size: int, num_stride2: int) -> int:
    """Map size after ``num_stride2`` 3x3 stride-2 convs with padding 1 (ceil division each time)."""
    for _ in range(num_stride2):
        size = math.ceil(size / 2)
    return size
