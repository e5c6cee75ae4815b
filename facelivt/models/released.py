"""The authors' released checkpoint layout (the authors' ``backbones/facelivt.py``) mapped onto this project's modules."""
from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from facelivt.errors import FaceLiVTError
from facelivt.models.config import V2_VARIANTS, VARIANTS
from facelivt.models.registry import build_model

# Released variant names (as stored in their checkpoints) -> ours.
RELEASED_NAMES = {
    "facelivt_s": "facelivt_s",
    "facelivt_m": "facelivt_m",
    "facelivt_s_sa": "facelivt_s_mhsa",
    "facelivt_m_sa": "facelivt_m_mhsa",
    "facelivt_mplus_sa": "facelivt_mplus_mhsa",
    "facelivt_l_sa": "facelivt_l_mhsa",
    "facelivtv2_xs": "facelivtv2_xs",
    "facelivtv2_s": "facelivtv2_s",
    "facelivtv2_m": "facelivtv2_m",
    "facelivtv2_l": "facelivtv2_l",
}

_BN = r"(weight|bias|running_mean|running_var|num_batches_tracked)"
_REPCONV = {"conv": "conv_kxk", "repconv": "conv_1x1", "bn": "bn"}


def _ffn(prefix: str):
    return lambda m: f"stages.{m[1]}.blocks.{m[2]}.{prefix}.fc{m[3]}.{'conv' if m[4] == 'c' else 'bn'}.{m[5]}"


# (pattern on their key, function giving our key) for every tensor except the per-head MHLA linears.
_STEM_AND_DOWN: list[tuple[re.Pattern, callable]] = [
    (re.compile(r"^patch_embedds\.0\.stem\.([01])\.0\.(conv|repconv|bn)\.(.+)$"),
     lambda m: f"stem.{2 * int(m[1])}.{_REPCONV[m[2]]}.{m[3]}"),
    (re.compile(r"^patch_embedds\.([123])\.spatial\.0\.(conv|repconv|bn)\.(.+)$"),
     lambda m: f"stages.{m[1]}.downsample.dw.{_REPCONV[m[2]]}.{m[3]}"),
    (re.compile(r"^patch_embedds\.([123])\.spatial\.1\.c\.weight$"),
     lambda m: f"stages.{m[1]}.downsample.pw.conv.weight"),
    (re.compile(rf"^patch_embedds\.([123])\.spatial\.1\.bn\.{_BN}$"),
     lambda m: f"stages.{m[1]}.downsample.pw.bn.{m[2]}"),
    (re.compile(r"^patch_embedds\.([123])\.channel\.m\.pw([12])\.(c|bn)\.(.+)$"),
     lambda m: f"stages.{m[1]}.downsample.ffn.fn.fc{m[2]}.{'conv' if m[3] == 'c' else 'bn'}.{m[4]}"),
    (re.compile(r"^head\.classifier\.bn\.(.+)$"), lambda m: f"head.norm.{m[1]}"),
    (re.compile(r"^head\.classifier\.l\.(weight|bias)$"), lambda m: f"head.fc.{m[1]}"),
]
_RULES = _STEM_AND_DOWN + [
    (re.compile(r"^stages\.(\d+)\.blocks\.(\d+)\.block\.0\.m\.(conv|repconv|bn)\.(.+)$"),
     lambda m: f"stages.{m[1]}.blocks.{m[2]}.mixer.fn.{_REPCONV[m[3]]}.{m[4]}"),
    (re.compile(r"^stages\.(\d+)\.blocks\.(\d+)\.block\.0\.m\.norm\.(weight|bias)$"),
     lambda m: f"stages.{m[1]}.blocks.{m[2]}.mixer.fn.norm.{m[3]}"),
    (re.compile(r"^stages\.(\d+)\.blocks\.(\d+)\.block\.0\.m\.(qkv_proj|out_proj)\.(c|bn)\.(.+)$"),
     lambda m: f"stages.{m[1]}.blocks.{m[2]}.mixer.fn.{'qkv' if m[3] == 'qkv_proj' else 'proj'}.{'conv' if m[4] == 'c' else 'bn'}.{m[5]}"),
    (re.compile(r"^stages\.(\d+)\.blocks\.(\d+)\.block\.1\.m\.pw([12])\.(c|bn)\.(.+)$"), _ffn("ffn.fn")),
]
# Per-head linears, stacked into one (heads, ...) tensor: (pattern with the head index as group "h", our key).
_STACKED = [
    (re.compile(r"^stages\.(\d+)\.blocks\.(\d+)\.block\.0\.m\.linear([12])\.(?P<h>\d+)\.(weight|bias)$"),
     lambda m: f"stages.{m[1]}.blocks.{m[2]}.mixer.fn.{'w' if m[5] == 'weight' else 'b'}{m[3]}"),
]

