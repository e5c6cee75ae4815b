"""The public ways to get a model, as timm's ``create_model``: by name, with random, pretrained,
remote or local weights.

- ``create_model(name)``: train form, random weights; ``create_model(name, pretrained=True)``: train
  form filled with the published weights of ``name`` (for fine-tuning); ``pretrained`` may also be a
  reference (``hf://owner/repo/file``, ``https://...``, a pretrained name or a local file).
- ``load_model(name, weights)`` / ``load_model(name, pretrained=True)``: eval mode, deploy form unless
  ``deploy=False``.

``weights`` / ``pretrained`` references go through :func:`resolve_weights`: a local file is read as
it is; a pretrained name or remote reference is fetched once into the facelivt cache
(:mod:`facelivt.models.hub`) and read from there afterwards.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from facelivt.devices import resolve_device
from facelivt.errors import InvalidInputError
from facelivt.models.hub import CachedWeights, fetch_weights, is_reference, parse_weights_ref, released_variant, weights_card
from facelivt.models.pretrained import pretrained_weights
from facelivt.models.registry import build_model, check_model_name
from facelivt.models.released import is_released_layout
from facelivt.models.reparam import reparameterize_model
from facelivt.models.weights import fit_state_dict, read_checkpoint

Reference = str | os.PathLike


def resolve_weights(weights: Reference, variant: str | None = None, *, progress: bool = True) -> tuple[Path, CachedWeights | None]:
    """The local file behind ``weights`` and, for a pretrained name or remote reference, its cache
    entry (fetched first when needed; ``variant`` is the model it must fit)."""
    if not is_reference(weights):
        return Path(parse_weights_ref(weights).path), None
    cached = fetch_weights(weights, variant, progress=progress)
    return cached.path, cached


def weights_variant(weights: Reference, *, progress: bool = True) -> str | None:
    """The model ``weights`` hold: a pretrained entry's variant, the ``model`` a safetensors file names,
    the ``variant`` a checkpoint stores, or the released variant its keys and shapes fit; None when
    the file does not tell. A remote reference is fetched (once) to find out."""
    if is_reference(weights):
        return fetch_weights(weights, progress=progress).variant
    state_dict, meta = read_checkpoint(parse_weights_ref(weights).path)
    if meta.get("model") or meta.get("released_variant"):
        return meta.get("model") or meta.get("released_variant")
    return released_variant(state_dict) if is_released_layout(state_dict) else None


def pretrained_reference(name: str, pretrained: bool | Reference) -> Reference:
    """What ``pretrained=`` asks for: ``True`` is the published weights of ``name``."""
    check_model_name(name)
    if pretrained is True:
        return pretrained_weights(name).name
    if pretrained is False or pretrained is None:
        raise InvalidInputError("pretrained is False: nothing to load")
    return pretrained


def create_model(name: str, pretrained: bool | Reference = False, **overrides) -> nn.Module:
    """Build ``name`` in train form (train mode). ``pretrained=True`` fills it with the published weights
    of ``name`` (``list_models(pretrained=True)``); a string is a weights reference (pretrained name,
    ``hf://``, ``https://`` or a local file). FaceLiVT variants accept ``num_heads``, ``embedding_size``,
    ``head`` ("gap" or "gdc") and ``input_size`` overrides; FaceLiVTv2 variants ``num_heads``,
    ``embedding_size`` and ``input_size``. The model carries its input preprocessing as
    ``model.preprocess`` and, when pretrained, where its weights came from as ``model.weights_source``
    and what they are as ``model.model_card`` (:class:`facelivt.models.card.ModelCard`, or None)."""
    if not pretrained:
        return build_model(name, **overrides)
    return load_model(name, pretrained_reference(name, pretrained), deploy=False, **overrides).train()


def load_model(
    name: str,
    weights: Reference | None = None,
    *,
    pretrained: bool | Reference = False,
    deploy: bool = True,
    device: str | torch.device = "cpu",
    progress: bool = True,
    **overrides,
) -> nn.Module:
    """Build ``name`` (with ``overrides``), load ``weights`` and return it in eval mode, in deploy form
    unless ``deploy=False``.

    ``weights``: this project's safetensors (train or deploy form, as its metadata says), a torch
    checkpoint in this project's or the authors' released layout (told apart by content), a pretrained
    name or a remote reference (fetched once, then read from the cache). ``pretrained=True`` is
    ``weights=<the published weights of name>``. ``device`` is checked first (:func:`resolve_device`).
    """
    check_model_name(name)  # before the weights are fetched or read
    device = resolve_device(device)
    if pretrained and weights is not None:
        raise InvalidInputError("give either weights or pretrained, not both")
    if pretrained:
        weights = pretrained_reference(name, pretrained)
    if weights is None:
        model = build_model(name, **overrides).eval()
    else:
        path, cached = resolve_weights(weights, name, progress=progress)
        state_dict, meta = read_checkpoint(path)
        model = fit_state_dict(name, state_dict, meta, str(weights), **overrides)
        if meta.get("form") == "deploy" and not deploy:
            raise InvalidInputError(f"{weights} holds deploy-form weights; they cannot be turned back into the train form")
        model.weights_source = cached.describe() if cached is not None else str(path)
        model.weights_path = path
        model.weights_record = cached.record if cached is not None else None
        model.model_card = weights_card(path, cached)  # what the weights are (None: no card)
        if meta.get("form") == "deploy":
            return model.to(device).eval()
    if deploy:
        model = reparameterize_model(model)  # a deep copy: keeps weights_source and weights_path
    return model.to(device).eval()
