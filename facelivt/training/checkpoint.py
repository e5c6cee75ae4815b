"""Training checkpoints: atomic writes, per-rank files, "last" and "best" pointers, RNG states.

Layout under ``<output>/checkpoints``::

    step-00001200/rank0.pt   # one file per rank (Partial FC shards differ between ranks)
    step-00001200/rank1.pt
    last.json                # {"step": 1200, "dir": "step-00001200", "world_size": 2, ...}
    best.json                # same, plus the metric that made it best

Every file is written through :mod:`facelivt.files` (a unique temporary name in the same folder,
fsync, rename); a pointer is replaced only after every rank has finished its file, so a crash or
a full disk at any moment leaves the previous checkpoint and ``last.json`` whole. A checkpoint
written by another number of processes is re-split on loading (:mod:`.reshard`). Checkpoints
hold only tensors and plain containers and are read back with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

from facelivt.errors import FaceLiVTError, InputNotFoundError, InvalidInputError
from facelivt.files import atomic_open, fsync_dir, write_text
from facelivt.models.checkpoint_io import safe_torch_load

from .reshard import ReshardError, reshard_state

CHECKPOINT_FORMAT = "facelivt-train-checkpoint"
CHECKPOINT_VERSION = 1


class CheckpointWriteError(FaceLiVTError, OSError):
    """Another process of the run could not write its part of a checkpoint (that process names the cause)."""


class _RecordingWriter:
    """File-object proxy for ``torch.save``: torch turns a failed ``write`` (a full disk) into a
    RuntimeError about zip positions; this keeps the OSError so the real cause can be reported."""

    def __init__(self, f) -> None:
        self.f = f
        self.error: Optional[OSError] = None

    def write(self, data) -> int:
        try:
            return self.f.write(data)
        except OSError as exc:
            self.error = self.error or exc
            raise

    def flush(self) -> None:
        self.f.flush()


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` through :func:`facelivt.files.atomic_open`: a unique temporary file in the same
    folder, fsynced and renamed over ``path``; on failure (e.g. a full disk:
    :class:`facelivt.errors.OutputWriteError`) ``path`` is unchanged and no temporary is left."""
    with atomic_open(path, "wb") as f:
        writer = _RecordingWriter(f)
        try:
            torch.save(obj, writer)
        except RuntimeError:
            if writer.error is not None:
                raise writer.error from None
            raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write a small text file atomically (:func:`facelivt.files.write_text`)."""
    write_text(path, text)


def load_checkpoint_file(path: str | os.PathLike, mmap: bool = False) -> dict[str, Any]:
    """Read one rank's checkpoint with ``weights_only=True``; clear errors for missing / foreign files.
    ``mmap``: map the file instead of reading it (tensors are paged in when used)."""
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"checkpoint file not found: {path}")
    obj = safe_torch_load(path, what="checkpoint", mmap=mmap)  # refuses code clearly; corrupt -> CheckpointReadError
    if not isinstance(obj, dict) or obj.get("format") != CHECKPOINT_FORMAT:
        raise InvalidInputError(f"{path} is not a facelivt training checkpoint")
    return obj


# ----------------------------------------------------------------------------- RNG states


def rng_state() -> dict[str, Any]:
    """The global RNG states of torch (CPU and CUDA), numpy and Python as tensors / plain types."""
    np_state = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": str(np_state[0]),
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {
            "version": int(py_version),
            "internal": torch.tensor(py_internal, dtype=torch.int64),
            "gauss": py_gauss,
        },
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(
        (n["kind"], n["keys"].numpy().astype(np.uint32), int(n["pos"]), int(n["has_gauss"]), float(n["cached_gaussian"]))
    )
    p = state["python"]
    random.setstate((int(p["version"]), tuple(int(v) for v in p["internal"].tolist()), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        states = state["cuda"]
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states)


# ----------------------------------------------------------------------------- manager


class CheckpointManager:
    """Writes and finds the checkpoints of one run (see the module docstring).

    ``any_failed(flag)`` is called on every rank after the rank files are written and again after
    the pointer moved: it returns True on every rank when ``flag`` is True on any (an all-reduce),
    so a rank that cannot write its file (a full disk) makes every rank stop before the pointer
    moves, instead of leaving the others waiting. Without it, ``barrier`` (a no-op by default, as
    in a single process) is called at those points and only the failing rank raises. Only rank 0
    moves pointers and removes old checkpoint folders.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        rank: int = 0,
        world_size: int = 1,
        barrier: Callable[[], None] | None = None,
        any_failed: Callable[[bool], bool] | None = None,
    ) -> None:
        self.root = Path(root)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.barrier = barrier or (lambda: None)
        self.any_failed = any_failed or self._barrier_only

    def _barrier_only(self, flag: bool) -> bool:
        self.barrier()
        return bool(flag)

    @staticmethod
    def dir_name(step: int) -> str:
        return f"step-{int(step):08d}"

    def _pointer(self, name: str) -> Path:
        return self.root / f"{name}.json"

    def read_pointer(self, name: str = "last") -> dict[str, Any] | None:
        """The ``last`` / ``best`` pointer, or None when there is none."""
        path = self._pointer(name)
        if not path.is_file():
            return None
        try:
            info = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise InvalidInputError(f"checkpoint pointer {path} is unreadable: {exc}") from None
        if not isinstance(info, dict) or "dir" not in info or "step" not in info:
            raise InvalidInputError(f"checkpoint pointer {path} is malformed: {info!r}")
        return info

    def _together(self, error: Exception | None, what: str) -> None:
        """Raise on every rank when any rank failed ``what`` (its own error where it failed)."""
        failed = self.any_failed(error is not None)
        if error is not None:
            raise error
        if failed:
            raise CheckpointWriteError(f"another process of this run could not {what} under {self.root} (see its error)")

    def save(self, state: dict[str, Any], step: int, extra: dict[str, Any] | None = None) -> Path:
        """Write this rank's ``state`` for ``step`` and (after all ranks) point ``last`` at it.

        On any failure the ``last`` pointer keeps naming the previous, whole checkpoint."""
        folder = self.root / self.dir_name(step)
        payload = dict(state)
        payload.update({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "rank": self.rank, "world_size": self.world_size})
        error: Exception | None = None
        try:
            atomic_torch_save(payload, folder / f"rank{self.rank}.pt")
        except Exception as exc:  # noqa: BLE001 - re-raised by _together on this rank
            error = exc
        self._together(error, "write its checkpoint file")
        if self.rank == 0:
            try:
                fsync_dir(folder)
                info = {"step": int(step), "dir": folder.name, "world_size": self.world_size}
                info.update(extra or {})
                write_text(self._pointer("last"), json.dumps(info, indent=1))
                self._prune()
            except Exception as exc:  # noqa: BLE001
                error = exc
        self._together(error, "move the checkpoint pointer")
        return folder

    def mark_best(self, step: int, metric: str, value: float) -> None:
        """Point ``best`` at the checkpoint of ``step`` (which must have been saved)."""
        if self.rank != 0:
            return
        folder = self.root / self.dir_name(step)
        if not folder.is_dir():
            raise InputNotFoundError(f"cannot mark step {step} best: {folder} was not saved")
        info = {"step": int(step), "dir": folder.name, "world_size": self.world_size, "metric": metric, "value": float(value)}
        write_text(self._pointer("best"), json.dumps(info, indent=1))
        self._prune()

    def _prune(self) -> None:
        keep = set()
        for name in ("last", "best"):
            info = self.read_pointer(name)
            if info:
                keep.add(info["dir"])
        for entry in self.root.glob("step-*"):
            if entry.is_dir() and entry.name not in keep:
                shutil.rmtree(entry, ignore_errors=True)

    def resolve(self, where: str | os.PathLike | None = None, name: str = "last") -> Path | None:
        """Folder of the checkpoint to resume: ``where`` (a step folder or a checkpoints root) or this
        manager's ``name`` pointer; None when nothing was saved yet."""
        if where is not None:
            p = Path(where)
            if (p / "rank0.pt").is_file():
                return p
            if (p / "last.json").is_file():
                info = CheckpointManager(p).read_pointer("last")
                return p / info["dir"]
            raise InputNotFoundError(f"no checkpoint in {p} (expected rank0.pt or last.json)")
        info = self.read_pointer(name)
        if info is None:
            return None
        folder = self.root / info["dir"]
        if not folder.is_dir():
            raise InputNotFoundError(f"checkpoint pointer {self._pointer(name)} names {folder}, which is missing")
        return folder

    def load(self, folder: str | os.PathLike) -> dict[str, Any]:
        """This rank's state from a checkpoint folder.

        A checkpoint written by another number of processes is re-split for this one: the Partial
        FC class centres and their AdamW moments are cut along the class axis from all the old
        ``rankN.pt`` files (see :func:`facelivt.training.reshard.reshard_state`)."""
        folder = Path(folder)
        first = load_checkpoint_file(folder / "rank0.pt", mmap=True)
        written = int(first.get("world_size", 1))
        if written == self.world_size:
            return first if self.rank == 0 else load_checkpoint_file(folder / f"rank{self.rank}.pt")
        missing = [f"rank{r}.pt" for r in range(1, written) if not (folder / f"rank{r}.pt").is_file()]
        if missing:
            raise ReshardError(
                f"checkpoint {folder} was written by {written} processes but {', '.join(missing)} is missing: "
                f"it cannot be re-split for {self.world_size}"
            )
        states = [first] + [load_checkpoint_file(folder / f"rank{r}.pt", mmap=True) for r in range(1, written)]
        return reshard_state(states, self.world_size, self.rank)