# FaceLiVTv2 (the authors' ``backbones/facelivtv2.py``): block.0 is the RepMix conv (our ``mixer`` in stages 1-2, ``mixer.0`` in
# stages 3-4), block.1 the FFN (stages 1-2) or the Lite MHLA (``mixer.1``), block.2 the FFN (stages 3-4).
_V2_MIXED_FROM = 2  # first stage index with a Lite MHLA


def _v2_dw(m) -> str:
    where = "mixer.fn" if int(m[1]) < _V2_MIXED_FROM else "mixer.0.fn"
    return f"stages.{m[1]}.blocks.{m[2]}.{where}.{_REPCONV[m[3]]}.{m[4]}"


_V2_MHLA = {"ls": "ls", "norm.alpha": "alpha", "norm.beta": "beta"}
_V2_RULES = _STEM_AND_DOWN + [
    (re.compile(r"^stages\.(\d+)\.blocks\.(\d+)\.block\.0\.m\.(conv|repconv|bn)\.(.+)$"), _v2_dw),
    (re.compile(r"^stages\.([01])\.blocks\.(\d+)\.block\.1\.m\.pw([12])\.(c|bn)\.(.+)$"), _ffn("ffn.fn")),
    (re.compile(r"^stages\.(\d+)\.blocks\.(\d+)\.block\.2\.m\.pw([12])\.(c|bn)\.(.+)$"), _ffn("ffn.fn")),
    (re.compile(r"^stages\.(\d+)\.blocks\.(\d+)\.block\.1\.m\.(ls|norm\.alpha|norm\.beta)$"),
     lambda m: f"stages.{m[1]}.blocks.{m[2]}.mixer.1.fn.{_V2_MHLA[m[3]]}"),
    (re.compile(r"^pre_head\.([01])\.c\.weight$"), lambda m: f"head.{('proj', 'dw')[int(m[1])]}.conv.weight"),
    (re.compile(rf"^pre_head\.([01])\.bn\.{_BN}$"), lambda m: f"head.{('proj', 'dw')[int(m[1])]}.bn.{m[2]}"),
]
_V2_STACKED = [
    (re.compile(r"^stages\.(\d+)\.blocks\.(\d+)\.block\.1\.m\.lin\.(?P<h>\d+)\.(weight|bias)$"),
     lambda m: f"stages.{m[1]}.blocks.{m[2]}.mixer.1.fn.{m[4]}"),
]


class CheckpointMismatchError(FaceLiVTError, ValueError):
    """A checkpoint does not fit the requested model; the message names the offending keys."""


def _summarise(keys: list[str], limit: int = 8) -> str:
    keys = sorted(keys)
    more = f" ... and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def unwrap_checkpoint(obj) -> tuple[Mapping[str, torch.Tensor], str | None]:
    """Accept a bare state_dict or the common wrappers (``state_dict``, ``model``); strip ``module.``
    prefixes (DDP). Returns (state_dict, variant name stored in the file or None)."""
    variant = None
    if isinstance(obj, Mapping):
        if isinstance(obj.get("variant"), str):
            variant = obj["variant"]
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointMismatchError("the file does not hold a state_dict (a mapping of names to tensors)")
    if obj and all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj, variant


def is_released_layout(state_dict: Mapping[str, torch.Tensor]) -> bool:
    return any(k.startswith("patch_embedds.") for k in state_dict)


