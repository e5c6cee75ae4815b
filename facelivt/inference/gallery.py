"""A gallery of enrolled identities with top-k cosine search, kept in an SQLite database.

Every enrolled embedding is kept (L2-normalised); each identity is searched through one template,
the normalised mean of its embeddings, so a query costs one product with an (identities x dim)
matrix. Search uses faiss (exact inner-product index) when it is installed and numpy otherwise;
both give the same result. 100k identities x 512 floats is 200 MB and a query takes milliseconds.

``Gallery(dim)`` lives in memory. ``Gallery.open(folder)`` is backed by ``folder/gallery.sqlite``
(see :mod:`facelivt.inference.gallery_store`): the search index is built from the database when it
is opened and rebuilt when another process has committed changes; every enrolment or removal is
written at once, in one transaction. ``Gallery.open(folder, create=True)`` makes a new gallery with
its first enrolment, in the same transaction: an enrolment that fails (a full disk) leaves no
gallery, and no folder it made, behind. An old two-file gallery (``gallery.json`` +
``embeddings.safetensors``) in the folder is imported on the first open and its files are renamed
to ``*.imported`` (see :mod:`facelivt.inference.gallery_legacy`).

A recognizer (:class:`~facelivt.inference.recognizer.FaceRecognizer`) enrols into and searches
``recognizer.gallery``; the gallery's lifecycle is here: :meth:`Gallery.open_for` opens a folder's
gallery for a recognizer (checked against the model that made its embeddings), :meth:`Gallery.attach`
gives a recognizer a gallery, and :meth:`Gallery.save` records the recognizer's threshold with it.
This module does not import the recognizer: :class:`GalleryUser` is what it needs of one.
"""
from __future__ import annotations

import io
import json
import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Protocol, Sequence

import numpy as np

from facelivt.errors import InvalidInputError, OutputWriteError, UnavailableError, UnknownNameError
from facelivt.files import file_sha256, write_bytes
from facelivt.extras import install_hint, require
from facelivt.inference.calibration import replaceable
from facelivt.inference.gallery_legacy import AlreadyImportedError, LegacyGallery, mark_imported, read_legacy
from facelivt.inference.gallery_store import (
    DB_NAME,
    RESERVED_KEYS,
    GalleryError,
    GalleryExistsError,
    GalleryMismatchError,
    GalleryNotFoundError,
    GalleryStore,
    IdentityInfo,
    Snapshot,
    check_meta,
    now,
)

log = logging.getLogger(__name__)

#: Metadata keys that must agree for embeddings to be comparable.
COMPARABLE_KEYS = ("model", "weights_fingerprint", "flip")


def faiss_available() -> bool:
    """True when the optional faiss package is installed (it is imported when a faiss index is first built,
    not with this module: a command that searches no gallery does not pay for it)."""
    return importlib.util.find_spec("faiss") is not None


@dataclass(frozen=True)
class Match:
    """One search result: identity ``name``, cosine ``score`` and, when a threshold was applied,
    whether the score reaches it (``accepted``)."""

    name: str
    score: float
    accepted: bool | None = None


class GalleryUser(Protocol):
    """What the gallery lifecycle needs of the recognizer that uses a gallery (a ``FaceRecognizer``):
    what it records about its embeddings (:meth:`gallery_metadata`, :attr:`embedding_size`), its
    threshold and where that came from, and the gallery it searches."""

    gallery: "Gallery"
    threshold: float
    threshold_source: str

    @property
    def embedding_size(self) -> int: ...

    def gallery_metadata(self) -> dict: ...


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Row-wise L2 normalisation (float32)."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), eps)


class _Rows:
    """A growable float32 matrix (amortised O(1) appends)."""

    def __init__(self, dim: int, dtype: Any = np.float32) -> None:
        self.data = np.zeros((16, dim) if dim else (16,), dtype=dtype)
        self.n = 0

    @classmethod
    def wrap(cls, array: np.ndarray) -> "_Rows":
        """Rows backed by ``array`` itself (no copy)."""
        rows = cls.__new__(cls)
        rows.data = array
        rows.n = len(array)
        return rows

    def append(self, rows: np.ndarray) -> None:
        need = self.n + len(rows)
        if need > len(self.data):
            grown = np.zeros((max(need, 2 * len(self.data)),) + self.data.shape[1:], dtype=self.data.dtype)
            grown[: self.n] = self.data[: self.n]
            self.data = grown
        self.data[self.n : need] = rows
        self.n = need

    def view(self) -> np.ndarray:
        return self.data[: self.n]


