"""Model variants as data (the FaceLiVT variants of the paper, ICIP 2025)."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from facelivt.errors import InvalidInputError

HEADS = ("gap", "gdc")  # embedding heads: global average pooling (paper) or global depthwise conv


class _Overridable:
    """``with_overrides``: a copy with some fields changed; the published counts are dropped when a
    field really changes (they describe the default configuration only)."""

    def with_overrides(self, **overrides):
        valid = {f for f in self.__dataclass_fields__ if f != "reference_counts"}
        unknown = sorted(set(overrides) - valid)
        if unknown:
            raise InvalidInputError(f"unknown model option(s) {unknown}; valid options: {sorted(valid)}")
        if overrides:
            changed = {k: v for k, v in overrides.items() if getattr(self, k) != v}
            cfg = replace(self, **overrides)
            if changed:
                cfg = replace(cfg, reference_counts=None)
            return cfg
        return self


@dataclass(frozen=True)
class FaceLiVTConfig(_Overridable):
    dims: tuple[int, int, int, int]
    depths: tuple[int, int, int, int]
    mixer: str  # "mhla" or "mhsa" for stages 3-4; stages 1-2 are always DWMix
    num_heads: int = 16  # MHLA heads (He); MHSA always has 6
    embedding_size: int = 512
    head: str = "gap"  # "gap" (paper) or "gdc"
    mlp_ratio: int = 3
    down_ratio: int = 2
    input_size: int = 112
    # Deploy-form counts at 112x112 published in the FaceLiVT paper (params M, MACs M), for checks.
    reference_counts: tuple[float, float] | None = field(default=None, compare=False)

    def validate(self) -> None:
        if self.mixer not in ("mhla", "mhsa"):
            raise InvalidInputError(f"mixer must be 'mhla' or 'mhsa', got {self.mixer!r}")
        if self.head not in HEADS:
            raise InvalidInputError(f"head must be 'gap' or 'gdc', got {self.head!r}")
        if len(self.dims) != 4 or len(self.depths) != 4:
            raise InvalidInputError("dims and depths need 4 entries each")
        if self.embedding_size < 1:
            raise InvalidInputError("embedding_size must be positive")
        if self.mixer == "mhla":
            for c in self.dims[2:]:
                if c % self.num_heads:
                    raise InvalidInputError(f"num_heads={self.num_heads} must divide the stage-3/4 widths {self.dims[2:]}")


S_DIMS = (40, 80, 160, 320)
M_DIMS = (64, 128, 256, 512)
L_DIMS = (96, 192, 384, 768)
DEPTHS = (2, 4, 6, 2)

VARIANTS: dict[str, FaceLiVTConfig] = {
    "facelivt_s": FaceLiVTConfig(S_DIMS, DEPTHS, "mhla", reference_counts=(5.056, 160.4)),
    "facelivt_m": FaceLiVTConfig(M_DIMS, DEPTHS, "mhla", reference_counts=(9.746, 385.6)),
    "facelivt_s_mhsa": FaceLiVTConfig(S_DIMS, DEPTHS, "mhsa", reference_counts=(5.891, 237.3)),
    "facelivt_m_mhsa": FaceLiVTConfig(M_DIMS, DEPTHS, "mhsa", reference_counts=(14.306, 569.0)),
    "facelivt_mplus_mhsa": FaceLiVTConfig(M_DIMS, (3, 3, 9, 3), "mhsa", reference_counts=(20.240, 761.1)),
    "facelivt_l_mhsa": FaceLiVTConfig(L_DIMS, DEPTHS, "mhsa", reference_counts=(31.222, 1234.2)),
}


@dataclass(frozen=True)
class FaceLiVTv2Config(_Overridable):
    """FaceLiVTv2 (arXiv 2604.09127, the authors' ``backbones/facelivtv2.py``): RepMix stages 1-2, RepMix + Lite MHLA stages 3-4, FFN ratio 2,
    GDConv head. ``head`` is always "gdc" (the released 1x1 -> 1284 -> 4x4 depthwise head); it is a
    field so that training configs that name a head are checked rather than ignored."""

    dims: tuple[int, int, int, int]
    depths: tuple[int, int, int, int] = (3, 3, 9, 3)
    num_heads: int = 4  # Lite MHLA heads
    embedding_size: int = 512
    head: str = "gdc"
    head_channels: int = 1284  # width of the GDConv head, as in the released code
    mlp_ratio: int = 2
    down_ratio: int = 2
    input_size: int = 112
    reference_counts: tuple[float, float] | None = field(default=None, compare=False)

    def validate(self) -> None:
        if self.head != "gdc":
            raise InvalidInputError(f"FaceLiVTv2 has the GDConv head only: head must be 'gdc', got {self.head!r}")
        if len(self.dims) != 4 or len(self.depths) != 4:
            raise InvalidInputError("dims and depths need 4 entries each")
        if self.embedding_size < 1 or self.num_heads < 1:
            raise InvalidInputError("embedding_size and num_heads must be positive")
        for c in self.dims[2:]:
            if c % self.num_heads:
                raise InvalidInputError(f"num_heads={self.num_heads} must divide the stage-3/4 widths {self.dims[2:]}")


# Deploy-form counts of the released code at 112x112 (the authors' ``backbones/facelivtv2.py``; their README gives
# 8.52 M / 309 M for L, their code the figures below).
V2_VARIANTS: dict[str, FaceLiVTv2Config] = {
    "facelivtv2_xs": FaceLiVTv2Config((32, 64, 128, 256), reference_counts=(2.970, 90.2)),
    "facelivtv2_s": FaceLiVTv2Config((48, 96, 192, 320), reference_counts=(4.621, 179.0)),
    "facelivtv2_m": FaceLiVTv2Config((56, 112, 224, 448), reference_counts=(7.018, 257.5)),
    "facelivtv2_l": FaceLiVTv2Config((64, 128, 256, 512), reference_counts=(8.825, 332.3)),
}
