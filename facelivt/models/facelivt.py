"""The FaceLiVT network (FaceLiVT, ICIP 2025): a conv stem, two stages of RepConv/DWMix blocks,
two stages of MHLA (or MHSA) blocks, and a GDC or GAP embedding head."""
from __future__ import annotations

import torch
from torch import nn

from facelivt.errors import InvalidInputError
from facelivt.models.config import FaceLiVTConfig
from facelivt.models.layers import (
    FFN, GAPHead, GDCHead, MHLA, MHSA, ConvBN, RepConv, Residual, compiling, dwmix, init_weights, spatial_size,
)


class Block(nn.Module):
    """``x = x + TokenMixer(x); x = x + FFN(x)``."""

    def __init__(self, mixer: nn.Module, channels: int, mlp_ratio: int):
        super().__init__()
        self.mixer = mixer
        self.ffn = Residual(FFN(channels, mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ffn(self.mixer(x))


class Downsample(nn.Module):
    """``RepConv(3x3, s2, depthwise) -> ConvBN_1x1(C_in -> C_out) -> x + FFN_r2(x)``."""

    def __init__(self, in_ch: int, out_ch: int, ratio: int):
        super().__init__()
        self.dw = RepConv(in_ch, in_ch, 3, 2, groups=in_ch)
        self.pw = ConvBN(in_ch, out_ch)
        self.ffn = Residual(FFN(out_ch, ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ffn(self.pw(self.dw(x)))


class Stage(nn.Module):
    def __init__(self, downsample: nn.Module | None, blocks: list[nn.Module]):
        super().__init__()
        self.downsample = downsample if downsample is not None else nn.Identity()
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


class FaceLiVT(nn.Module):
    """FaceLiVT: RepConv stem, DWMix stages 1-2, MHLA or MHSA stages 3-4, embedding head."""

    def __init__(self, cfg: FaceLiVTConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.channels_last = False  # set by reparameterize_model (its layout: per machine, facelivt.cpu.cpu_defaults)
        c1 = cfg.dims[0]
        self.stem = nn.Sequential(
            RepConv(3, c1 // 2, 3, 2, nchw=True),
            nn.GELU(),
            RepConv(c1 // 2, c1, 3, 2),
        )
        stages = []
        for i, (dim, depth) in enumerate(zip(cfg.dims, cfg.depths)):
            down = Downsample(cfg.dims[i - 1], dim, cfg.down_ratio) if i > 0 else None
            size = spatial_size(cfg.input_size, 2 + i)
            blocks = [Block(self._mixer(i, dim, size), dim, cfg.mlp_ratio) for _ in range(depth)]
            stages.append(Stage(down, blocks))
        self.stages = nn.Sequential(*stages)
        last = cfg.dims[-1]
        if cfg.head == "gap":
            self.head = GAPHead(last, cfg.embedding_size)
        else:
            self.head = GDCHead(last, cfg.embedding_size, spatial_size(cfg.input_size, 5))
        init_weights(self)

    def _mixer(self, stage: int, dim: int, size: int) -> nn.Module:
        if stage < 2:
            return dwmix(dim)
        if self.cfg.mixer == "mhla":
            return Residual(MHLA(dim, size * size, self.cfg.num_heads))
        return Residual(MHSA(dim))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # skipped under torch.compile: inductor (torch 2.13, CPU) built a graph with this check around the NCHW
        # deploy form that crashed the process (tests/deploy/test_optimize.py); the compiled graph is shape-guarded anyway
        if not compiling() and (x.dim() != 4 or x.shape[1] != 3):
            raise InvalidInputError(f"FaceLiVT expects a Bx3xHxW batch, got shape {tuple(x.shape)}")
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.head(self.forward_features(x))