class Gallery:
    """Identities and their embeddings. ``backend``: "auto" (faiss if installed), "faiss" or "numpy".

    ``Gallery(dim)`` is in memory; :meth:`open` gives one backed by a gallery folder, :meth:`save`
    writes one to a folder (and keeps it backed by it). ``metadata``: JSON values; ``threshold``, if
    given, must be a cosine score in (-1, 1].
    """

    def __init__(self, dim: int = 512, *, metadata: dict | None = None, backend: str = "auto") -> None:
        if isinstance(dim, bool) or int(dim) <= 0:
            raise InvalidInputError(f"embedding dimension must be positive, got {dim}")
        if backend not in ("auto", "faiss", "numpy"):
            raise InvalidInputError(f"backend must be 'auto', 'faiss' or 'numpy', got {backend!r}")
        if backend == "faiss" and not faiss_available():
            raise UnavailableError(f"backend='faiss' requested but faiss is not installed: {install_hint('faiss')}")
        self.dim = int(dim)
        self.backend = "faiss" if backend == "faiss" or (backend == "auto" and faiss_available()) else "numpy"
        self.metadata: dict = _user_metadata(metadata or {}, "gallery metadata")
        self._store: GalleryStore | None = None
        self._pending: Path | None = None  # the folder where the first enrolment makes the gallery
        self._outdated = False  # the database holds changes the index does not have yet
        self._names: list[str] = []
        self._ids: dict[str, int] = {}
        self._vectors = _Rows(self.dim)
        self._labels = _Rows(0, np.int64)
        self._sums = _Rows(self.dim)
        self._templates = _Rows(self.dim)
        self._index = None
        self._indexed = 0  # templates already in the faiss index
        self._stale = False  # an indexed template changed: rebuild

    # ------------------------------------------------------------------ contents
    @property
    def path(self) -> Path | None:
        """The gallery folder, or None for a gallery in memory."""
        return self._pending if self._store is None else self._store.path.parent

    @property
    def names(self) -> list[str]:
        """Enrolled identity names, in enrolment order."""
        self.refresh()
        return list(self._names)

    def __len__(self) -> int:
        self.refresh()
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        self.refresh()
        return name in self._ids

    @property
    def num_embeddings(self) -> int:
        self.refresh()
        return self._vectors.n

    def embeddings_of(self, name: str) -> np.ndarray:
        """All embeddings enrolled for ``name`` (n x dim, normalised)."""
        self.refresh()
        if name not in self._ids:
            raise UnknownNameError(f"identity {name!r} is not in the gallery")
        return self._vectors.view()[self._labels.view() == self._ids[name]].copy()

    def template(self, name: str) -> np.ndarray:
        """The normalised mean embedding used to search ``name``."""
        self.refresh()
        if name not in self._ids:
            raise UnknownNameError(f"identity {name!r} is not in the gallery")
        return self._templates.view()[self._ids[name]].copy()

    def _check_embeddings(self, embeddings: np.ndarray) -> np.ndarray:
        e = np.asarray(embeddings, dtype=np.float32)
        if e.ndim == 1:
            e = e[None]
        if e.ndim != 2 or e.shape[1] != self.dim:
            raise InvalidInputError(f"expected embeddings of dimension {self.dim}, got shape {e.shape}")
        if not np.isfinite(e).all():
            raise InvalidInputError("embeddings contain NaN or infinite values")
        if (np.linalg.norm(e, axis=1) == 0).any():
            raise InvalidInputError("embeddings contain an all-zero vector")
        return l2_normalize(e)

    def enroll_embeddings(
        self, name: str, embeddings: np.ndarray, *, sources: Sequence[str | os.PathLike] | None = None,
        hashes: Sequence[str | None] | None = None,
    ) -> int:
        """Add embeddings (n x dim or dim) to identity ``name`` (created if new); returns how many were
        added. A gallery backed by a folder writes them at once, in one transaction; ``sources`` (one
        per embedding: the photos) are recorded with them, and so are ``hashes`` (their
        :func:`photo_sha256`), by which photos ``name`` already has are skipped (see :meth:`enrolled`)."""
        if not isinstance(name, str) or not name.strip():
            raise InvalidInputError(f"identity name must be a non-empty string, got {name!r}")
        e = self._check_embeddings(embeddings)
        if len(e) == 0:
            raise InvalidInputError(f"no embeddings given for {name!r}")
        src = None if sources is None else [str(p) for p in sources]
        if hashes is not None and len(hashes) != len(e):
            raise InvalidInputError(f"{len(e)} embeddings but {len(hashes)} hashes")
        if self._pending is not None:
            self._adopt()  # another process may have made it meanwhile
        if self._pending is not None:
            return self._create(name, e, src, hashes)
        if self._store is not None:
            current, added = self._store.add(name, e, src, hashes)
            if not current or self._outdated or added < len(e):  # others wrote too: the next read reloads
                self._outdated = True
                return added
        self._add_to_index(name, e)
        return len(e)

    def enrolled(self, name: str, hashes: Sequence[str | None],
                 sources: Sequence[str | os.PathLike | None] | None = None) -> list[bool]:
        """Whether each photo (its :func:`photo_sha256` in ``hashes``; ``sources``: its path) is enrolled
        for ``name`` in the gallery's folder already: one with the same content, or, among embeddings
        recorded without a hash (by an older facelivt), one from the same path. A gallery in memory
        records no photos: all False."""
        if self._pending is not None:
            self._adopt()
        if self._store is None:
            return [False] * len(hashes)
        paths = [None if p is None else str(p) for p in sources] if sources is not None else [None] * len(hashes)
        return self._store.enrolled(name, list(hashes), paths)

    def _create(self, name: str, e: np.ndarray, sources: list[str] | None, hashes) -> int:
        """Make the gallery of the pending folder holding this first enrolment (or, when another process
        made it meanwhile, add to theirs); returns how many embeddings were added. A failure leaves
        nothing behind, not even a folder made for it."""
        root = self._pending
        made = _make_folders(root)
        rows = Snapshot([name], e, np.zeros(len(e), np.int64), {}, self.dim)
        meta = _new_meta(self.dim, self.metadata)
        try:
            store, created = GalleryStore.create(root / DB_NAME, meta, rows, sources, hashes)
        except BaseException:
            _remove_folders(made)
            raise
        added = len(e)
        try:
            if not created:
                snap = store.snapshot()
                check_comparable(snap.meta, snap.dim, self.metadata, self.dim, root)
                added = store.add(name, e, sources, hashes)[1]
        except BaseException:
            store.close()
            raise
        self._store, self._pending, self._outdated = store, None, True  # the next read loads it
        return added

    def _adopt(self) -> None:
        """Use the gallery another process made in the pending folder, if there is one now."""
        store = GalleryStore.open(self._pending / DB_NAME)
        if store is None:
            return
        try:
            snap = store.snapshot()
            check_comparable(snap.meta, snap.dim, self.metadata, self.dim, self._pending)
        except BaseException:
            store.close()
            raise
        self._store, self._pending = store, None
        self._load(snap)

    def _add_to_index(self, name: str, e: np.ndarray) -> None:
        if name in self._ids:
            idx = self._ids[name]
            self._sums.view()[idx] += e.sum(0)
            self._templates.view()[idx] = l2_normalize(self._sums.view()[idx])
            if idx < self._indexed:
                self._stale = True
        else:
            idx = len(self._names)
            self._ids[name] = idx
            self._names.append(name)
            total = e.sum(0, keepdims=True)
            self._sums.append(total)
            self._templates.append(l2_normalize(total))
        self._vectors.append(e)
        self._labels.append(np.full(len(e), idx, dtype=np.int64))

    def identities(self) -> list[IdentityInfo]:
        """Every identity with its embedding and photo counts, in enrolment order (from the database for
        a gallery backed by a folder, with the dates; in memory: photos are not recorded)."""
        if self._pending is not None:
            self._adopt()
        if self._store is not None:
            return self._store.identities()
        counts = np.bincount(self._labels.view(), minlength=len(self._names))
        return [IdentityInfo(n, int(c), 0) for n, c in zip(self._names, counts)]

    def identity(self, name: str) -> IdentityInfo:
        """Identity ``name``'s counts, dates and photo paths (:class:`UnknownNameError` when not there)."""
        if self._pending is not None:
            self._adopt()
        if self._store is not None:
            return self._store.identity(name)
        return IdentityInfo(name, len(self.embeddings_of(name)), 0)

    def rename(self, old: str, new: str) -> None:
        """Call identity ``old`` ``new`` (in the folder too, in one transaction). An unknown ``old`` raises
        :class:`UnknownNameError`, a ``new`` name the gallery has :class:`InvalidInputError`."""
        if not isinstance(new, str) or not new.strip():
            raise InvalidInputError(f"identity name must be a non-empty string, got {new!r}")
        self.refresh()
        if self._store is not None:
            current = self._store.rename(old, new)
            if not current or self._outdated or old not in self._ids:
                self._outdated = True
                return
        if old not in self._ids:
            raise UnknownNameError(f"identity {old!r} is not in the gallery")
        if new in self._ids:
            raise InvalidInputError(f"identity {new!r} is in the gallery already: remove it first, or choose another name")
        idx = self._ids.pop(old)
        self._ids[new] = idx
        self._names[idx] = new

    def export(self, path: str | os.PathLike) -> Path:
        """Write every embedding to the NumPy archive ``path`` (.npz), atomically: ``embeddings`` (N x dim
        float32, normalised), ``names`` (N: each row's identity), ``sources`` (N: its photo, '' when not
        recorded), ``identities`` (the names in enrolment order) and ``metadata`` (the gallery's, JSON)."""
        path = Path(path)
        if path.suffix.lower() != ".npz":
            raise InvalidInputError(f"export writes a NumPy archive: give a file name ending in .npz, not {path.name}")
        self.refresh()
        if self._store is not None:
            rows = self._store.export_rows()
            names, sources, vectors = rows.names, rows.sources, rows.vectors
        else:
            order = np.argsort(self._labels.view(), kind="stable")
            vectors = self._vectors.view()[order]
            names = [self._names[int(i)] for i in self._labels.view()[order]]
            sources = [""] * len(names)
        buffer = io.BytesIO()
        np.savez(buffer, embeddings=np.asarray(vectors, np.float32).reshape(-1, self.dim),
                 names=np.array(names, dtype=str), sources=np.array(sources, dtype=str),
                 identities=np.array(list(dict.fromkeys(names)), dtype=str), metadata=np.array(json.dumps(self.metadata)))
        write_bytes(path, buffer.getvalue())
        return path

    def remove(self, name: str) -> None:
        """Forget identity ``name`` and its embeddings. For a gallery backed by a folder they are deleted
        in one transaction and the database is then rewritten without them (``VACUUM``, and its
        write-ahead log emptied): their bytes are gone from the files, not only unlinked."""
        self.refresh()
        if self._store is not None:
            current = self._store.remove(name)
            if not current or self._outdated or name not in self._ids:
                self._outdated = True
                return
        if name not in self._ids:
            raise UnknownNameError(f"identity {name!r} is not in the gallery")
        drop = self._ids[name]
        labels = self._labels.view()
        keep = labels != drop
        new_labels = labels[keep] - (labels[keep] > drop)
        self._set_all([n for n in self._names if n != name], self._vectors.view()[keep], new_labels)

    @classmethod
    def from_embeddings(
        cls, names: list[str], embeddings: np.ndarray, labels: np.ndarray | None = None, **kwargs: Any
    ) -> "Gallery":
        """A gallery in one pass: ``embeddings`` (N x D) with ``labels`` indexing ``names`` (default:
        row i belongs to ``names[i]``). Much faster than enrolling identities one by one."""
        embeddings = np.asarray(embeddings, dtype=np.float32)
        if embeddings.ndim != 2:
            raise InvalidInputError(f"expected an N x D embedding matrix, got shape {embeddings.shape}")
        labels = np.arange(len(embeddings)) if labels is None else np.asarray(labels)
        if labels.shape != (len(embeddings),):
            raise InvalidInputError(f"{len(embeddings)} embeddings but labels of shape {labels.shape}")
        if len(set(names)) != len(names) or not all(isinstance(n, str) and n.strip() for n in names):
            raise InvalidInputError("identity names must be distinct non-empty strings")
        gallery = cls(embeddings.shape[1], **kwargs)
        gallery._set_all(list(names), embeddings, labels)
        return gallery

    def _set_all(self, names: list[str], vectors: np.ndarray, labels: np.ndarray) -> None:
        """Replace the contents in one pass (labels index ``names``; every name needs a row)."""
        vectors = self._check_embeddings(vectors) if len(vectors) else np.zeros((0, self.dim), np.float32)
        labels = np.asarray(labels, dtype=np.int64)
        counts = np.bincount(labels, minlength=len(names)) if len(labels) else np.zeros(len(names), np.int64)
        if len(counts) != len(names) or (counts == 0).any():
            raise InvalidInputError("every identity needs at least one embedding and every label an identity")
        if len(names) and (counts == 1).all():
            sums = np.empty_like(vectors)
            sums[labels] = vectors
        else:
            import torch  # index_add_ is far faster than numpy's reduceat along rows

            sums = torch.zeros(len(names), self.dim, dtype=torch.float64)
            sums.index_add_(0, torch.from_numpy(np.ascontiguousarray(labels)), torch.from_numpy(vectors).double())
            sums = sums.float().numpy()
        self._reset()
        self._names = list(names)
        self._ids = {n: i for i, n in enumerate(self._names)}
        self._vectors = _Rows.wrap(vectors)
        self._labels = _Rows.wrap(labels.copy())
        self._sums = _Rows.wrap(sums)
        self._templates = _Rows.wrap(l2_normalize(sums))

    def _reset(self) -> None:
        self._names, self._ids = [], {}
        self._vectors, self._labels = _Rows(self.dim), _Rows(0, np.int64)
        self._sums, self._templates = _Rows(self.dim), _Rows(self.dim)
        self._index, self._indexed, self._stale = None, 0, False

    # ------------------------------------------------------------------ search
    def _faiss_index(self):
        if self._index is None or self._stale:
            self._index = require("faiss", "The faiss gallery backend").IndexFlatIP(self.dim)
            self._indexed, self._stale = 0, False
        n = len(self._names)
        if self._indexed < n:
            self._index.add(np.ascontiguousarray(self._templates.view()[self._indexed : n]))
            self._indexed = n
        return self._index

    def search(self, queries: np.ndarray, k: int = 5) -> list[list[Match]]:
        """Top-``k`` identities for each query embedding (dim or q x dim), best cosine score first."""
        if int(k) < 1:
            raise InvalidInputError(f"k must be at least 1, got {k}")
        self.refresh()
        q = self._check_embeddings(queries)
        if len(self._names) == 0:
            raise InvalidInputError("the gallery is empty: enroll identities first")
        k = min(int(k), len(self._names))
        if self.backend == "faiss":
            scores, idx = self._faiss_index().search(np.ascontiguousarray(q), k)
        else:
            sims = q @ self._templates.view().T  # q x n
            if k < sims.shape[1]:
                part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            else:
                part = np.broadcast_to(np.arange(sims.shape[1]), (len(q), sims.shape[1]))
            part_scores = np.take_along_axis(sims, part, axis=1)
            order = np.argsort(-part_scores, axis=1, kind="stable")
            idx = np.take_along_axis(part, order, axis=1)
            scores = np.take_along_axis(part_scores, order, axis=1)
        return [[Match(self._names[int(i)], float(s)) for s, i in zip(srow, irow) if i >= 0] for srow, irow in zip(scores, idx)]

    # ------------------------------------------------------------------ folders
    @classmethod
    def open(
        cls,
        folder: str | os.PathLike,
        *,
        create: bool = False,
        dim: int | None = None,
        metadata: dict | None = None,
        backend: str = "auto",
        readonly: bool = False,
    ) -> "Gallery":
        """The gallery of ``folder`` (its ``gallery.sqlite``), index built from the database.

        An old two-file gallery there is imported first (once). ``create``: start a new gallery of
        embedding size ``dim`` with ``metadata`` when the folder holds none. ``dim`` and the keys
        ``model``, ``weights_fingerprint`` and ``flip`` of ``metadata``, when given, must agree with
        an existing gallery (:class:`GalleryMismatchError`). A damaged, foreign or newer file raises
        :class:`GalleryError`, no gallery :class:`GalleryNotFoundError`. ``readonly``: to search it
        only (it can then be read from a read-only folder; enrolling raises :class:`GalleryWriteError`).
        """
        if create and readonly:
            raise InvalidInputError("a gallery opened to create it cannot be read-only")
        wanted = _user_metadata(metadata or {}, "gallery metadata")
        store = _open_store(Path(folder), create, dim, wanted, readonly)
        if store is None:  # none there yet: the first enrolment makes it
            gallery = cls(dim, metadata=wanted, backend=backend)
            gallery._pending = Path(folder)
            return gallery
        try:
            snap = store.snapshot()
            check_comparable(snap.meta, snap.dim, wanted, dim, folder)
            gallery = cls(snap.dim, backend=backend)
            gallery._store = store
            gallery._load(snap)
        except BaseException:
            store.close()
            raise
        return gallery

    @classmethod
    def load(cls, folder: str | os.PathLike, *, backend: str = "auto") -> "Gallery":
        """:meth:`open` an existing gallery (kept for compatibility)."""
        return cls.open(folder, backend=backend)

    @classmethod
    def open_for(cls, user: GalleryUser, folder: str | os.PathLike, *, create: bool = False, check: bool = True,
                 readonly: bool = False) -> "Gallery":
        """The gallery of ``folder`` (a new one when ``create`` and there is none), attached to ``user``
        (:meth:`attach`): its embeddings must come from the user's model, weights and flip setting unless
        ``check`` is False (then only an existing gallery is opened). Enrolments are written to it at once;
        ``readonly``: only to search it (the folder may then be read-only)."""
        if check:
            gallery = cls.open(folder, create=create, dim=user.embedding_size, metadata=user.gallery_metadata(),
                               readonly=readonly)
        else:
            gallery = cls.open(folder, readonly=readonly)
        return gallery.attach(user, check=check)

    def attach(self, user: GalleryUser, *, check: bool = True) -> "Gallery":
        """``user`` searches this gallery from now on (``check``: refuse one made with another model). Its
        saved threshold is taken unless the user's threshold was given or calibrated in this run (it
        replaces the default and the threshold of the weights' model card)."""
        meta = self.metadata
        if check:
            check_comparable(meta, self.dim, user.gallery_metadata(), user.embedding_size, self.path or "")
        user.threshold, user.threshold_source = self.threshold_for(user.threshold, user.threshold_source)
        user.gallery = self
        return self

    def threshold_for(self, threshold: float, source: str) -> tuple[float, str]:
        """The threshold (and its source) a recognizer holding ``threshold`` from ``source`` uses on this
        gallery: the gallery's saved one when the recognizer's is the uncalibrated default or its model card's, else its own."""
        meta = self.metadata
        if "threshold" in meta and replaceable(source):
            return float(meta["threshold"]), str(meta.get("threshold_source", f"gallery {self.path}"))
        return threshold, source

    def refresh(self) -> None:
        """Rebuild the index if another process changed the database since it was read (cheap otherwise)."""
        if self._pending is not None:
            self._adopt()
        if self._store is not None and (self._outdated or self._store.changed()):
            self._load(self._store.snapshot())

    def _load(self, snap: Snapshot) -> None:
        if snap.dim != self.dim:
            raise GalleryError(f"{self._store.path}: embedding size changed from {self.dim} to {snap.dim}")
        self.metadata = {k: v for k, v in snap.meta.items() if k not in RESERVED_KEYS}
        if snap.names:
            self._set_all(snap.names, snap.vectors, snap.labels)
        else:
            self._reset()
        self._outdated = False

    def update_metadata(self, **items: Any) -> None:
        """Set metadata keys (None removes one); a gallery backed by a folder writes them at once."""
        _user_metadata({k: v for k, v in items.items() if v is not None}, "gallery metadata")
        if self._store is not None:
            self._store.set_meta(items)
        for key, value in items.items():
            if value is None:
                self.metadata.pop(key, None)
            else:
                self.metadata[key] = value

    def save(self, folder: str | os.PathLike, *, overwrite: bool = False, threshold: float | None = None,
             threshold_source: str | None = None) -> Path:
        """Write the gallery to ``folder/gallery.sqlite`` in one transaction; a gallery in memory is
        then backed by the folder (later changes are written as they happen). Saving a gallery into
        its own folder writes its metadata (its contents are already there). A folder holding another
        gallery is refused (:class:`GalleryExistsError`) unless ``overwrite``. ``threshold`` and
        ``threshold_source`` (a recognizer's) go into the metadata first: :meth:`attach` takes them."""
        root = Path(folder)
        self.refresh()
        if threshold is not None:
            self.metadata["threshold"] = threshold
        if threshold_source is not None:
            self.metadata["threshold_source"] = threshold_source
        meta = _user_metadata(self.metadata, "gallery metadata")
        if self._store is not None and _same_file(self._store.path, root / DB_NAME):
            self._store.set_meta(meta)
            return root
        rows = Snapshot(list(self._names), self._vectors.view(), self._labels.view(), {}, self.dim)
        store = _save_store(root, rows, _new_meta(self.dim, meta), overwrite)
        if self._store is None:
            self._store, self._pending = store, None  # the next read reloads from the database
        else:
            store.close()
        return root

    def close(self) -> None:
        """Close the database (the gallery stays readable in memory, no longer backed by the folder)."""
        self._pending = None
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> "Gallery":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _user_metadata(meta: dict, where: str) -> dict:
    if not isinstance(meta, dict):
        raise InvalidInputError(f"{where} must be a dict, got {type(meta).__name__}")
    clash = RESERVED_KEYS & set(meta)
    if clash:
        raise InvalidInputError(f"{where}: the keys {sorted(clash)} are kept by the gallery itself")
    check_meta(meta, where)
    return dict(meta)


