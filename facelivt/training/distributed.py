"""Process-group setup from torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``, ``MASTER_PORT``): NCCL on GPUs, gloo on CPUs. The process group is the only
global state; everything else is passed around in a :class:`DistEnv`."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from facelivt import devices
from facelivt.errors import UnavailableError


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False  # True when init_distributed created the process group

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(device: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> ``cuda:<local_rank>`` when CUDA is usable, else CPU; otherwise the named device (checked)."""
    return devices.resolve_device(device, local_rank, option="train.device")


def init_distributed(device: str = "auto") -> DistEnv:
    """Join the process group torchrun describes (or use one that is already initialised).

    Without ``WORLD_SIZE`` > 1 in the environment and no initialised group, returns a
    single-process environment.
    """
    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
        local_rank = int(os.environ.get("LOCAL_RANK", rank))
        dev = resolve_device(device, local_rank)
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        return DistEnv(rank, world, local_rank, dev, owns_group=False)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistEnv(0, 1, 0, resolve_device(device, 0), owns_group=False)
    for var in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        if var not in os.environ:
            raise UnavailableError(f"WORLD_SIZE={world} but {var} is not set: start multi-process runs with torchrun")
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world)
    return DistEnv(rank, world, local_rank, dev, owns_group=True)


def cleanup(env: DistEnv) -> None:
    """Destroy the process group if :func:`init_distributed` created it."""
    if env.owns_group and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(env: DistEnv) -> None:
    if env.distributed:
        dist.barrier()


def any_true(env: DistEnv, flag: bool) -> bool:
    """True on every rank when ``flag`` is True on at least one."""
    if not env.distributed:
        return bool(flag)
    t = torch.tensor([1.0 if flag else 0.0], device=env.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def broadcast_object(env: DistEnv, obj, src: int = 0):
    """Rank ``src``'s ``obj`` on every rank."""
    if not env.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def union(env: DistEnv, items: set[int]) -> set[int]:
    """The union of every rank's ``items`` (on every rank)."""
    if not env.distributed:
        return set(items)
    parts: list = [None] * env.world_size
    dist.all_gather_object(parts, sorted(int(i) for i in items))
    merged: set[int] = set()
    for part in parts:
        merged.update(part)
    return merged