def _is_v2_layout(state_dict: Mapping[str, torch.Tensor]) -> bool:
    return any(k.startswith("pre_head.") or ".m.lin." in k for k in state_dict)


def _check_family(state_dict: Mapping[str, torch.Tensor], name: str) -> None:
    """A v1 checkpoint asked for as a v2 model (or the reverse) gets a message saying so."""
    if not state_dict or not is_released_layout(state_dict):
        return
    v2_file, v2_model = _is_v2_layout(state_dict), name in V2_VARIANTS
    if v2_file != v2_model:
        family = "FaceLiVTv2 (facelivtv2_*)" if v2_file else "FaceLiVT v1 (facelivt_*)"
        raise CheckpointMismatchError(f"the checkpoint has the released {family} layout, which does not fit model {name!r}")


def _map_keys(state_dict: Mapping[str, torch.Tensor], rules, stacked) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Rename with ``rules``; stack the per-head tensors matched by ``stacked`` along a new dim 0."""
    out: dict[str, torch.Tensor] = {}
    heads: dict[tuple[str, str], dict[int, torch.Tensor]] = {}
    unexpected: list[str] = []
    for key, value in state_dict.items():
        for pattern, rename in stacked:
            m = pattern.match(key)
            if m:
                heads.setdefault((rename(m), key[: m.start("h")].rstrip(".")), {})[int(m["h"])] = value
                break
        else:
            for pattern, rename in rules:
                m = pattern.match(key)
                if m:
                    out[rename(m)] = value
                    break
            else:
                unexpected.append(key)
    for (ours, theirs), per_head in heads.items():
        n = len(per_head)
        if sorted(per_head) != list(range(n)):
            raise CheckpointMismatchError(f"{theirs}: heads {sorted(per_head)} are not 0..{n - 1}")
        out[ours] = torch.stack([per_head[h] for h in range(n)])
    return out, unexpected


def convert_released_state_dict(state_dict: Mapping[str, torch.Tensor], name: str) -> dict[str, torch.Tensor]:
    """Map the authors' train-form layout (their ``backbones/facelivt.py``, or ``backbones/facelivtv2.py`` for FaceLiVTv2) onto
    ``create_model(name)``'s state_dict.

    The per-head ``linear{1,2}.{h}`` MHLA layers (v1) and ``lin.{h}`` Lite MHLA layers (v2) are stacked
    into the batched weights. Raises :class:`CheckpointMismatchError` naming missing, unexpected or
    mis-shaped keys, a wrong variant and a checkpoint of the other family.
    """
    state_dict, stored_variant = unwrap_checkpoint(state_dict)
    if stored_variant is not None and RELEASED_NAMES.get(stored_variant, stored_variant) != name:
        raise CheckpointMismatchError(
            f"checkpoint holds variant {stored_variant!r} but model {name!r} was requested"
        )
    if name not in VARIANTS and name not in V2_VARIANTS:
        raise CheckpointMismatchError(
            f"no released layout for model {name!r}; FaceLiVT variants: {sorted(VARIANTS) + sorted(V2_VARIANTS)}"
        )
    _check_family(state_dict, name)
    with torch.device("meta"):  # names and shapes only: no weight initialisation
        target = build_model(name).state_dict()
    rules, stacked = (_V2_RULES, _V2_STACKED) if name in V2_VARIANTS else (_RULES, _STACKED)
    out, unexpected = _map_keys(state_dict, rules, stacked)

    unexpected += [k for k in out if k not in target]
    missing = [k for k in target if k not in out]
    problems = []
    if missing:
        problems.append(f"missing keys for {name}: {_summarise(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_summarise(unexpected)}")
    shapes = [
        f"{k}: checkpoint {tuple(out[k].shape)} vs model {tuple(target[k].shape)}"
        for k in out
        if k in target and out[k].shape != target[k].shape
    ]
    if shapes:
        problems.append("shape mismatch (wrong variant or num_heads?): " + "; ".join(shapes[:6]) + (" ..." if len(shapes) > 6 else ""))
    if problems:
        raise CheckpointMismatchError(f"released checkpoint does not fit {name}: " + " | ".join(problems))
    return {k: out[k] for k in target}
