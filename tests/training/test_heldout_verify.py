"""HeldoutPairs.verify: the metrics of evaluate() plus the ROC curve and the embeddings a report draws."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from facelivt.data import FaceArray
from facelivt.evaluation import auc
from facelivt.training import HeldoutPairs


class _MeanColour(nn.Module):
    """An embedding of 3 numbers: the mean of each channel (enough to tell the synthetic identities apart)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


def _pairs() -> HeldoutPairs:
    rng = np.random.default_rng(0)
    colours = rng.integers(0, 255, (6, 3))
    labels = np.repeat(np.arange(6), 4)
    images = np.clip(colours[labels][:, None, None, :] + rng.integers(-20, 20, (24, 112, 112, 3)), 0, 255).astype(np.uint8)
    faces = FaceArray(images, labels, [f"id{i}" for i in range(6)], "test")
    return HeldoutPairs(faces, np.arange(24), labels, 40, seed=0)


def test_verify_adds_the_roc_and_embeddings_to_the_metrics_of_evaluate():
    pairs, model = _pairs(), _MeanColour()
    v = pairs.verify(model, batch_size=8, fars=(1e-1,))
    assert v.metrics["accuracy"] == pairs.evaluate(model, batch_size=8)["accuracy"]
    assert list(v.metrics["tar_at_far"]) == ["1e-1"]  # the FARs asked for
    assert v.embeddings.shape == (len(pairs.images), 3)
    assert v.fpr[0] == v.tpr[0] == 0.0 and v.fpr[-1] == v.tpr[-1] == 1.0
    assert np.all(np.diff(v.fpr) >= 0) and np.all(np.diff(v.tpr) >= 0)
    assert auc(v.fpr, v.tpr) == v.metrics["auc"]
