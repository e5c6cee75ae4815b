"""Data set construction from a config dict, identity splits and DataLoader setup."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from facelivt.cpu import check_threads
from facelivt.errors import InvalidInputError
from .folder import ImageFolderDataset
from .recordio import RecordIODataset
from .synthetic import SyntheticIdentities

DATASET_TYPES = ("recordio", "folder", "synthetic")


def build_dataset(spec: Mapping[str, Any]) -> Dataset:
    """Build a data set from ``{"type": "recordio"|"folder"|"synthetic", "root": ..., **kwargs}``.

    ``root`` is required for recordio and folder and not accepted for synthetic;
    the remaining keys go to the data set's constructor (e.g. ``transform``,
    ``max_bad_fraction``, ``num_identities``).
    """
    if not isinstance(spec, Mapping):
        raise InvalidInputError(f"dataset spec must be a mapping, got {type(spec).__name__}")
    kwargs = dict(spec)
    kind = kwargs.pop("type", None)
    if kind not in DATASET_TYPES:
        raise InvalidInputError(f"dataset type must be one of {', '.join(DATASET_TYPES)}; got {kind!r}")
    if kind == "synthetic":
        if kwargs.get("root") is not None:
            raise InvalidInputError("a synthetic dataset takes no 'root'")
        kwargs.pop("root", None)
        cls = SyntheticIdentities
        args: tuple = ()
    else:
        root = kwargs.pop("root", None)
        if not root:
            raise InvalidInputError(f"a {kind} dataset needs 'root' (the data folder)")
        cls = RecordIODataset if kind == "recordio" else ImageFolderDataset
        args = (root,)
    try:
        return cls(*args, **kwargs)
    except TypeError as exc:
        raise InvalidInputError(f"bad options for a {kind} dataset {sorted(kwargs)}: {exc}") from None


def split_identities(
    labels: np.ndarray, held_out_fraction: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Split sample indices by identity: a random ``held_out_fraction`` of the
    identities (at least one when the fraction is > 0, never all) is held out.

    Returns ``(train_idx, heldout_idx)``, sorted int64 arrays. Negative labels
    (unreadable records) go to neither side.
    """
    labels = np.asarray(labels).reshape(-1)
    if not 0.0 <= held_out_fraction < 1.0:
        raise InvalidInputError(f"held_out_fraction must be in [0, 1), got {held_out_fraction}")
    valid = labels >= 0
    identities = np.unique(labels[valid])
    if held_out_fraction == 0.0 or identities.size == 0:
        return np.flatnonzero(valid).astype(np.int64), np.zeros(0, dtype=np.int64)
    if identities.size < 2:
        raise InvalidInputError("holding out identities needs at least 2 identities")
    count = int(round(held_out_fraction * identities.size))
    count = min(max(count, 1), identities.size - 1)
    rng = np.random.default_rng(seed)
    held = rng.choice(identities, size=count, replace=False)
    held_mask = np.isin(labels, held) & valid
    return np.flatnonzero(valid & ~held_mask).astype(np.int64), np.flatnonzero(held_mask).astype(np.int64)


def _seed_worker(worker_id: int) -> None:
    """Give numpy in each worker a seed derived from torch's per-worker seed."""
    np.random.seed(torch.initial_seed() % 2**32)


def build_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    sampler: Sampler | None = None,
    num_workers: int = 0,
    drop_last: bool = True,
    pin_memory: bool = False,
    persistent_workers: bool = False,
) -> DataLoader:
    """A DataLoader with per-worker seeding; ``sampler`` (e.g. a
    :class:`~facelivt.data.sampler.DistributedResumableSampler`) fixes the order."""
    if batch_size < 1:
        raise InvalidInputError(f"batch_size must be >= 1, got {batch_size}")
    check_threads(num_workers, "num_workers", minimum=0)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        shuffle=False if sampler is not None else True,
        num_workers=num_workers,
        drop_last=drop_last,
        pin_memory=pin_memory,
        worker_init_fn=_seed_worker if num_workers > 0 else None,
        persistent_workers=persistent_workers and num_workers > 0,
    )
