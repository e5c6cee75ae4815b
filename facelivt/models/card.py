"""Model cards: what a weights file is, stored in the file itself.

A :class:`ModelCard` says what the weights were trained on (data set, real or synthetic faces,
identities, images, steps), how they did on held-out pairs, the verification threshold calibrated
for them (a cosine similarity, with the rule and false accept rate it was chosen at) and where they
came from. It is kept as JSON under the safetensors metadata key ``model_card`` (:data:`CARD_KEY`),
written by :func:`facelivt.models.save_weights` (``card=``), by training, the quickstart, ``convert``
and the pretrained cache.

A file that must not be rewritten (a pretrained cache entry, a read-only file, a torch ``.pt``) gets
its card in a side file ``WEIGHTS.card.json`` (:func:`side_card_path`) instead; when one exists it
replaces the card inside the file.

A card that cannot be read (not JSON, wrong types, unknown ``faces``) is ignored with a logged
warning naming the file: the weights still load, as weights without a card (uncalibrated, no record
of real-face training).
"""
from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from safetensors import SafetensorError, safe_open

from facelivt.errors import InvalidInputError
from facelivt.models.checkpoint_io import SAFETENSORS, sniff_format

log = logging.getLogger(__name__)

CARD_KEY = "model_card"
SIDE_SUFFIX = ".card.json"
CARD_VERSION = 1
#: What faces the weights were trained on: photos of real people, generated faces, nothing (random
#: initialisation), or not recorded.
FACES = ("real", "synthetic", "none", "unknown")

SYNTHETIC_WARNING = "these weights were trained on synthetic faces only: their verdicts on real photos mean nothing"
RANDOM_WARNING = "these weights were never trained (random initialisation): their verdicts mean nothing"
NO_RECORD_WARNING = ("these weights carry no record of training on real faces: treat their verdicts on real "
                     "photos with suspicion")


class InvalidModelCardError(InvalidInputError):
    """A model card whose JSON or fields are not what :class:`ModelCard` holds."""


@dataclass(frozen=True)
class TrainingData:
    """What the weights were trained on: ``dataset`` (a name or path), ``faces`` (one of
    :data:`FACES`), and the identities, images, optimiser steps and epochs when known."""

    dataset: str
    faces: str = "unknown"
    identities: int | None = None
    images: int | None = None
    steps: int | None = None
    epochs: float | None = None


@dataclass(frozen=True)
class HeldOutResult:
    """How the weights did on pairs they were not trained on: ``metric`` (e.g. "accuracy (10-fold)")
    of ``value`` on ``set``."""

    set: str
    metric: str
    value: float


@dataclass(frozen=True)
class CalibratedThreshold:
    """A verification threshold on cosine similarity, chosen by ``rule`` ("best-accuracy",
    "far<=0.001", ...) on ``pairs`` labelled pairs of ``source``; ``far`` and ``accuracy`` are what
    it gave there."""

    cosine: float
    rule: str
    source: str
    far: float | None = None
    accuracy: float | None = None
    pairs: int | None = None

    def describe(self) -> str:
        """``calibrated on SOURCE at FAR 0.1% (far<=0.001, 400 pairs)``."""
        at = f" at FAR {100 * self.far:.3g}%" if self.far is not None else ""
        pairs = f", {self.pairs} pairs" if self.pairs else ""
        return f"calibrated on {self.source}{at} ({self.rule}{pairs})"


@dataclass(frozen=True)
class ModelCard:
    """What a weights file is (see the module docstring). Every section is optional."""

    model: str | None = None
    training: TrainingData | None = None
    heldout: HeldOutResult | None = None
    threshold: CalibratedThreshold | None = None
    provenance: str = ""
    version: int = CARD_VERSION

    @property
    def faces(self) -> str:
        """What faces the weights were trained on (:data:`FACES`)."""
        return self.training.faces if self.training is not None else "unknown"

    def warning(self) -> str | None:
        """Why verdicts of these weights on real photos cannot be trusted, or None when the card
        records training on real faces."""
        return warning_for(self)

    def with_threshold(self, threshold: CalibratedThreshold) -> "ModelCard":
        return replace(self, threshold=threshold)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def warning_for(card: ModelCard | None) -> str | None:
    """The warning for weights with ``card`` (None: no card), or None for real-face training."""
    faces = card.faces if card is not None else "unknown"
    if faces == "real":
        return None
    return {"synthetic": SYNTHETIC_WARNING, "none": RANDOM_WARNING}.get(faces, NO_RECORD_WARNING)


