"""Model variants as data (the FaceLiVT variants of the paper, ICIP 2025)."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from facelivt.errors import InvalidInputError

HEADS = ("gap", "gdc")  # embedding heads: global average pooling (paper) or global depthwise conv


@dataclass(frozen=True)
class FaceLiVTConfig:
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

    def with_overrides(self, **overrides) -> "FaceLiVTConfig":
        valid = {f for f in self.__dataclass_fields__ if f != "reference_counts"}
        unknown = sorted(set(overrides) - valid)
        if unknown:
            raise InvalidInputError(f"unknown model option(s) {unknown}; valid options: {sorted(valid)}")
        if overrides:
            # Published counts describe the default configuration only.
            changed = {k: v for k, v in overrides.items() if getattr(self, k) != v}
            cfg = replace(self, **overrides)
            if changed:
                cfg = replace(cfg, reference_counts=None)
            return cfg
        return self

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
