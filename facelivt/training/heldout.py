"""Verification pairs from held-out identities, evaluated with the 10-fold verification protocol."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset
from tqdm import tqdm

from facelivt.data.transforms import to_uint8
from facelivt.errors import InvalidInputError
from facelivt.evaluation import evaluate_embeddings, pair_distances, roc_curve
from facelivt.evaluation.metrics import BIN_FARS
from facelivt.models.embed import embed_images


def build_pairs(labels: np.ndarray, num_pairs: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``num_pairs`` pairs (half same identity, half different) over items with ``labels``.

    Returns ``(pairs [P, 2] int64 positions into labels, issame [P] bool)`` in a random order
    (the 10-fold protocol uses contiguous folds, so both kinds must be spread out). Positive pairs
    are distinct items of one identity; no pair is drawn twice while enough distinct pairs exist.
    """
    labels = np.asarray(labels).reshape(-1)
    if num_pairs < 2:
        raise InvalidInputError(f"need at least 2 pairs, got {num_pairs}")
    identities, counts = np.unique(labels, return_counts=True)
    if identities.size < 2:
        raise InvalidInputError("held-out verification pairs need at least 2 identities")
    multi = identities[counts >= 2]
    if multi.size == 0:
        raise InvalidInputError("held-out verification pairs need an identity with at least 2 images")
    rng = np.random.default_rng(seed)
    by_id = {int(c): np.flatnonzero(labels == c) for c in identities}
    n_pos = num_pairs // 2
    seen: set[tuple[int, int]] = set()
    pos, tries = _positive_pairs(rng, by_id, multi, n_pos, num_pairs, seen)
    neg = _negative_pairs(rng, labels, num_pairs - n_pos, num_pairs, seen, tries)
    pairs = np.array(pos + neg, dtype=np.int64)
    issame = np.array([True] * len(pos) + [False] * len(neg))
    order = rng.permutation(len(pairs))
    return pairs[order], issame[order]


def _positive_pairs(rng, by_id: dict, multi: np.ndarray, count: int, num_pairs: int, seen: set) -> tuple[list, int]:
    """``count`` same-identity pairs (identities drawn by image count); also the draws made so far."""
    max_pos = sum(len(by_id[int(c)]) * (len(by_id[int(c)]) - 1) // 2 for c in multi)
    pos: list[tuple[int, int]] = []
    weights = np.array([len(by_id[int(c)]) for c in multi], dtype=np.float64)
    weights /= weights.sum()
    tries = 0
    while len(pos) < count:
        c = int(rng.choice(multi, p=weights))
        a, b = rng.choice(by_id[c], size=2, replace=False)
        key = (int(min(a, b)), int(max(a, b)))
        tries += 1
        if key in seen and len(seen) < max_pos and tries < 50 * num_pairs:
            continue
        seen.add(key)
        pos.append(key)
    return pos, tries


def _negative_pairs(rng, labels: np.ndarray, count: int, num_pairs: int, seen: set, tries: int) -> list:
    """``count`` pairs of different identities, not drawn before while that is still likely to work."""
    neg: list[tuple[int, int]] = []
    n = labels.size
    while len(neg) < count:
        a, b = rng.integers(0, n, size=2)
        if labels[a] == labels[b]:
            continue
        key = (int(min(a, b)), int(max(a, b)))
        if key in seen and tries < 100 * num_pairs:
            tries += 1
            continue
        seen.add(key)
        neg.append(key)
    return neg


class HeldoutPairs:
    """The images of held-out verification pairs, decoded once and kept as uint8."""

    def __init__(self, dataset: Dataset, indices: np.ndarray, labels: np.ndarray, num_pairs: int, seed: int = 0, progress: bool = False) -> None:
        indices = np.asarray(indices, dtype=np.int64)
        labels = np.asarray(labels).reshape(-1)
        pairs, self.issame = build_pairs(labels[indices], num_pairs, seed)
        used, inverse = np.unique(pairs.reshape(-1), return_inverse=True)
        self.pair_rows = inverse.reshape(-1)  # row of each pair member in self.images
        self.labels = labels[indices][used]  # identity of each row of self.images
        images = []
        for pos in tqdm(used, desc="held-out pairs", unit="img", disable=not progress, leave=False):
            image, _ = dataset[int(indices[pos])]
            images.append(to_uint8(image))
        self.images = np.stack(images)
        self.num_pairs = len(self.issame)

    def evaluate(self, model: nn.Module, batch_size: int = 64, device: torch.device | str = "cpu") -> dict:
        """``evaluate_embeddings`` of the flip-sum embeddings."""
        return self.verify(model, batch_size, device).metrics

    def verify(self, model: nn.Module, batch_size: int = 64, device: torch.device | str = "cpu",
               fars: Sequence[float] = BIN_FARS, progress: bool = False) -> PairVerification:
        """:meth:`evaluate` with what a report draws besides the figures: the ROC curve and the embeddings."""
        emb = embed_images(model, self.images, batch_size=batch_size, device=device, flip=True, progress=progress)
        rows = emb[self.pair_rows]
        fpr, tpr, _ = roc_curve(-pair_distances(rows), self.issame)
        return PairVerification(evaluate_embeddings(rows, self.issame, fars=fars), fpr, tpr, emb)


@dataclass
class PairVerification:
    """Held-out verification of one model (:meth:`HeldoutPairs.verify`)."""

    metrics: dict  # evaluate_embeddings(): accuracy, accuracy_std, auc, eer, tar_at_far, ...
    fpr: np.ndarray  # ROC curve over the pairs (score = minus the squared distance)
    tpr: np.ndarray
    embeddings: np.ndarray  # flip-sum embedding of every image row (not normalised)
