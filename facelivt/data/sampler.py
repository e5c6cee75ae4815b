"""Samplers whose order is a pure function of (seed, epoch) and that can resume
part-way through an epoch."""
from __future__ import annotations

import math
from typing import Iterator, Sized, Union

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from facelivt.errors import InvalidInputError


def _length(data: Union[Sized, int]) -> int:
    n = int(data) if isinstance(data, int) else len(data)
    if n < 0:
        raise InvalidInputError(f"data set length must be >= 0, got {n}")
    return n


class DistributedResumableSampler(Sampler[int]):
    """Shards a (shuffled) epoch over ``num_replicas`` ranks, like torch's
    DistributedSampler, and can start inside an epoch.

    The permutation of epoch ``e`` comes from ``torch.Generator().manual_seed(seed + e)``.
    Without ``drop_last`` it is padded by wrapping around so every rank gets
    ``ceil(n / num_replicas)`` indices; with ``drop_last`` the tail is dropped.
    Rank r takes positions ``r, r + num_replicas, ...``.

    ``set_start(i)`` makes the *next* iteration skip the first ``i`` indices of this
    rank's shard (i = samples this rank already consumed in the epoch, e.g.
    ``steps_done * per_rank_batch``); it applies to one iteration only, so it may
    be called before or after ``set_epoch``. ``set_global_start(g)`` does the same
    in terms of the whole epoch: the first ``g`` positions of the epoch's order are
    skipped and rank r takes positions ``g + r, g + r + num_replicas, ...``. As
    ``num_replicas`` ranks consuming ``i`` indices each have consumed exactly the
    first ``i * num_replicas`` positions, a run resumed with another number of
    processes continues at the same place: ``set_global_start(steps_done * global_batch)``.
    ``len()`` is the number of indices the next iteration yields; ``num_samples`` is
    the full per-rank epoch length.
    """

    def __init__(
        self,
        data: Union[Sized, int],
        num_replicas: int | None = None,
        rank: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        if num_replicas is None:
            num_replicas = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        if rank is None:
            rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        if num_replicas < 1:
            raise InvalidInputError(f"num_replicas must be >= 1, got {num_replicas}")
        if not 0 <= rank < num_replicas:
            raise InvalidInputError(f"rank must be in [0, {num_replicas}), got {rank}")
        self.dataset_len = _length(data)
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.epoch = 0
        self.global_start = 0
        if self.drop_last:
            self.num_samples = self.dataset_len // self.num_replicas
        else:
            self.num_samples = math.ceil(self.dataset_len / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order the next iteration follows."""
        if epoch < 0:
            raise InvalidInputError(f"epoch must be >= 0, got {epoch}")
        self.epoch = int(epoch)

    def set_start(self, index: int) -> None:
        """Skip the first ``index`` indices of this rank's shard in the next iteration."""
        if not 0 <= index <= self.num_samples:
            raise InvalidInputError(f"start index must be in [0, {self.num_samples}], got {index}")
        self.global_start = int(index) * self.num_replicas

    def set_global_start(self, position: int) -> None:
        """Skip the first ``position`` positions of the epoch's order (all ranks together) in the next iteration."""
        if not 0 <= position <= self.total_size:
            raise InvalidInputError(f"start position must be in [0, {self.total_size}], got {position}")
        self.global_start = int(position)

    @property
    def start(self) -> int:
        """Indices of this rank's shard the next iteration skips."""
        return len(range(self.rank, min(self.global_start, self.total_size), self.num_replicas))

    def epoch_indices(self, epoch: int | None = None) -> list[int]:
        """This rank's full index list for ``epoch`` (default: the current one)."""
        epoch = self.epoch if epoch is None else int(epoch)
        n = self.dataset_len
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self.seed + epoch)
            order = torch.randperm(n, generator=g).tolist()
        else:
            order = list(range(n))
        if self.drop_last:
            order = order[: self.total_size]
        elif order and len(order) < self.total_size:
            pad = self.total_size - len(order)
            order += (order * math.ceil(pad / len(order)))[:pad]
        return order[self.rank : self.total_size : self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        start, self.global_start = self.global_start, 0
        return iter(self.epoch_indices()[len(range(self.rank, start, self.num_replicas)) :])

    def __len__(self) -> int:
        return self.num_samples - self.start


class ResumableSampler(DistributedResumableSampler):
    """Single-process :class:`DistributedResumableSampler` (one replica, rank 0)."""

    def __init__(self, data: Union[Sized, int], shuffle: bool = True, seed: int = 0) -> None:
        super().__init__(data, num_replicas=1, rank=0, shuffle=shuffle, seed=seed, drop_last=False)
