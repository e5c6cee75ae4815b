"""Frozen distillation teacher and its embedding cache.

The teacher (any variant, in eval mode, reparameterised for speed, no gradients) gives the
target embedding of every training image. With the cache, the teacher runs once per sample:
the first time a sample is met, the teacher embeds the image *and* its horizontal flip in
one batch and both are stored, keyed by (sample index, flip flag); every later epoch reads
them back. Flip flags come from the trainer (deterministic per seed, epoch and sample), so
the cached target is exactly the one a live teacher would compute for that view.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import warnings
from contextlib import nullcontext
from pathlib import Path
from typing import Callable, ContextManager

import numpy as np
import torch
from torch import nn

from facelivt.data.transforms import hflip
from facelivt.errors import FaceLiVTError, InputNotFoundError, InvalidInputError, OutputWriteError, UnavailableError
from facelivt.files import reserve_file, write_text
from facelivt.models import create_model, load_model, reparameterize_model

from .config import CACHE_DTYPES, DistillConfig
from .distributed import DistEnv, any_true

log = logging.getLogger(__name__)


def build_teacher(
    name: str,
    weights: str | None,
    device: torch.device | str = "cpu",
    allow_random: bool = False,
    channels_last: bool = False,
) -> nn.Module:
    """The frozen teacher in deploy form and eval mode, every parameter ``requires_grad=False``.

    ``weights``: this project's safetensors or a released ``.pt``. Without weights the teacher
    would be random; that is refused unless ``allow_random`` (tests, benchmarks)."""
    if weights is None:
        if not allow_random:
            raise InvalidInputError(
                "distillation needs teacher weights: set distill.teacher_weights (or distill.allow_random_teacher=true "
                "for a smoke test)"
            )
        log.warning("distillation teacher %s is randomly initialised", name)
        teacher = reparameterize_model(create_model(name).eval())
    else:
        if not Path(weights).is_file():
            raise InputNotFoundError(f"teacher weights not found: {weights}")
        teacher = load_model(name, weights, deploy=True)
    teacher = teacher.to(device).eval()
    if channels_last:
        teacher = teacher.to(memory_format=torch.channels_last)
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def teacher_fingerprint(teacher: nn.Module) -> str:
    """A short hash of the teacher's weights (cache files are only reused for the same teacher)."""
    h = hashlib.sha1()
    for k, v in sorted(teacher.state_dict().items()):
        h.update(k.encode())
        t = v.detach().float().cpu().reshape(-1)
        h.update(t[:: max(1, t.numel() // 4096)].numpy().tobytes())
        h.update(str(tuple(v.shape)).encode())
    return h.hexdigest()[:16]


class TeacherCache:
    """Embeddings of ``num_samples`` samples x {plain, flipped}, and which are filled.

    In memory (a torch tensor) or, with ``path``, in a numpy memmap file (for data sets too big
    for RAM; shared by the processes of one machine). The data is written before the filled
    flag, so a killed process never leaves a flag set over missing data. ``key`` (teacher,
    data, dtype) is stored beside a disk cache; a different key starts the cache afresh.
    """

    def __init__(self, num_samples: int, dim: int, dtype: str = "float16", path: str | os.PathLike | None = None, key: str = "") -> None:
        if num_samples < 1 or dim < 1:
            raise InvalidInputError(f"teacher cache needs num_samples >= 1 and dim >= 1, got {num_samples}, {dim}")
        if dtype not in CACHE_DTYPES:
            raise InvalidInputError(f"teacher cache dtype must be {' or '.join(CACHE_DTYPES)}, got {dtype!r}")
        self.num_samples, self.dim, self.dtype = int(num_samples), int(dim), dtype
        self.path = Path(path) if path is not None else None
        self.hits = 0
        self.misses = 0
        if self.path is None:
            self._emb = np.zeros((self.num_samples, 2, self.dim), dtype=dtype)
            self._filled = np.zeros((self.num_samples, 2), dtype=np.uint8)
        else:
            self._open_disk(key)

    def _open_disk(self, key: str) -> None:
        assert self.path is not None
        new_folder = not self.path.exists()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputWriteError(self.path, exc) from exc
        meta_path = self.path / "meta.json"
        meta = {"key": key, "num_samples": self.num_samples, "dim": self.dim, "dtype": self.dtype}
        emb_path, filled_path = self.path / "embeddings.bin", self.path / "filled.bin"
        fresh = True
        if meta_path.is_file() and emb_path.is_file() and filled_path.is_file():
            try:
                fresh = json.loads(meta_path.read_text()) != meta
            except (OSError, json.JSONDecodeError):
                fresh = True
        if fresh:
            for p in (meta_path, emb_path, filled_path):
                if p.exists():
                    p.unlink()
        try:
            self._map(emb_path, filled_path)
            if fresh:
                self._filled[:] = 0
                self._filled.flush()
                write_text(meta_path, json.dumps(meta))
        except OutputWriteError:
            if fresh:  # nothing of a cache that could not be made stays behind
                self._emb = self._filled = None
                for p in (emb_path, filled_path):
                    p.unlink(missing_ok=True)
                if new_folder:
                    with contextlib.suppress(OSError):
                        self.path.rmdir()
            raise

    def _map(self, emb_path: Path, filled_path: Path) -> None:
        """Allocate both files' blocks, then map them: a write through a map into a hole of a sparse
        file on a full disk is a SIGBUS, so a full disk must show up here, as an error."""
        emb_bytes = self.num_samples * 2 * self.dim * np.dtype(self.dtype).itemsize
        try:
            reserve_file(emb_path, emb_bytes)
            reserve_file(filled_path, self.num_samples * 2)
        except OutputWriteError as exc:
            cause = exc.cause
            hint = f"{cause.strerror or cause} (the teacher cache needs {emb_bytes:,} bytes; free space or set distill.cache=memory)"
            raise OutputWriteError(exc.path, OSError(cause.errno, hint)) from exc
        self._emb = np.memmap(emb_path, dtype=self.dtype, mode="r+", shape=(self.num_samples, 2, self.dim))
        self._filled = np.memmap(filled_path, dtype=np.uint8, mode="r+", shape=(self.num_samples, 2))

    @property
    def filled_fraction(self) -> float:
        return float(np.count_nonzero(self._filled)) / self._filled.size

    def lookup(self, indices: np.ndarray, flips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(embeddings [B, D] float32 (rows of misses are garbage), hit mask [B] bool)."""
        indices = np.asarray(indices, dtype=np.int64)
        flips = np.asarray(flips, dtype=np.int64)
        hit = self._filled[indices, flips].astype(bool)
        emb = np.asarray(self._emb[indices, flips], dtype=np.float32)
        self.hits += int(hit.sum())
        self.misses += int((~hit).sum())
        return emb, hit

    def store(self, indices: np.ndarray, flips: np.ndarray, emb: np.ndarray, emb_other: np.ndarray | None = None) -> None:
        """Store the embedding of each sample's view (``flips``) and, if given, of its other view (``1 - flips``)."""
        indices = np.asarray(indices, dtype=np.int64)
        flips = np.asarray(flips, dtype=np.int64)
        self._emb[indices, flips] = emb.astype(self.dtype)
        if emb_other is not None:
            self._emb[indices, 1 - flips] = emb_other.astype(self.dtype)
        self._filled[indices, flips] = 1
        if emb_other is not None:
            self._filled[indices, 1 - flips] = 1

    def flush(self) -> None:
        if isinstance(self._emb, np.memmap):
            self._emb.flush()
            self._filled.flush()


class TeacherTargets:
    """Teacher embeddings for a training batch, live or through a :class:`TeacherCache`.

    ``autocast`` is a factory of the context the teacher runs in (mixed precision). ``both_views``:
    on a cache miss also embed (and cache) the mirrored image - what the next epochs need when
    training flips images; without flips only the plain view is ever asked for."""

    def __init__(
        self,
        teacher: nn.Module,
        cache: TeacherCache | None = None,
        autocast: Callable[[], ContextManager] | None = None,
        channels_last: bool = False,
        both_views: bool = True,
    ) -> None:
        self.teacher = teacher
        self.cache = cache
        self.both_views = both_views
        self.autocast = autocast or nullcontext
        self.channels_last = channels_last

    @classmethod
    def build(
        cls,
        teacher: nn.Module,
        distill: DistillConfig,
        env: DistEnv,
        dim: int,
        num_samples: int | None,
        folder: str | os.PathLike | None,
        data_key: str = "",
        **options,
    ) -> "TeacherTargets":
        """The targets of ``teacher`` with the cache ``distill.cache`` asks for - the one place a
        :class:`TeacherCache` is created and keyed (teacher fingerprint + ``data_key``, see
        :func:`data_key`). A disk cache lives in ``folder``; under torch.distributed the first
        process of each machine creates (or resets) it before the others open it. ``options``: the
        other arguments of :class:`TeacherTargets`. :meth:`flush` writes it back."""
        if distill.cache == "none":
            return cls(teacher, None, **options)
        if num_samples is None:
            raise InvalidInputError("a teacher cache needs the number of training samples")
        if distill.cache == "disk" and folder is None:
            raise InvalidInputError("distill.cache=disk needs an output folder")
        path = folder if distill.cache == "disk" else None
        key = f"{teacher_fingerprint(teacher)}:{data_key}"

        def open_cache() -> TeacherCache:
            return TeacherCache(num_samples, dim, distill.cache_dtype, path, key)

        if path is None or not env.distributed:
            return cls(teacher, open_cache(), **options)
        # the processes of a machine share one cache file: its first process creates (or resets) it;
        # when it cannot (a full disk), every process stops with an error, none waits for it
        cache, error = None, None
        if env.local_rank == 0:
            try:
                cache = open_cache()
            except FaceLiVTError as exc:
                error = exc
        if any_true(env, error is not None):
            raise error or UnavailableError(f"the teacher cache in {path} could not be made (see the first process's error)")
        return cls(teacher, cache if cache is not None else open_cache(), **options)

    def flush(self) -> None:
        """Write a disk cache's new entries back (nothing to do live or in memory)."""
        if self.cache is not None:
            self.cache.flush()

    @torch.no_grad()
    def _embed(self, images: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with self.autocast():
            return self.teacher(images).float()

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, indices: torch.Tensor | None = None, flips: torch.Tensor | None = None) -> torch.Tensor:
        """Teacher embeddings [B, D] float32 of ``images`` (already flipped where ``flips`` is 1)."""
        if self.cache is None:
            return self._embed(images)
        if indices is None or flips is None:
            raise ValueError("a cached teacher needs the sample indices and flip flags of the batch")
        idx = indices.detach().cpu().numpy().astype(np.int64)
        flp = flips.detach().cpu().numpy().astype(np.int64)
        emb, hit = self.cache.lookup(idx, flp)
        miss = np.flatnonzero(~hit)
        out = torch.from_numpy(emb).to(images.device)
        if miss.size:
            sel = torch.from_numpy(miss).to(images.device)
            x = images.index_select(0, sel)
            if self.both_views:
                both = self._embed(torch.cat([x, hflip(x)]))
                own, other = both[: miss.size], both[miss.size :]
                self.cache.store(idx[miss], flp[miss], own.cpu().numpy(), other.cpu().numpy())
            else:
                own = self._embed(x)
                self.cache.store(idx[miss], flp[miss], own.cpu().numpy())
            if self.cache.dtype == "float16":
                own = own.half().float()  # hits and misses see the same (rounded) target
            out[sel] = own
        return out


def data_key(indices: np.ndarray, labels: np.ndarray) -> str:
    """The training data's part of a cache key (the teacher's part is its fingerprint)."""
    return f"{len(indices)}:{int(np.asarray(indices).sum())}:{int(np.asarray(labels).sum())}"


def warn_flip_mismatch(dataset) -> None:
    """Warn when a data set applies its own random transform (the cache assumes deterministic views)."""
    if getattr(dataset, "transform", None) is not None:
        warnings.warn(
            "the data set applies its own transform; the teacher cache assumes each (sample, flip) view is "
            "deterministic - leave the data set's transform unset and use data.flip",
            RuntimeWarning,
            stacklevel=2,
        )
