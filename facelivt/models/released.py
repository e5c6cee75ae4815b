"""The authors' released checkpoint layout (the authors' ``backbones/facelivt.py``) mapped onto this project's modules."""
from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from facelivt.errors import FaceLiVTError
from facelivt.models.config import VARIANTS
from facelivt.models.registry import create_model

# Released variant names (as stored in their checkpoints) -> ours.
RELEASED_NAMES = {
    "facelivt_s": "facelivt_s",
    "facelivt_m": "facelivt_m",
    "facelivt_s_sa": "facelivt_s_mhsa",
    "facelivt_m_sa": "facelivt_m_mhsa",
    "facelivt_mplus_sa": "facelivt_mplus_mhsa",
    "facelivt_l_sa": "facelivt_l_mhsa",
}

_BN = r"(weight|bias|running_mean|running_var|num_batches_tracked)"
_REPCONV = {"conv": "conv_kxk", "repconv": "conv_1x1", "bn": "bn"}

# (pattern on their key, function giving our key) for every tensor except the per-head MHLA linears.
_RULES: list[tuple[re.Pattern, callable]] = [
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
    (re.compile(r"^stages\.(\d+)\.blocks\.(\d+)\.block\.0\.m\.(conv|repconv|bn)\.(.+)$"),
     lambda m: f"stages.{m[1]}.blocks.{m[2]}.mixer.fn.{_REPCONV[m[3]]}.{m[4]}"),
    (re.compile(r"^stages\.(\d+)\.blocks\.(\d+)\.block\.0\.m\.norm\.(weight|bias)$"),
     lambda m: f"stages.{m[1]}.blocks.{m[2]}.mixer.fn.norm.{m[3]}"),
    (re.compile(r"^stages\.(\d+)\.blocks\.(\d+)\.block\.0\.m\.(qkv_proj|out_proj)\.(c|bn)\.(.+)$"),
     lambda m: f"stages.{m[1]}.blocks.{m[2]}.mixer.fn.{'qkv' if m[3] == 'qkv_proj' else 'proj'}.{'conv' if m[4] == 'c' else 'bn'}.{m[5]}"),
    (re.compile(r"^stages\.(\d+)\.blocks\.(\d+)\.block\.1\.m\.pw([12])\.(c|bn)\.(.+)$"),
     lambda m: f"stages.{m[1]}.blocks.{m[2]}.ffn.fn.fc{m[3]}.{'conv' if m[4] == 'c' else 'bn'}.{m[5]}"),
    (re.compile(r"^head\.classifier\.bn\.(.+)$"), lambda m: f"head.norm.{m[1]}"),
    (re.compile(r"^head\.classifier\.l\.(weight|bias)$"), lambda m: f"head.fc.{m[1]}"),
]
_MHLA = re.compile(r"^stages\.(\d+)\.blocks\.(\d+)\.block\.0\.m\.linear([12])\.(\d+)\.(weight|bias)$")


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


def convert_released_state_dict(state_dict: Mapping[str, torch.Tensor], name: str) -> dict[str, torch.Tensor]:
    """Map the authors' train-form layout onto ``create_model(name)``'s state_dict.

    The per-head ``linear{1,2}.{h}`` MHLA layers are stacked into the batched ``w1/b1/w2/b2``. Raises
    :class:`CheckpointMismatchError` naming missing, unexpected or mis-shaped keys, and a wrong variant.
    """
    state_dict, stored_variant = unwrap_checkpoint(state_dict)
    if stored_variant is not None and RELEASED_NAMES.get(stored_variant, stored_variant) != name:
        raise CheckpointMismatchError(
            f"checkpoint holds variant {stored_variant!r} but model {name!r} was requested"
        )
    if name not in VARIANTS:
        raise CheckpointMismatchError(f"no released layout for model {name!r}; FaceLiVT variants: {sorted(VARIANTS)}")
    target = create_model(name).state_dict()

    out: dict[str, torch.Tensor] = {}
    heads: dict[tuple[str, str], dict[int, torch.Tensor]] = {}
    unexpected: list[str] = []
    for key, value in state_dict.items():
        m = _MHLA.match(key)
        if m:
            ours = f"stages.{m[1]}.blocks.{m[2]}.mixer.fn.{'w' if m[5] == 'weight' else 'b'}{m[3]}"
            heads.setdefault((ours, key.rsplit(".", 2)[0]), {})[int(m[4])] = value
            continue
        for pattern, rename in _RULES:
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
