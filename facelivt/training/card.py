"""The model card of the weights a training run writes (:mod:`facelivt.models.card`): what it was
trained on, its held-out result and the threshold chosen on the held-out pairs.

``faces``: ``data.type: synthetic`` is synthetic faces (the quickstart's default); a ``folder`` or
``recordio`` data set with a ``data.root`` is taken for photos of real people (what those readers are
for; the quickstart's ``--data DIR`` too); a data set given as an object with no ``data.root`` is
``unknown``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from facelivt.models.card import CalibratedThreshold, HeldOutResult, ModelCard, TrainingData
from facelivt.training.config import Config


@dataclass(frozen=True)
class RunFacts:
    """What a run knows about itself when it writes weights."""

    model: str
    identities: int
    images: int
    steps: int
    steps_per_epoch: int
    heldout_images: int
    dataset_object: str | None = None  # the class name of a data set given as an object


def training_data(cfg: Config, facts: RunFacts) -> TrainingData:
    d = cfg.data
    if d.type == "synthetic":
        dataset, faces = f"synthetic identities (seed {d.synthetic_seed})", "synthetic"
    elif d.root:
        dataset, faces = f"{d.type} {d.root}", "real"
    else:
        dataset, faces = f"a {facts.dataset_object or 'data set'} given to the trainer", "unknown"
    epochs = round(facts.steps / facts.steps_per_epoch, 3) if facts.steps_per_epoch else None
    return TrainingData(dataset=dataset, faces=faces, identities=facts.identities, images=facts.images,
                        steps=facts.steps, epochs=epochs)


def training_card(cfg: Config, facts: RunFacts, metrics: dict[str, dict[str, Any]] | None) -> ModelCard:
    """The card of the run's weights; ``metrics``: its latest verification results by set name."""
    heldout = threshold = None
    result = (metrics or {}).get("heldout")
    if result is not None:
        where = f"held-out pairs ({facts.heldout_images} images of identities not trained on)"
        heldout = HeldOutResult(set=where, metric="accuracy (10-fold)", value=float(result["accuracy"]))
        if result.get("threshold") is not None:
            threshold = CalibratedThreshold(cosine=float(result["threshold"]), rule="best-accuracy (10-fold)",
                                            source=where, accuracy=float(result["accuracy"]),
                                            pairs=int(result["n_pairs"]))
    return ModelCard(model=facts.model, training=training_data(cfg, facts), heldout=heldout, threshold=threshold,
                     provenance=f"trained by facelivt train into {cfg.output}")
