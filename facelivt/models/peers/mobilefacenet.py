"""MobileFaceNet, the 512-d version used by insightface (a peer model for comparison only).

Stem ConvBlock(3 -> 64, 3x3 s2) and a depth-wise ConvBlock, then inverted-residual bottlenecks
(1x1 expand -> 3x3 depth-wise -> 1x1 linear projection) at 28, 14 and 7 pixels, a 1x1 ConvBlock to
512 channels and the GDC head: 7x7 depth-wise conv + BN -> flatten -> Linear(512 -> 512, no bias) -> BN1d.
ConvBlocks are Conv (no bias) + BN + PReLU. ``scale`` multiplies the widths (1 gives about 1 M
parameters; insightface's larger "mbf" uses 2). The deploy form folds every BatchNorm.
"""
from __future__ import annotations

import torch
from torch import nn

from facelivt.errors import InvalidInputError
from facelivt.models.layers import GDCHead, fuse_conv_bn


def _fused_conv(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, groups=conv.groups, bias=True)
    w, b = fuse_conv_bn(conv.weight, conv.bias, bn)
    with torch.no_grad():
        fused.weight.copy_(w)
        fused.bias.copy_(b)
    return fused


class ConvBlock(nn.Module):
    """Conv (no bias) -> BN -> PReLU."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 1, stride: int = 1, padding: int = 0, groups: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)
        self.act = nn.PReLU(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))

    @torch.no_grad()
    def reparameterize(self, residual: bool = True, fuse_bn: bool = True) -> nn.Module:
        if not fuse_bn:
            return self
        return nn.Sequential(_fused_conv(self.conv, self.bn), self.act)


class LinearBlock(nn.Module):
    """Conv (no bias) -> BN, no activation."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 1, stride: int = 1, padding: int = 0, groups: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))

    @torch.no_grad()
    def reparameterize(self, residual: bool = True, fuse_bn: bool = True) -> nn.Module:
        return _fused_conv(self.conv, self.bn) if fuse_bn else self


class DepthWise(nn.Module):
    """Inverted bottleneck: 1x1 ConvBlock(in -> groups) -> depth-wise 3x3 ConvBlock -> 1x1 LinearBlock(-> out)."""

    def __init__(self, in_ch: int, out_ch: int, residual: bool, stride: int, groups: int):
        super().__init__()
        self.residual = residual
        self.layers = nn.Sequential(
            ConvBlock(in_ch, groups),
            ConvBlock(groups, groups, 3, stride, 1, groups=groups),
            LinearBlock(groups, out_ch),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.layers(x)
        return x + y if self.residual else y


def residual_stack(channels: int, num_blocks: int, groups: int) -> nn.Sequential:
    return nn.Sequential(*(DepthWise(channels, channels, True, 1, groups) for _ in range(num_blocks)))


class MobileFaceNet(nn.Module):
    """MobileFaceNet with a 512-d GDC embedding head (insightface layout, ``blocks`` = (1, 4, 6, 2))."""

    def __init__(self, embedding_size: int = 512, blocks: tuple[int, int, int, int] = (1, 4, 6, 2), scale: int = 1, input_size: int = 112):
        super().__init__()
        if embedding_size < 1 or scale < 1:
            raise InvalidInputError("embedding_size and scale must be positive")
        if input_size % 16:
            raise InvalidInputError(f"MobileFaceNet needs an input size divisible by 16, got {input_size}")
        c1, c2 = 64 * scale, 128 * scale
        layers: list[nn.Module] = [ConvBlock(3, c1, 3, 2, 1)]
        if blocks[0] == 1:
            layers.append(ConvBlock(c1, c1, 3, 1, 1, groups=64))
        else:
            layers.append(residual_stack(c1, blocks[0], 128))
        layers += [
            DepthWise(c1, c1, False, 2, 128),
            residual_stack(c1, blocks[1], 128),
            DepthWise(c1, c2, False, 2, 256),
            residual_stack(c2, blocks[2], 256),
            DepthWise(c2, c2, False, 2, 512),
            residual_stack(c2, blocks[3], 256),
        ]
        self.layers = nn.Sequential(*layers)
        self.conv_sep = ConvBlock(c2, 512)
        self.features = GDCHead(512, embedding_size, input_size // 16)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise InvalidInputError(f"MobileFaceNet expects a Bx3xHxW batch, got shape {tuple(x.shape)}")
        return self.features(self.conv_sep(self.layers(x)))


def mobilefacenet(embedding_size: int = 512, scale: int = 1) -> MobileFaceNet:
    """MobileFaceNet, 512-d (about 1 M parameters at ``scale`` 1)."""
    return MobileFaceNet(embedding_size=embedding_size, scale=scale)
