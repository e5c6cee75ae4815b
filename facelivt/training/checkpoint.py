"""Training checkpoints: atomic writes, per-rank files, "last" and "best" pointers, RNG states.

Layout under ``<output>/checkpoints``::

    step-00001200/rank0.pt   # one file per rank (Partial FC shards differ between ranks)
    step-00001200/rank1.pt
    last.json                # {"step": 1200, "dir": "step-00001200", "world_size": 2, ...}
    best.json                # same, plus the metric that made it best

Every file is written to a temporary name and renamed into place; a pointer is replaced
only after every rank has finished its file, so a crash at any moment leaves the previous
checkpoint whole. Checkpoints hold only tensors and plain containers and are read back
with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from facelivt.models.checkpoint_io import safe_torch_load

CHECKPOINT_FORMAT = "facelivt-train-checkpoint"
CHECKPOINT_VERSION = 1


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file in the same folder, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(path.parent)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write a small text file atomically (temporary file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def load_checkpoint_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read one rank's checkpoint with ``weights_only=True``; clear errors for missing / foreign files."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    obj = safe_torch_load(path, what="checkpoint")  # refuses code clearly; corrupt -> CheckpointReadError
    if not isinstance(obj, dict) or obj.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a facelivt training checkpoint")
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

    ``barrier`` is called between writing the rank files and moving the pointer (a no-op in a
    single process). Only rank 0 moves pointers and removes old checkpoint folders.
    """

    def __init__(self, root: str | os.PathLike, rank: int = 0, world_size: int = 1, barrier: Callable[[], None] | None = None) -> None:
        self.root = Path(root)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.barrier = barrier or (lambda: None)

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
            raise ValueError(f"checkpoint pointer {path} is unreadable: {exc}") from None
        if not isinstance(info, dict) or "dir" not in info or "step" not in info:
            raise ValueError(f"checkpoint pointer {path} is malformed: {info!r}")
        return info

    def save(self, state: dict[str, Any], step: int, extra: dict[str, Any] | None = None) -> Path:
        """Write this rank's ``state`` for ``step`` and (after all ranks) point ``last`` at it."""
        folder = self.root / self.dir_name(step)
        payload = dict(state)
        payload.update({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "rank": self.rank, "world_size": self.world_size})
        atomic_torch_save(payload, folder / f"rank{self.rank}.pt")
        self.barrier()
        if self.rank == 0:
            _fsync_dir(folder)
            info = {"step": int(step), "dir": folder.name, "world_size": self.world_size}
            info.update(extra or {})
            atomic_write_text(self._pointer("last"), json.dumps(info, indent=1))
            self._prune()
        self.barrier()
        return folder

    def mark_best(self, step: int, metric: str, value: float) -> None:
        """Point ``best`` at the checkpoint of ``step`` (which must have been saved)."""
        if self.rank != 0:
            return
        folder = self.root / self.dir_name(step)
        if not folder.is_dir():
            raise FileNotFoundError(f"cannot mark step {step} best: {folder} was not saved")
        info = {"step": int(step), "dir": folder.name, "world_size": self.world_size, "metric": metric, "value": float(value)}
        atomic_write_text(self._pointer("best"), json.dumps(info, indent=1))
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
            if (p / f"rank{self.rank}.pt").is_file():
                return p
            if (p / "last.json").is_file():
                info = CheckpointManager(p).read_pointer("last")
                return p / info["dir"]
            raise FileNotFoundError(f"no checkpoint in {p} (expected rank{self.rank}.pt or last.json)")
        info = self.read_pointer(name)
        if info is None:
            return None
        folder = self.root / info["dir"]
        if not folder.is_dir():
            raise FileNotFoundError(f"checkpoint pointer {self._pointer(name)} names {folder}, which is missing")
        return folder

    def load(self, folder: str | os.PathLike) -> dict[str, Any]:
        """This rank's state from a checkpoint folder (world size checked)."""
        state = load_checkpoint_file(Path(folder) / f"rank{self.rank}.pt")
        if int(state.get("world_size", 1)) != self.world_size:
            raise ValueError(
                f"checkpoint {folder} was written by {state.get('world_size')} process(es) but this run has "
                f"{self.world_size}: Partial FC shards cannot be re-split; resume with the same number of processes"
            )
        return state
