"""EdgeFace-XS (gamma = 0.6), a peer model for comparison only.

EdgeFace is EdgeNeXt-XS (dims 32, 64, 100, 192; depths 3, 3, 9, 3; conv-encoder kernels 3, 5, 7, 9
per stage; one split depth-wise transposed attention (SDTA) block closing stages 2-4, with cross
covariance attention (XCA) and a Fourier positional encoding in stage 2) with a 512-d head, in which
every ``Linear(d_in -> d_out)`` is a low-rank pair ``Linear(d_in -> r, no bias) + Linear(r -> d_out)``,
``r = max(2, int(min(d_in, d_out) * 0.6))``. Written from the published architecture; module names
follow the common EdgeNeXt layout (``stem``, ``stages.i.downsample``, ``stages.i.blocks.j``, ``head``).

The deploy form (``facelivt.reparameterize_model``) folds the layer-scale vectors into the last
linear layer of their branch; the function is unchanged.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from facelivt.errors import InvalidInputError
from facelivt.models.layers import trunc_normal_


def low_rank(in_features: int, out_features: int, rank_ratio: float) -> int:
    """The rank EdgeFace gives a ``Linear(in_features -> out_features)``."""
    return max(2, int(min(in_features, out_features) * rank_ratio))


class LowRankLinear(nn.Module):
    """``Linear(d_in -> r, no bias)`` followed by ``Linear(r -> d_out)``."""

    def __init__(self, in_features: int, out_features: int, rank: int, bias: bool = True):
        super().__init__()
        self.linear1 = nn.Linear(in_features, rank, bias=False)
        self.linear2 = nn.Linear(rank, out_features, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.linear1(x))

    @torch.no_grad()
    def scale_output(self, scale: torch.Tensor) -> None:
        """Multiply the output by a per-feature ``scale`` in place (layer-scale folding)."""
        self.linear2.weight.mul_(scale[:, None])
        if self.linear2.bias is not None:
            self.linear2.bias.mul_(scale)


def make_linear(in_features: int, out_features: int, rank_ratio: float | None, bias: bool = True) -> nn.Module:
    if rank_ratio is None:
        return nn.Linear(in_features, out_features, bias=bias)
    return LowRankLinear(in_features, out_features, low_rank(in_features, out_features, rank_ratio), bias=bias)


@torch.no_grad()
def _scale_linear_output(layer: nn.Module, scale: torch.Tensor) -> None:
    if isinstance(layer, LowRankLinear):
        layer.scale_output(scale)
    else:
        layer.weight.mul_(scale[:, None])
        if layer.bias is not None:
            layer.bias.mul_(scale)


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW map."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class Mlp(nn.Module):
    """``fc1 -> GELU -> fc2`` on channels-last tokens."""

    def __init__(self, dim: int, hidden: int, rank_ratio: float | None):
        super().__init__()
        self.fc1 = make_linear(dim, hidden, rank_ratio)
        self.act = nn.GELU()
        self.fc2 = make_linear(hidden, dim, rank_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class ConvEncoder(nn.Module):
    """EdgeNeXt conv encoder: depth-wise kxk conv -> LayerNorm -> MLP (x4) -> layer scale, residual."""

    def __init__(self, dim: int, kernel_size: int, expand_ratio: int, rank_ratio: float | None, ls_init: float = 1e-6):
        super().__init__()
        self.conv_dw = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, expand_ratio * dim, rank_ratio)
        self.gamma = nn.Parameter(ls_init * torch.ones(dim)) if ls_init > 0 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.mlp(self.norm(self.conv_dw(x).permute(0, 2, 3, 1)))
        if self.gamma is not None:
            y = self.gamma * y
        return x + y.permute(0, 3, 1, 2)

    @torch.no_grad()
    def reparameterize(self, residual: bool = True, fuse_bn: bool = True) -> nn.Module:
        if self.gamma is not None and fuse_bn:
            _scale_linear_output(self.mlp.fc2, self.gamma.detach())
            self.gamma = None
        return self


class FourierPositionalEncoding(nn.Module):
    """Sine/cosine encoding of the (y, x) position of each token, projected to ``dim`` channels."""

    def __init__(self, dim: int, hidden_dim: int = 32, temperature: float = 10000.0):
        super().__init__()
        self.token_projection = nn.Conv2d(hidden_dim * 2, dim, kernel_size=1)
        self.hidden_dim = hidden_dim
        self.temperature = temperature

    def encoding(self, height: int, width: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """The (1, 2*hidden_dim, H, W) raw encoding (before the projection)."""
        eps, scale = 1e-6, 2 * math.pi
        y = torch.arange(1, height + 1, dtype=torch.float32, device=device)[:, None].expand(height, width)
        x = torch.arange(1, width + 1, dtype=torch.float32, device=device)[None, :].expand(height, width)
        y = y / (height + eps) * scale
        x = x / (width + eps) * scale
        dim_t = torch.arange(self.hidden_dim, dtype=torch.float32, device=device)
        dim_t = self.temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / self.hidden_dim)
        px = x[:, :, None] / dim_t
        py = y[:, :, None] / dim_t
        px = torch.stack((px[:, :, 0::2].sin(), px[:, :, 1::2].cos()), dim=3).flatten(2)
        py = torch.stack((py[:, :, 0::2].sin(), py[:, :, 1::2].cos()), dim=3).flatten(2)
        return torch.cat((py, px), dim=2).permute(2, 0, 1)[None].to(dtype)

    def forward(self, height: int, width: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        return self.token_projection(self.encoding(height, width, device, dtype))


class CrossCovarianceAttention(nn.Module):
    """XCA: attention over channels; per head ``softmax(normalize(q) normalize(k)^T * temperature) v``."""

    def __init__(self, dim: int, num_heads: int, rank_ratio: float | None):
        super().__init__()
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = make_linear(dim, dim * 3, rank_ratio)
        self.proj = make_linear(dim, dim, rank_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 4, 1)
        q, k, v = qkv.unbind(0)  # each (b, heads, c/heads, n)
        attn = torch.matmul(F.normalize(q, dim=-1), F.normalize(k, dim=-1).transpose(-2, -1)) * self.temperature
        attn = attn.softmax(dim=-1)
        out = torch.matmul(attn, v).permute(0, 3, 1, 2).reshape(b, n, c)
        return self.proj(out)

    def macs(self, x: torch.Tensor, out: torch.Tensor) -> int:
        """The two channel-attention matmuls (the linears are counted as modules)."""
        b, n, c = x.shape
        d = c // self.num_heads
        return 2 * b * self.num_heads * d * d * n


class SDTABlock(nn.Module):
    """Split depth-wise transposed attention block: multi-scale depth-wise convs over channel splits,
    optional positional encoding, XCA, then LayerNorm -> MLP, each with layer scale; residual."""

    def __init__(self, dim: int, num_scales: int, num_heads: int, expand_ratio: int, use_pos_emb: bool, rank_ratio: float | None, ls_init: float = 1e-6):
        super().__init__()
        width = max(int(math.ceil(dim / num_scales)), int(math.floor(dim // num_scales)))
        self.width = width
        self.num_splits = max(1, num_scales - 1)
        self.convs = nn.ModuleList(nn.Conv2d(width, width, 3, padding=1, groups=width) for _ in range(self.num_splits))
        self.pos_embd = FourierPositionalEncoding(dim) if use_pos_emb else None
        self.norm_xca = nn.LayerNorm(dim, eps=1e-6)
        self.gamma_xca = nn.Parameter(ls_init * torch.ones(dim)) if ls_init > 0 else None
        self.xca = CrossCovarianceAttention(dim, num_heads, rank_ratio)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, expand_ratio * dim, rank_ratio)
        self.gamma = nn.Parameter(ls_init * torch.ones(dim)) if ls_init > 0 else None

    def cascade(self, parts: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """The multi-scale depth-wise convs over the channel splits (Res2Net style): split i (i >= 1) is
        added to the previous conv's output before its own conv; the last split passes through."""
        outs = []
        sp = parts[0]
        for i, conv in enumerate(self.convs):
            if i > 0:
                sp = sp + parts[i]
            sp = conv(sp)
            outs.append(sp)
        outs.append(parts[-1])
        return torch.cat(outs, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.cascade(x.chunk(self.num_splits + 1, dim=1))
        b, c, h, w = x.shape
        x = x.reshape(b, c, h * w).permute(0, 2, 1)
        if self.pos_embd is not None:
            x = x + self.pos_embd(h, w, x.device, x.dtype).reshape(1, c, h * w).permute(0, 2, 1)
        y = self.xca(self.norm_xca(x))
        if self.gamma_xca is not None:
            y = self.gamma_xca * y
        x = (x + y).reshape(b, h, w, c)
        y = self.mlp(self.norm(x))
        if self.gamma is not None:
            y = self.gamma * y
        return shortcut + y.permute(0, 3, 1, 2)

    @torch.no_grad()
    def reparameterize(self, residual: bool = True, fuse_bn: bool = True) -> nn.Module:
        if fuse_bn:
            if self.gamma_xca is not None:
                _scale_linear_output(self.xca.proj, self.gamma_xca.detach())
                self.gamma_xca = None
            if self.gamma is not None:
                _scale_linear_output(self.mlp.fc2, self.gamma.detach())
                self.gamma = None
        return self

    def export_form(self, hw: tuple[int, int]) -> nn.Module:
        """The ONNX-friendly form of this block for an ``hw`` map (:class:`ExportSDTA`)."""
        return ExportSDTA(self, hw)


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


class EdgeNeXtStage(nn.Module):
    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        depth: int,
        num_global_blocks: int,
        kernel_size: int,
        num_scales: int,
        num_heads: int,
        use_pos_emb: bool,
        expand_ratio: int,
        rank_ratio: float | None,
        downsample: bool,
    ):
        super().__init__()
        if downsample:
            self.downsample = nn.Sequential(LayerNorm2d(in_ch, eps=1e-6), nn.Conv2d(in_ch, out_ch, 2, stride=2))
        else:
            self.downsample = nn.Identity()
        blocks = []
        for i in range(depth):
            if i < depth - num_global_blocks:
                blocks.append(ConvEncoder(out_ch, kernel_size, expand_ratio, rank_ratio))
            else:
                blocks.append(SDTABlock(out_ch, num_scales, num_heads, expand_ratio, use_pos_emb, rank_ratio))
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


