"""FaceLiVTv2 (arXiv 2604.09127), built on the v1 layers: the same stem, down-sampling, DWMix
(RepMix) and FFN blocks, plus the Lite MHLA token mixer and the GDConv head defined here.

Stages 1-2: ``x + RepConv_dw(x)`` then ``x + FFN_r2(x)`` (v1's :class:`Block` around DWMix).
Stages 3-4: ``x + RepConv_dw(x)``, ``x + LiteMHLA(x)``, ``x + FFN_r2(x)`` (the same Block whose mixer
is DWMix followed by the residual Lite MHLA).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from facelivt.errors import InvalidInputError
from facelivt.models.config import FaceLiVTv2Config
from facelivt.models.facelivt import Block, Downsample, Stage
from facelivt.models.layers import (
    ConvBN, RepConv, Residual, dwmix, exporting, fuse_bn_linear, in_onnx_export, init_weights, is_channels_last, spatial_size,
    trunc_normal_,
)


class LiteMHLA(nn.Module):
    """Lite multi-head linear attention (FaceLiVTv2, arXiv 2604.09127).

    ``ls * concat_h(Linear_h(alpha * x + beta))``: an affine rescale per channel (no normalisation),
    then each of ``num_heads`` contiguous channel groups mixes its N tokens with its own
    ``Linear(N -> N)``, then a per-channel layer scale. All heads run as one batched matmul of the
    (B, heads, C/heads, N) view by a (heads, N, N) weight: no loop over heads.
    """

    def __init__(self, channels: int, num_tokens: int, num_heads: int = 4):
        super().__init__()
        if channels % num_heads:
            raise InvalidInputError(f"LiteMHLA: channels ({channels}) must be divisible by num_heads ({num_heads})")
        self.channels, self.num_tokens, self.num_heads = channels, num_tokens, num_heads
        self.alpha = nn.Parameter(torch.full((1, channels, 1), 1e-5))
        self.beta = nn.Parameter(torch.zeros(1, channels, 1))
        self.weight = nn.Parameter(trunc_normal_(torch.empty(num_heads, num_tokens, num_tokens)))  # nn.Linear layout per head
        self.bias = nn.Parameter(torch.zeros(num_heads, num_tokens))
        self.ls = nn.Parameter(torch.full((channels, 1, 1), 1e-5))
        side = math.isqrt(num_tokens)
        self.side = side if side * side == num_tokens else None  # maps are square at a square input

    def _check(self, x: torch.Tensor) -> None:
        if torch.jit.is_tracing() or in_onnx_export():
            return  # shapes are traced values there; the eager model has checked them
        n = x.shape[2] * x.shape[3]
        if n != self.num_tokens:
            raise InvalidInputError(f"LiteMHLA was built for {self.num_tokens} tokens but got a {x.shape[2]}x{x.shape[3]} map; "
                             "build the model with the matching input_size")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        b, c, h, w = x.shape
        t = self.alpha * x.reshape(b, c, h * w) + self.beta
        t = torch.matmul(t.reshape(b, self.num_heads, c // self.num_heads, h * w), self.weight.transpose(1, 2))
        t = t + self.bias.unsqueeze(1)
        return t.reshape(b, c, h, w) * self.ls

    def macs(self, x: torch.Tensor, out: torch.Tensor) -> int:
        """The per-head token Linears as the released nn.Linear modules count (ptflops rules, see
        facelivt.deploy.counting): numel(input) * N, plus N per head for the bias."""
        return x.numel() * self.num_tokens + self.num_heads * self.num_tokens

    def folded(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The exact fold of alpha, beta, ls and the head biases around the token Linear: for channel c
        of head h, ``ls_c * (W_h (alpha_c x_c + beta_c) + b_h) = s_c * (W_h x_c) + B_c`` with
        ``s_c = ls_c alpha_c`` (shape (1, C, 1)) and ``B_c = ls_c (beta_c W_h 1 + b_h)`` (shape (1, C, N))."""
        c, n, heads = self.channels, self.num_tokens, self.num_heads
        ls = self.ls.reshape(heads, c // heads, 1)
        row_sums = self.weight.sum(dim=2).unsqueeze(1)  # (heads, 1, N): W_h 1
        bias = ls * (self.beta.reshape(heads, c // heads, 1) * row_sums + self.bias.unsqueeze(1))
        return (self.ls.reshape(1, c, 1) * self.alpha), bias.reshape(1, c, n)

    @torch.no_grad()
    def reparameterize(self, residual: bool = True, fuse_bn: bool = True) -> nn.Module:
        folded = LiteMHLAFolded(self.channels, self.num_tokens, self.num_heads)
        folded.load_state_dict(self.state_dict())
        return folded


class LiteMHLAFolded(LiteMHLA):
    """Deploy form of :class:`LiteMHLA`: ``s_c * (W_h x_c) + B_c`` (see :meth:`LiteMHLA.folded`), one
    token matmul, one per-channel scale and one bias instead of the affine, the Linear's bias and the
    layer scale.

    It keeps the train form's parameters (so the deploy form has the released deploy form's parameter
    count and its state_dict loads either way); ``s`` and ``B`` are computed from them once and cached
    until a parameter changes (in place or by ``.to()``). Traced, scripted, compiled and ONNX graphs
    compute them from the parameters, which the exporters' constant folding turns into constants.

    Channels-last input (the default deploy layout): the same product on the (B, N, C) view, ``W_h``
    times the (N, C/heads) slice of head h, batched over heads: again one matmul, no copy of the input.
    """

    def __init__(self, channels: int, num_tokens: int, num_heads: int = 4):
        super().__init__(channels, num_tokens, num_heads)
        self._cache: tuple | None = None

    def _scale_bias(self) -> tuple[torch.Tensor, torch.Tensor]:
        if exporting():
            return self.folded()
        params = (self.weight, self.bias, self.alpha, self.beta, self.ls)
        if torch.is_grad_enabled() and any(p.requires_grad for p in params):
            return self.folded()
        key = tuple((p.data_ptr(), p._version, p.dtype) for p in params)
        if self._cache is None or self._cache[0] != key:
            with torch.no_grad():
                self._cache = (key, *self.folded())
        return self._cache[1], self._cache[2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        scale, bias = self._scale_bias()
        if exporting() or not is_channels_last(x):
            return self._forward_nchw(x, scale, bias)
        b, c, h, w = x.shape
        n, heads = h * w, self.num_heads
        t = x.permute(0, 2, 3, 1).reshape(b, n, heads, c // heads).transpose(1, 2)  # (B, heads, N, C/heads)
        t = torch.matmul(self.weight, t).transpose(1, 2).reshape(b, n, c)
        t = t * scale.reshape(1, 1, c) + bias.transpose(1, 2)
        return t.reshape(b, h, w, c).permute(0, 3, 1, 2)

    def _forward_nchw(self, x: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """Shapes from the module, the batch as -1: a traced or ONNX graph has constant Reshapes only
        (no Shape/Gather chains) and one MatMul, one Mul, one Add."""
        c, n, heads = self.channels, self.num_tokens, self.num_heads
        out_shape = (-1, c, self.side, self.side) if self.side else (-1, c, *x.shape[2:])
        t = torch.matmul(x.reshape(-1, heads, c // heads, n), self.weight.transpose(1, 2))
        return (t.reshape(-1, c, n) * scale + bias).reshape(out_shape)

    @torch.no_grad()
    def reparameterize(self, residual: bool = True, fuse_bn: bool = True) -> nn.Module:
        return self


class GDConvHead(nn.Module):
    """The released FaceLiVTv2 head: ConvBN_1x1(C -> 1284) -> ConvBN(4x4 depthwise, no padding) ->
    flatten -> BatchNorm1d -> Linear(1284 -> embedding, with bias). No activation."""

    def __init__(self, channels: int, embedding_size: int, map_size: int, width: int = 1284):
        super().__init__()
        self.proj = ConvBN(channels, width)
        self.dw = ConvBN(width, width, kernel_size=map_size, groups=width)
        self.dw.conv.padding = (0, 0)
        self.norm = nn.BatchNorm1d(width)
        self.fc = nn.Linear(width, embedding_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.norm(self.dw(self.proj(x)).flatten(1)))

    @torch.no_grad()
    def reparameterize(self, residual: bool = True, fuse_bn: bool = True) -> nn.Module:
        if not fuse_bn:
            return self
        return nn.Sequential(self.proj.reparameterize(), self.dw.reparameterize(), nn.Flatten(1),
                             fuse_bn_linear(self.norm, self.fc))


class FaceLiVTv2(nn.Module):
    """FaceLiVTv2: RepConv stem, RepMix stages 1-2, RepMix + Lite MHLA stages 3-4, GDConv head."""

    def __init__(self, cfg: FaceLiVTv2Config):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.channels_last = False  # set by reparameterize_model, as for v1
        c1 = cfg.dims[0]
        self.stem = nn.Sequential(RepConv(3, c1 // 2, 3, 2, nchw=True), nn.GELU(), RepConv(c1 // 2, c1, 3, 2))
        stages = []
        for i, (dim, depth) in enumerate(zip(cfg.dims, cfg.depths)):
            down = Downsample(cfg.dims[i - 1], dim, cfg.down_ratio) if i > 0 else None
            tokens = spatial_size(cfg.input_size, 2 + i) ** 2
            stages.append(Stage(down, [Block(self._mixer(i, dim, tokens), dim, cfg.mlp_ratio) for _ in range(depth)]))
        self.stages = nn.Sequential(*stages)
        self.head = GDConvHead(cfg.dims[-1], cfg.embedding_size, spatial_size(cfg.input_size, 5), cfg.head_channels)
        init_weights(self)

    def _mixer(self, stage: int, dim: int, tokens: int) -> nn.Module:
        if stage < 2:
            return dwmix(dim)
        return nn.Sequential(dwmix(dim), Residual(LiteMHLA(dim, tokens, self.cfg.num_heads)))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise InvalidInputError(f"FaceLiVTv2 expects a Bx3xHxW batch, got shape {tuple(x.shape)}")
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.head(self.forward_features(x))
