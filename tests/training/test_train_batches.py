"""Training views: deterministic flips, identity subsets with remapped labels, resumable order."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from facelivt.data import DistributedResumableSampler, SyntheticIdentities
from facelivt.training.batches import FlipSampler, TrainView, dataset_labels, flip_flags


def test_flip_flags_are_deterministic_fair_and_vary():
    idx = np.arange(20000)
    a = flip_flags(0, 0, idx)
    assert np.array_equal(a, flip_flags(0, 0, idx))
    assert 0.48 < a.mean() < 0.52
    assert (a != flip_flags(0, 1, idx)).mean() > 0.4  # another epoch, other flips
    assert (a != flip_flags(1, 0, idx)).mean() > 0.4  # another seed, other flips
    assert np.array_equal(flip_flags(0, 0, idx[[5, 3, 9]]), a[[5, 3, 9]])  # per sample, not per position


def test_train_view_remaps_labels_and_flips():
    ds = SyntheticIdentities(5, 3)
    view = TrainView(ds, np.array([3, 4, 5, 12, 13]))  # identities 1 and 4
    assert view.num_classes == 2 and list(view.labels) == [0, 0, 0, 1, 1]
    img, label, i, f = view[(3, 1)]
    assert (label, i, f) == (1, 3, 1)
    assert torch.equal(img, torch.flip(ds[12][0], dims=[-1]))
    img0, label0, _, f0 = view[0]
    assert label0 == 0 and f0 == 0 and torch.equal(img0, ds[3][0])


def test_dataset_labels_needed():
    class NoLabels(torch.utils.data.Dataset):
        def __len__(self):
            return 3

        def __getitem__(self, i):
            return torch.zeros(3, 112, 112), 0

    with pytest.raises(ValueError, match="labels"):
        dataset_labels(NoLabels())


def test_flip_sampler_resumes_mid_epoch():
    base = DistributedResumableSampler(40, 1, 0, shuffle=True, seed=3, drop_last=True)
    s = FlipSampler(base, seed=3)
    s.set_epoch(2)
    full = list(s)
    s.set_epoch(2)
    s.set_start(16)
    assert list(s) == full[16:]
    assert len({f for _, f in full}) == 2
    off = FlipSampler(DistributedResumableSampler(40, 1, 0, seed=3, drop_last=True), seed=3, flip=False)
    assert all(f == 0 for _, f in off)