class EdgeNeXtHead(nn.Module):
    """Global average pool -> LayerNorm -> Linear (low-rank in EdgeFace)."""

    def __init__(self, channels: int, embedding_size: int, rank_ratio: float | None):
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=1e-6)
        self.fc = make_linear(channels, embedding_size, rank_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.norm(x.mean((2, 3))))

    def macs(self, x: torch.Tensor, out: torch.Tensor) -> int:
        return x.numel()  # the pooling; norm and fc are counted as modules


class EdgeFace(nn.Module):
    """EdgeNeXt backbone with a face-embedding head and low-rank linears (EdgeFace)."""

    def __init__(
        self,
        dims: tuple[int, ...] = (32, 64, 100, 192),
        depths: tuple[int, ...] = (3, 3, 9, 3),
        kernel_sizes: tuple[int, ...] = (3, 5, 7, 9),
        global_blocks: tuple[int, ...] = (0, 1, 1, 1),
        scales: tuple[int, ...] = (2, 2, 3, 4),
        use_pos_emb: tuple[bool, ...] = (False, True, False, False),
        num_heads: int = 4,
        expand_ratio: int = 4,
        embedding_size: int = 512,
        rank_ratio: float | None = 0.6,
    ):
        super().__init__()
        if embedding_size < 1:
            raise InvalidInputError("embedding_size must be positive")
        if rank_ratio is not None and not 0 < rank_ratio <= 1:
            raise InvalidInputError(f"rank_ratio must be in (0, 1] or None, got {rank_ratio}")
        self.stem = nn.Sequential(nn.Conv2d(3, dims[0], 4, stride=4), LayerNorm2d(dims[0], eps=1e-6))
        stages = []
        prev = dims[0]
        for i, dim in enumerate(dims):
            stages.append(
                EdgeNeXtStage(prev, dim, depths[i], global_blocks[i], kernel_sizes[i], scales[i], num_heads, use_pos_emb[i], expand_ratio, rank_ratio, downsample=i > 0)
            )
            prev = dim
        self.stages = nn.Sequential(*stages)
        self.head = EdgeNeXtHead(dims[-1], embedding_size, rank_ratio)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise InvalidInputError(f"EdgeFace expects a Bx3xHxW batch, got shape {tuple(x.shape)}")
        return self.head(self.stages(self.stem(x)))


def edgeface_xs(embedding_size: int = 512, rank_ratio: float | None = 0.6) -> EdgeFace:
    """EdgeFace-XS (gamma = 0.6): about 1.77 M parameters and 154 M MACs at 112x112."""
    return EdgeFace(embedding_size=embedding_size, rank_ratio=rank_ratio)
