"""Weights on disk: safetensors for this project, ``torch.load(weights_only=True)`` for torch checkpoints
(told apart by content, see :mod:`facelivt.models.checkpoint_io`)."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save
from torch import nn

from facelivt.errors import InvalidInputError, check_input_file
from facelivt.files import hash_rest, write_bytes, write_text
from facelivt.models.card import CARD_KEY, ModelCard, card_metadata, side_card_path
from facelivt.models.checkpoint_io import SAFETENSORS, safe_torch_load, sniff_format
from facelivt.models.released import CheckpointMismatchError, convert_released_state_dict, is_released_layout, unwrap_checkpoint
from facelivt.models.registry import build_model, check_model_name
from facelivt.models.reparam import reparameterize_model


def model_metadata(model: nn.Module) -> dict[str, str]:
    """String metadata stored beside the tensors: model name, config overrides and form."""
    meta = {"format": "facelivt"}
    name = getattr(model, "model_name", None)
    if name:
        meta["model"] = name
    overrides = getattr(model, "model_overrides", None)
    if overrides:
        meta["overrides"] = json.dumps(overrides, sort_keys=True)
    options = getattr(model, "deploy_options", None)
    meta["form"] = "deploy" if options else "train"
    if options:
        meta["deploy_options"] = json.dumps(options, sort_keys=True)
    return meta


def serialise_safetensors(tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> bytes:
    """The bytes of a safetensors file (safetensors' own writer reports a full disk as a
    ``SafetensorError`` rather than an ``OSError``, so files are serialised in memory first)."""
    return save(tensors, metadata=metadata)


def atomic_save_file(tensors: dict[str, torch.Tensor], path: str | os.PathLike, metadata: dict[str, str] | None = None) -> None:
    """Write a safetensors file atomically (:func:`facelivt.files.write_bytes`): a crash or a full disk
    never leaves half a file, and an earlier file of that name stays as it was."""
    write_bytes(path, serialise_safetensors(tensors, metadata))


def save_weights(model: nn.Module, path: str | os.PathLike, extra_metadata: dict[str, str] | None = None,
                 card: ModelCard | None = None) -> None:
    """Save ``model``'s state_dict as safetensors, with its name and form in the metadata and, when
    given, its model ``card`` (:mod:`facelivt.models.card`)."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    meta = model_metadata(model)
    meta.update(extra_metadata or {})
    meta.update(card_metadata(card))
    atomic_save_file(tensors, path, meta)


def _may_rewrite(path: Path) -> bool:
    """True for a safetensors file this process may replace: the file and its folder writable, and
    the file not marked read-only (no write permission bit: refused even where root could write it)."""
    return (sniff_format(path) == SAFETENSORS and bool(path.stat().st_mode & 0o222)
            and os.access(path, os.W_OK) and os.access(path.resolve().parent, os.W_OK))


def store_card(weights: str | os.PathLike, card: ModelCard, *, rewrite: bool = True) -> Path:
    """Record ``card`` for the weights file ``weights`` and return the file written: the weights
    themselves (the metadata replaced, the tensors bit-identical, written atomically) when ``rewrite``
    and the file is a safetensors file this process may replace; else the side file
    ``WEIGHTS.card.json`` (a pretrained cache entry, a read-only file, a torch checkpoint). An older
    side file is removed when the card goes into the weights (it would hide the new card)."""
    path = check_input_file(weights, "weights file")
    side = side_card_path(path)
    if rewrite and _may_rewrite(path):
        tensors, meta = read_safetensors(path)
        atomic_save_file(tensors, path, {**meta, **card_metadata(card)})
        side.unlink(missing_ok=True)
        return path
    write_text(side, json.dumps(json.loads(card.to_json()), indent=1, sort_keys=True) + "\n")
    return side


def copy_with_card(name: str, weights: str | os.PathLike, out: str | os.PathLike, card: ModelCard) -> Path:
    """Write the weights of ``name`` in ``weights`` to the safetensors file ``out`` with ``card``: a
    safetensors input keeps its tensors bit-identical; a torch checkpoint is converted (train form)."""
    path = check_input_file(weights, "weights file")
    if sniff_format(path) == SAFETENSORS:
        tensors, meta = read_safetensors(path)
    else:
        state_dict, meta = read_checkpoint(path)
        model = fit_state_dict(name, state_dict, meta, str(path))
        tensors, meta = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, model_metadata(model)
    atomic_save_file(tensors, out, {**meta, **card_metadata(card)})
    return Path(out)