def _section(cls, value, where: str):
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidModelCardError(f"{where}: expected an object, got {type(value).__name__}")
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(value) - names)
    if unknown:
        raise InvalidModelCardError(f"{where}: unknown keys {', '.join(unknown)}")
    try:
        return cls(**value)
    except TypeError as exc:
        raise InvalidModelCardError(f"{where}: {exc}") from None


def _check_number(value, where: str, optional: bool = True) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidModelCardError(f"{where} must be a finite number, got {value!r}")


def _check(card: ModelCard, where: str) -> ModelCard:
    if card.training is not None:
        if card.training.faces not in FACES:
            raise InvalidModelCardError(f"{where}: training.faces must be one of {', '.join(FACES)}, "
                                        f"got {card.training.faces!r}")
        for key in ("identities", "images", "steps", "epochs"):
            _check_number(getattr(card.training, key), f"{where}: training.{key}")
    if card.heldout is not None:
        _check_number(card.heldout.value, f"{where}: heldout.value", optional=False)
    t = card.threshold
    if t is not None:
        _check_number(t.cosine, f"{where}: threshold.cosine", optional=False)
        if not -1.0 < t.cosine <= 1.0:
            raise InvalidModelCardError(f"{where}: threshold.cosine must be in (-1, 1], got {t.cosine!r}")
        for key in ("far", "accuracy", "pairs"):
            _check_number(getattr(t, key), f"{where}: threshold.{key}")
    return card


def card_from_json(text: str, where: str = "model card") -> ModelCard:
    """Parse a card; :class:`InvalidModelCardError` names ``where`` and what is wrong."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InvalidModelCardError(f"{where}: not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise InvalidModelCardError(f"{where}: expected a JSON object")
    sections = {"training": TrainingData, "heldout": HeldOutResult, "threshold": CalibratedThreshold}
    data = {k: _section(sections[k], v, f"{where}: {k}") if k in sections else v for k, v in data.items()}
    card = _section(ModelCard, data, where)
    return _check(card, where)


def card_metadata(card: ModelCard | None) -> dict[str, str]:
    """The safetensors metadata entry of ``card`` (empty for None)."""
    return {CARD_KEY: card.to_json()} if card is not None else {}


def side_card_path(weights: str | os.PathLike) -> Path:
    """Where the side card of ``weights`` lives: ``WEIGHTS.card.json`` beside it."""
    weights = Path(weights)
    return weights.with_name(weights.name + SIDE_SUFFIX)


def embedded_card(path: str | os.PathLike) -> ModelCard | None:
    """The card inside a safetensors file (None: none, not safetensors, or unreadable: logged)."""
    try:
        if sniff_format(path) != SAFETENSORS:
            return None
        with safe_open(str(path), framework="pt") as f:
            text = (f.metadata() or {}).get(CARD_KEY)
    except (SafetensorError, OSError, ValueError) as exc:
        log.warning("cannot read the model card of %s: %s", path, exc)
        return None
    return _parse_or_warn(text, f"model card of {path}") if text is not None else None


def _parse_or_warn(text: str, where: str) -> ModelCard | None:
    try:
        return card_from_json(text, where)
    except InvalidModelCardError as exc:
        log.warning("%s; the card is ignored", exc)
        return None


def read_card(weights: str | os.PathLike) -> ModelCard | None:
    """The model card of the weights file ``weights``: its side file ``WEIGHTS.card.json`` when there
    is one, else the card in its metadata; None when it has neither. A malformed card is ignored
    with a logged warning (the other one is used when readable)."""
    side = side_card_path(weights)
    if side.is_file():
        try:
            card = _parse_or_warn(side.read_text(encoding="utf-8"), str(side))
        except (OSError, UnicodeDecodeError) as exc:
            log.warning("cannot read %s: %s; the card is ignored", side, exc)
            card = None
        if card is not None:
            return card
    return embedded_card(weights)
