"""One registry of model variants, as in timm: ``register_model``, ``list_models()``, ``build_model(name)``.

``build_model`` builds the train form with random weights; :func:`facelivt.models.factory.create_model`
(``create_model(name, pretrained=True)``) is the public entry that also fills it with weights.
The pretrained weights of the variants are the table in :mod:`facelivt.models.pretrained`."""
from __future__ import annotations

from typing import Callable

from torch import nn

from facelivt.errors import InvalidInputError
from facelivt.models.config import V2_VARIANTS, VARIANTS, FaceLiVTConfig, FaceLiVTv2Config
from facelivt.models.facelivt import FaceLiVT
from facelivt.models.facelivtv2 import FaceLiVTv2
from facelivt.models.preprocess import DEFAULT_PREPROCESS, Preprocess
from facelivt.models.pretrained import PRETRAINED

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
_PREPROCESS: dict[str, Preprocess] = {}


def register_model(name: str, builder: Callable[..., nn.Module], preprocess: Preprocess = DEFAULT_PREPROCESS) -> None:
    """Add ``name`` to the registry; ``preprocess`` is what its models expect of their input (the
    input side is taken from the built model's ``cfg.input_size`` or ``input_size`` override)."""
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} is already registered")
    _REGISTRY[name] = builder
    _PREPROCESS[name] = preprocess


def _facelivt_builder(cfg: FaceLiVTConfig | FaceLiVTv2Config) -> Callable[..., nn.Module]:
    network = FaceLiVTv2 if isinstance(cfg, FaceLiVTv2Config) else FaceLiVT

    def build(**overrides) -> nn.Module:
        return network(cfg.with_overrides(**overrides))

    return build


for _name, _cfg in {**VARIANTS, **V2_VARIANTS}.items():
    register_model(_name, _facelivt_builder(_cfg))


def list_models(pretrained: bool = False) -> list[str]:
    """Names accepted by :func:`build_model` and ``create_model``; ``pretrained=True``: only those with
    published pretrained weights (``create_model(name, pretrained=True)``)."""
    return sorted(n for n in _REGISTRY if not pretrained or n in PRETRAINED)


def check_model_name(name: str) -> str:
    """``name`` when it is a registered model; else :class:`InvalidInputError` listing the models.
    Checked first wherever a model name is taken, before any weights are looked at."""
    if name not in _REGISTRY:
        raise InvalidInputError(f"unknown model {name!r}; available models: {', '.join(list_models())}")
    return name


def build_model(name: str, **overrides) -> nn.Module:
    """Build a model in train form. FaceLiVT variants accept ``num_heads``, ``embedding_size``, ``head``
    ("gap" or "gdc") and ``input_size`` overrides; FaceLiVTv2 variants ``num_heads`` (default 4),
    ``embedding_size`` and ``input_size`` (their head is always the GDConv one, "gdc").
    The model carries its input preprocessing as ``model.preprocess`` (:class:`facelivt.models.preprocess.Preprocess`)."""
    model = _REGISTRY[check_model_name(name)](**overrides)
    model.model_name = name
    model.model_overrides = dict(overrides)
    size = getattr(getattr(model, "cfg", None), "input_size", None) or overrides.get("input_size")
    model.preprocess = _PREPROCESS[name] if size is None else _PREPROCESS[name].at_size(int(size))
    return model


def model_config(name: str) -> FaceLiVTConfig | FaceLiVTv2Config | None:
    """The variant table entry of a FaceLiVT (v1 or v2) model; None for the peer networks."""
    return VARIANTS.get(name) or V2_VARIANTS.get(name)