def weights_fingerprint(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of what a weights file holds, blind to its model card: for safetensors, of its
    header without the card (keys sorted: safetensors writes metadata in no fixed order) and of its
    tensor bytes; for other files, of the file. It stays the same when ``facelivt calibrate`` records
    a threshold in the file, so galleries keyed by it stay usable."""
    path = Path(path)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        if sniff_format(path) == SAFETENSORS:
            size = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(size))
            header.get("__metadata__", {}).pop(CARD_KEY, None)
            h.update(json.dumps(header, sort_keys=True).encode())
        hash_rest(f, h)
    return h.hexdigest()


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The string metadata of a safetensors file (its tensors are not read)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise InvalidInputError(f"cannot read safetensors file {path}: {exc} (corrupt or truncated?)") from exc


def read_safetensors(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and string metadata of a safetensors file; a damaged file raises :class:`InvalidInputError`."""
    meta = read_metadata(path)
    try:
        return load_file(str(path)), meta
    except (SafetensorError, OSError, ValueError) as exc:
        raise InvalidInputError(f"cannot read safetensors file {path}: {exc} (corrupt or truncated?)") from exc


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read tensors + metadata from a safetensors file or (safely) from a torch checkpoint.

    The format is told by the file's content, not its name (see :func:`sniff_format`): a
    safetensors file named ``.pt`` loads as safetensors and a torch checkpoint named
    ``.safetensors`` as a torch checkpoint; a file that is neither gets a message saying so."""
    path = check_input_file(path, "weights file")
    if sniff_format(path) == SAFETENSORS:
        return read_safetensors(path)
    obj = safe_torch_load(path, what="checkpoint")
    state_dict, variant = unwrap_checkpoint(obj)
    meta = {"released_variant": variant} if variant else {}
    return dict(state_dict), meta


def load_state_dict_strict(model: nn.Module, state_dict: dict[str, torch.Tensor], what: str) -> None:
    """``load_state_dict`` whose errors name the missing, unexpected and mis-shaped keys."""
    target = model.state_dict()
    missing = sorted(set(target) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(target))
    shapes = [f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(target[k].shape)}" for k in target if k in state_dict and state_dict[k].shape != target[k].shape]
    problems = []
    if missing:
        problems.append(f"missing keys: {', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}")
    if unexpected:
        problems.append(f"unexpected keys: {', '.join(unexpected[:8])}{' ...' if len(unexpected) > 8 else ''}")
    if shapes:
        problems.append("shape mismatch: " + "; ".join(shapes[:6]))
    if problems:
        raise CheckpointMismatchError(f"{what} does not fit the model: " + " | ".join(problems))
    model.load_state_dict(state_dict)


def _build(name: str, options: dict, deploy_options: dict | None) -> nn.Module:
    model = build_model(name, **options).eval()
    return model if deploy_options is None else reparameterize_model(model, **deploy_options)


def empty_model(name: str, options: dict, deploy_options: dict | None = None) -> nn.Module:
    """``name`` built with ``options`` (and in deploy form with ``deploy_options`` when given), in eval
    mode, for weights to be loaded into: its parameters and buffers are allocated but not initialised.

    The model is built on the ``meta`` device (shapes, dtypes and memory layouts only, so none of the
    random initialisation the weights overwrite is run) and then given CPU storage of the same
    layout; ``load_state_dict`` fills it exactly as it fills a model built the ordinary way. A model
    with a buffer that weights do not hold (``persistent=False``), or whose builder cannot run on the
    meta device, is built the ordinary way."""
    try:
        with torch.device("meta"):
            model = _build(name, options, deploy_options)
    except (NotImplementedError, RuntimeError):  # a builder that reads tensor values while building
        return _build(name, options, deploy_options)
    saved = model.state_dict()
    if any(key not in saved for key, _ in model.named_buffers()):
        return _build(name, options, deploy_options)
    return _allocate(model)


def _allocate(model: nn.Module) -> nn.Module:
    """Give every parameter and buffer of ``model`` (on the meta device) uninitialised CPU storage of the
    same shape, strides and dtype. (``model.to_empty`` would go through torch's Python version of
    ``empty_like`` for meta tensors, which imports sympy: a third of a second at start-up.)"""
    def empty(t: torch.Tensor) -> torch.Tensor:
        return torch.empty_strided(t.size(), t.stride(), dtype=t.dtype, device="cpu")

    for module in model.modules():
        for key, param in list(module.named_parameters(recurse=False)):
            module.register_parameter(key, nn.Parameter(empty(param), requires_grad=param.requires_grad))
        for key, buf in list(module.named_buffers(recurse=False)):
            module.register_buffer(key, empty(buf))
    return model


def fit_state_dict(
    name: str, state_dict: dict[str, torch.Tensor], meta: dict[str, str], what: str, **overrides
) -> nn.Module:
    """Build ``name`` in the form ``meta`` says (train, or deploy with its options; the saved model
    options unless ``overrides`` change them) and load ``state_dict`` into it with a strict key and
    shape match (released layouts are converted first). Returns the model in eval mode."""
    check_model_name(name)  # an unknown name is that, whatever the weights hold
    if meta.get("model") and meta["model"] != name:
        raise CheckpointMismatchError(f"{what} holds weights of {meta['model']!r}, not {name!r}")
    # Options the weights were trained with (e.g. head="gdc"), unless the caller overrides them.
    saved = json.loads(meta.get("overrides", "{}"))
    deploy_options = json.loads(meta.get("deploy_options", "{}")) if meta.get("form") == "deploy" else None
    model = empty_model(name, {**saved, **overrides}, deploy_options)
    if deploy_options is None and (meta.get("released_variant") or is_released_layout(state_dict)):
        if meta.get("released_variant"):
            state_dict = {"variant": meta["released_variant"], "state_dict": state_dict}
        state_dict = convert_released_state_dict(state_dict, name)
    load_state_dict_strict(model, state_dict, what)
    return model