def _new_meta(dim: int, metadata: dict) -> dict:
    return {"dim": int(dim), "created": now(), **metadata}


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_comparable(have: dict, have_dim: int, want: dict, want_dim: int | None, where: object) -> None:
    """Refuse a gallery whose model, weights, flip setting or embedding size differ from the wanted ones."""
    for key in COMPARABLE_KEYS:
        if key in have and key in want and have[key] != want[key]:
            if key == "flip":
                raise GalleryMismatchError(_flip_mismatch(bool(have[key]), where))
            raise GalleryMismatchError(
                f"gallery {where} was built with {key}={have[key]!r} but this recognizer has {want[key]!r}: "
                f"embeddings from different {'models' if key == 'model' else 'weights'} are not comparable"
            )
    if want_dim is not None and have_dim != int(want_dim):
        raise GalleryMismatchError(f"gallery {where} holds {have_dim}-d embeddings, the model gives {want_dim}-d")


def _flip_mismatch(gallery_flip: bool, where: object) -> str:
    """The flip setting of the gallery and of this run differ: say which is which and what to pass."""
    on = "with flip (each embedding adds the one of the mirrored crop)"
    off = "without flip (--no-flip)"
    do = "drop --no-flip (flip=True)" if gallery_flip else "pass --no-flip (flip=False)"
    return (f"gallery {where} was enrolled {on if gallery_flip else off} but this run embeds {off if gallery_flip else on}: "
            f"their embeddings are not comparable; {do} to use this gallery")


