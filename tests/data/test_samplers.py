"""Resumable (distributed) samplers."""
from __future__ import annotations

import pytest

from facelivt.data import DistributedResumableSampler, ResumableSampler


def test_deterministic_by_seed_and_epoch():
    a, b = ResumableSampler(50, seed=3), ResumableSampler(50, seed=3)
    assert list(a) == list(b) and sorted(a) == list(range(50))
    a.set_epoch(1)
    first = list(a)
    assert first != list(b) and sorted(first) == list(range(50))
    b.set_epoch(1)
    assert list(b) == first
    assert list(ResumableSampler(10, shuffle=False)) == list(range(10))


def test_shards_cover_the_epoch():
    shards = [DistributedResumableSampler(11, num_replicas=3, rank=r, seed=5) for r in range(3)]
    for s in shards:
        s.set_epoch(2)
    lists = [list(s) for s in shards]
    assert all(len(x) == 4 == len(s) for x, s in zip(lists, shards))
    assert set().union(*map(set, lists)) == set(range(11))  # padded by wrapping: 12 slots
    assert sum(map(len, lists)) == 12
    dropped = [DistributedResumableSampler(11, num_replicas=3, rank=r, drop_last=True) for r in range(3)]
    got = [i for s in dropped for i in s]
    assert len(got) == 9 == len(set(got))


def test_resume_inside_epoch():
    s = DistributedResumableSampler(40, num_replicas=2, rank=1, seed=7)
    s.set_epoch(4)
    full = list(s)
    s.set_start(6)  # before or after set_epoch: both work
    s.set_epoch(4)
    assert len(s) == 14
    assert list(s) == full[6:]
    assert list(s) == full and len(s) == 20  # start applies to one iteration only
    s.set_start(20)
    assert list(s) == []


def test_bad_arguments():
    with pytest.raises(ValueError, match="rank"):
        DistributedResumableSampler(10, num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="num_replicas"):
        DistributedResumableSampler(10, num_replicas=0, rank=0)
    s = ResumableSampler(10)
    with pytest.raises(ValueError, match="start"):
        s.set_start(11)
    with pytest.raises(ValueError, match="epoch"):
        s.set_epoch(-1)
