"""Re-split a checkpoint written by A processes for B processes (resume on another GPU count).

What differs between the ranks of a run is the Partial FC shard: rank r holds the class centres
``shard_range(C, A, r)`` (rows of the full ``[C, D]`` matrix) and AdamW's moments of those rows.
Everything else is the same on every rank (the backbone is kept equal by DDP; BatchNorm buffers
follow rank 0, which DDP broadcasts at every forward) and is taken from rank 0. New rank ``r``
gets:

- ``partial_fc.weight`` and the ``exp_avg`` / ``exp_avg_sq`` (/ ``max_exp_avg_sq``) of its
  optimizer state: rows ``shard_range(C, B, r)`` of the old shards laid end to end;
- the global RNG states of old rank ``r % A`` (the ranks of a run start from one seed);
- the union of the bad records every old rank found.

The data position needs no re-split here: the trainer keeps it as the number of samples of the
epoch consumed by all ranks together (``step_in_epoch * train.batch_size``), which is the same
prefix of the epoch's order whatever the number of processes (see
:meth:`facelivt.data.DistributedResumableSampler.set_global_start`).
"""
from __future__ import annotations

from typing import Any, Sequence

import torch

from facelivt.errors import FaceLiVTError
from facelivt.losses.partial_fc import shard_range

PFC_GROUP = 1  # the optimizer's param groups: [backbone, Partial FC] (engine.build_step_runner)


class ReshardError(FaceLiVTError, ValueError):
    """A checkpoint's rank files do not fit together."""


def rows_for(shards: Sequence[torch.Tensor], world_size: int, rank: int) -> torch.Tensor:
    """Rows ``shard_range(C, world_size, rank)`` of ``torch.cat(shards)``, copying only those rows."""
    num_classes = sum(int(s.shape[0]) for s in shards)
    start, count = shard_range(num_classes, world_size, rank)
    parts, offset = [], 0
    for shard in shards:
        lo, hi = max(start, offset), min(start + count, offset + shard.shape[0])
        if lo < hi:
            parts.append(shard[lo - offset : hi - offset])
        offset += shard.shape[0]
    if not parts:
        return shards[0][:0].clone()
    return torch.cat(parts).clone()


def _check(states: Sequence[dict[str, Any]]) -> int:
    old = len(states)
    num_classes = sum(int(s["partial_fc"]["weight"].shape[0]) for s in states)
    for r, s in enumerate(states):
        if int(s.get("rank", r)) != r or int(s.get("world_size", old)) != old:
            raise ReshardError(f"rank file {r} says rank {s.get('rank')} of {s.get('world_size')}, expected rank {r} of {old}")
        rows = int(s["partial_fc"]["weight"].shape[0])
        if rows != shard_range(num_classes, old, r)[1]:
            raise ReshardError(f"rank {r} holds {rows} class centres; an even split of {num_classes} over {old} gives it "
                               f"{shard_range(num_classes, old, r)[1]}")
        if int(s.get("global_step", -1)) != int(states[0].get("global_step", -1)):
            raise ReshardError(f"rank {r} is at step {s.get('global_step')} but rank 0 at {states[0].get('global_step')}")
    return num_classes


def _optimizer(states: Sequence[dict[str, Any]], world_size: int, rank: int) -> dict[str, Any]:
    base = states[0]["optimizer"]
    groups = base["param_groups"]
    if len(groups) <= PFC_GROUP:
        raise ReshardError("the checkpoint's optimizer has no Partial FC parameter group")
    state = dict(base["state"])
    old_rows = [int(s["partial_fc"]["weight"].shape[0]) for s in states]
    for pid in groups[PFC_GROUP]["params"]:
        if pid not in state:
            continue  # no step taken yet
        entry = dict(state[pid])
        for key, value in entry.items():
            if torch.is_tensor(value) and value.ndim >= 1 and value.shape[0] == old_rows[0]:
                shards = [s["optimizer"]["state"][pid][key] for s in states]
                if [int(t.shape[0]) for t in shards] != old_rows:
                    raise ReshardError(f"optimizer state {key!r} of the Partial FC centres does not match the centre shards")
                entry[key] = rows_for(shards, world_size, rank)
        state[pid] = entry
    return {"state": state, "param_groups": groups}


def reshard_state(states: Sequence[dict[str, Any]], world_size: int, rank: int) -> dict[str, Any]:
    """The state of ``rank`` of ``world_size`` processes from the states of all old ranks (rank order)."""
    if not states:
        raise ReshardError("no rank states to re-split")
    num_classes = _check(states)
    if num_classes < world_size:
        raise ReshardError(f"{num_classes} classes cannot be split over {world_size} processes")
    out = dict(states[0])
    pfc = dict(states[0]["partial_fc"])
    pfc["weight"] = rows_for([s["partial_fc"]["weight"] for s in states], world_size, rank)
    out["partial_fc"] = pfc
    out["optimizer"] = _optimizer(states, world_size, rank)
    out["rng"] = states[rank % len(states)]["rng"]
    bad = [s["bad_records"] for s in states if torch.is_tensor(s.get("bad_records"))]
    if bad:
        out["bad_records"] = torch.unique(torch.cat(bad))
    out["resharded_from"] = len(states)
    out["rank"], out["world_size"] = int(rank), int(world_size)
    return out