def _open_store(root: Path, create: bool, dim: int | None, metadata: dict,
                readonly: bool = False) -> GalleryStore | None:
    """The gallery database of ``root`` (an old two-file gallery imported first); None where there is
    none and ``create`` (the first enrolment makes it)."""
    if root.exists() and not root.is_dir():
        raise GalleryError(f"gallery path {root} exists and is not a folder")
    for attempt in range(3):
        store = GalleryStore.open(root / DB_NAME, readonly=readonly)
        if store is not None:
            return store
        try:
            legacy = read_legacy(root)
        except AlreadyImportedError:  # another process may have imported it just now: look again
            if attempt == 2:
                raise
            continue
        except FileNotFoundError as exc:  # renamed while being read, by a process importing it
            if isinstance(exc, GalleryError) or attempt == 2:
                raise
            continue
        if legacy is not None:
            return _import(root, legacy)
        if not create:
            raise GalleryNotFoundError(f"no gallery in {root} ({DB_NAME} is missing or empty)")
        if dim is None:
            raise InvalidInputError("a new gallery needs its embedding size (dim)")
        return None
    raise AssertionError("unreachable")  # pragma: no cover


def _make_folders(root: Path) -> list[Path]:
    """Make ``root`` and its missing parents; returns the folders made, deepest first."""
    made, folder = [], root
    while not folder.exists() and folder != folder.parent:
        made.append(folder)
        folder = folder.parent
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _remove_folders(made)
        raise OutputWriteError(root, exc) from exc
    return made


