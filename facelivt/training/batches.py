"""Training views of a data set: identity subsets with contiguous labels, and deterministic flips.

A training item is ``(image, label, index, flip)``: ``index`` is the position in the training
subset (the teacher cache's key) and ``flip`` whether the image was mirrored. With
``report_bad`` a fifth field says whether the requested record was unreadable (the data set
returned a neighbour instead): the trainer counts those, which works whatever the number of
DataLoader workers (each worker only knows its own counts). The flip of a
sample in an epoch is a pure function of (seed, epoch, index), so a resumed run and a teacher
cache see exactly the views an uninterrupted run sees, whatever the number of workers.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from facelivt.data.sampler import DistributedResumableSampler
from facelivt.errors import InvalidInputError

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = (x + np.uint64(0x9E3779B97F4A7C15)) & _MASK64
        x = ((x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK64
        x = ((x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK64
        return x ^ (x >> np.uint64(31))


def flip_flags(seed: int, epoch: int, indices: Sequence[int] | np.ndarray) -> np.ndarray:
    """Fair coin per (seed, epoch, index): uint8 array, 1 = mirror the image."""
    idx = np.asarray(indices, dtype=np.int64).astype(np.uint64)
    with np.errstate(over="ignore"):
        base = _splitmix64(np.array([int(seed) & 0xFFFFFFFF], dtype=np.uint64) * np.uint64(0x100000001) + np.uint64(int(epoch)))
        h = _splitmix64(idx ^ base)
    return (h >> np.uint64(63)).astype(np.uint8)


def dataset_labels(dataset: Dataset) -> np.ndarray:
    """Integer labels of every item, from ``dataset.labels`` (our data sets) or ``dataset.targets``."""
    for attr in ("labels", "targets"):
        labels = getattr(dataset, attr, None)
        if labels is not None:
            labels = np.asarray(labels).reshape(-1)
            if labels.shape[0] != len(dataset):
                raise InvalidInputError(f"dataset.{attr} has {labels.shape[0]} entries for {len(dataset)} items")
            return labels.astype(np.int64)
    raise InvalidInputError(
        f"{type(dataset).__name__} has no 'labels' (or 'targets') array: training needs every item's identity "
        "up front (Partial FC size, identity split)"
    )


class TrainView(Dataset):
    """Items ``indices`` of ``base`` with labels remapped to ``0..num_classes-1``.

    ``__getitem__((i, flip))`` -> ``(image, label, i, flip)`` (``+ (bad,)`` with ``report_bad``);
    a plain int key means no flip.
    """

    def __init__(self, base: Dataset, indices: np.ndarray, labels: np.ndarray | None = None, report_bad: bool = False) -> None:
        self.base = base
        self.report_bad = bool(report_bad)
        self.indices = np.asarray(indices, dtype=np.int64)
        all_labels = dataset_labels(base) if labels is None else np.asarray(labels, dtype=np.int64)
        own = all_labels[self.indices]
        if own.size and own.min() < 0:
            raise InvalidInputError("training indices include samples without a label (unreadable records)")
        classes = np.unique(own)
        self.classes = classes  # original label of each new class
        self.num_classes = int(classes.size)
        self.label_map = {int(c): k for k, c in enumerate(classes)}
        self.labels = np.searchsorted(classes, own).astype(np.int64)

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    def __getitem__(self, key) -> tuple:
        if isinstance(key, (tuple, list)):
            i, flip = int(key[0]), int(key[1])
        else:
            i, flip = int(key), 0
        source = int(self.indices[i])
        image, label = self.base[source]
        # a data set that skips an unreadable sample returns its neighbour: use that one's label
        new_label = self.label_map.get(int(label), int(self.labels[i]))
        if flip:
            image = torch.flip(image, dims=[-1])
        if self.report_bad:
            tracker = getattr(self.base, "tracker", None)
            return image, new_label, i, flip, int(tracker is not None and tracker.is_bad(source))
        return image, new_label, i, flip


class FlipSampler(Sampler):
    """Wraps a :class:`DistributedResumableSampler`; yields ``(index, flip)`` keys for :class:`TrainView`."""

    def __init__(self, base: DistributedResumableSampler, seed: int, flip: bool = True) -> None:
        self.base = base
        self.seed = int(seed)
        self.flip = bool(flip)

    def set_epoch(self, epoch: int) -> None:
        self.base.set_epoch(epoch)

    def set_start(self, index: int) -> None:
        self.base.set_start(index)

    def set_global_start(self, position: int) -> None:
        self.base.set_global_start(position)

    @property
    def num_samples(self) -> int:
        return self.base.num_samples

    def __iter__(self) -> Iterator[tuple[int, int]]:
        indices = list(iter(self.base))
        flags = flip_flags(self.seed, self.base.epoch, indices) if self.flip else np.zeros(len(indices), np.uint8)
        return iter([(int(i), int(f)) for i, f in zip(indices, flags)])

    def __len__(self) -> int:
        return len(self.base)