def _remove_folders(made: list[Path]) -> None:
    """Remove the folders :func:`_make_folders` made, deepest first, as long as they are empty."""
    for folder in made:
        try:
            folder.rmdir()
        except OSError:  # something is in it now (another process's gallery): keep it and its parents
            return


def _import(root: Path, legacy: LegacyGallery) -> GalleryStore:
    """A two-file gallery into a new database, in one transaction; its files are renamed after."""
    norms = np.linalg.norm(legacy.vectors, axis=1)
    vectors = legacy.vectors if np.allclose(norms, 1.0, atol=1e-5) else l2_normalize(legacy.vectors)
    meta = _new_meta(legacy.dim, legacy.metadata)
    meta["imported_from"] = {"files": [p.name for p in legacy.files], "at": meta["created"]}
    rows = Snapshot(legacy.names, vectors, legacy.labels, {}, legacy.dim)
    store, created = GalleryStore.create(root / DB_NAME, meta, rows)
    if created:
        mark_imported(legacy)
        log.info("imported the two-file gallery in %s (%d identities, %d embeddings) into %s",
                 root, len(legacy.names), len(vectors), DB_NAME)
    return store


def _save_store(root: Path, rows: Snapshot, meta: dict, overwrite: bool) -> GalleryStore:
    if root.exists() and not root.is_dir():
        raise GalleryError(f"gallery path {root} exists and is not a folder")
    exists = GalleryExistsError(f"{root} already holds a gallery: open it with Gallery.open(folder) to add to it, "
                                "or save(folder, overwrite=True) to replace it")
    made = _make_folders(root)
    try:
        store = GalleryStore.open(root / DB_NAME)
        if store is None:
            if not overwrite and read_legacy(root) is not None:
                raise exists
            store, created = GalleryStore.create(root / DB_NAME, meta, rows)
            if created:
                return store
    except BaseException:
        _remove_folders(made)
        raise
    if not overwrite:
        store.close()
        raise exists
    store.replace(rows, meta)
    return store


def photo_sha256(path: str | os.PathLike) -> str | None:
    """The sha256 of a photo file's bytes (hex), by which a gallery knows the photos it has; None when
    the file cannot be read."""
    try:
        return file_sha256(path)
    except OSError:
        return None


def build_gallery(items: Iterable[tuple[str, np.ndarray]], dim: int = 512, **kwargs: Any) -> Gallery:
    """A gallery from (name, embeddings) pairs."""
    gallery = Gallery(dim, **kwargs)
    for name, emb in items:
        gallery.enroll_embeddings(name, emb)
    return gallery
