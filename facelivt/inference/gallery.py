"""A gallery of enrolled identities with top-k cosine search, saved as safetensors + JSON.

Every enrolled embedding is kept (L2-normalised); each identity is searched through one template,
the normalised mean of its embeddings, so a query costs one product with an (identities x dim)
matrix. Search uses faiss (exact inner-product index) when it is installed and numpy otherwise;
both give the same result. 100k identities x 512 floats is 200 MB and a query takes milliseconds.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

try:  # optional accelerator
    import faiss  # type: ignore
except ImportError:  # pragma: no cover - depends on the environment
    faiss = None

FORMAT = "facelivt-gallery"
VERSION = 1
JSON_NAME = "gallery.json"
TENSORS_NAME = "embeddings.safetensors"


def faiss_available() -> bool:
    """True when the optional faiss package could be imported."""
    return faiss is not None


@dataclass(frozen=True)
class Match:
    """One search result: identity ``name``, cosine ``score`` and, when a threshold was applied,
    whether the score reaches it (``accepted``)."""

    name: str
    score: float
    accepted: bool | None = None


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
    """Identities and their embeddings. ``backend``: "auto" (faiss if installed), "faiss" or "numpy"."""

    def __init__(self, dim: int = 512, *, metadata: dict | None = None, backend: str = "auto") -> None:
        if int(dim) <= 0:
            raise ValueError(f"embedding dimension must be positive, got {dim}")
        if backend not in ("auto", "faiss", "numpy"):
            raise ValueError(f"backend must be 'auto', 'faiss' or 'numpy', got {backend!r}")
        if backend == "faiss" and faiss is None:
            raise RuntimeError("backend='faiss' requested but faiss is not installed (pip install faiss-cpu)")
        self.dim = int(dim)
        self.backend = "faiss" if backend == "faiss" or (backend == "auto" and faiss is not None) else "numpy"
        self.metadata: dict = dict(metadata or {})
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
    def names(self) -> list[str]:
        """Enrolled identity names, in enrolment order."""
        return list(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._ids

    @property
    def num_embeddings(self) -> int:
        return self._vectors.n

    def embeddings_of(self, name: str) -> np.ndarray:
        """All embeddings enrolled for ``name`` (n x dim, normalised)."""
        if name not in self._ids:
            raise KeyError(f"identity {name!r} is not in the gallery")
        return self._vectors.view()[self._labels.view() == self._ids[name]].copy()

    def template(self, name: str) -> np.ndarray:
        """The normalised mean embedding used to search ``name``."""
        if name not in self._ids:
            raise KeyError(f"identity {name!r} is not in the gallery")
        return self._templates.view()[self._ids[name]].copy()

    def _check_embeddings(self, embeddings: np.ndarray) -> np.ndarray:
        e = np.asarray(embeddings, dtype=np.float32)
        if e.ndim == 1:
            e = e[None]
        if e.ndim != 2 or e.shape[1] != self.dim:
            raise ValueError(f"expected embeddings of dimension {self.dim}, got shape {e.shape}")
        if not np.isfinite(e).all():
            raise ValueError("embeddings contain NaN or infinite values")
        if (np.linalg.norm(e, axis=1) == 0).any():
            raise ValueError("embeddings contain an all-zero vector")
        return l2_normalize(e)

    def enroll_embeddings(self, name: str, embeddings: np.ndarray) -> None:
        """Add embeddings (n x dim or dim) to identity ``name`` (created if new)."""
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"identity name must be a non-empty string, got {name!r}")
        e = self._check_embeddings(embeddings)
        if len(e) == 0:
            raise ValueError(f"no embeddings given for {name!r}")
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

    def remove(self, name: str) -> None:
        """Forget identity ``name`` and its embeddings."""
        if name not in self._ids:
            raise KeyError(f"identity {name!r} is not in the gallery")
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
            raise ValueError(f"expected an N x D embedding matrix, got shape {embeddings.shape}")
        labels = np.arange(len(embeddings)) if labels is None else np.asarray(labels)
        if labels.shape != (len(embeddings),):
            raise ValueError(f"{len(embeddings)} embeddings but labels of shape {labels.shape}")
        if len(set(names)) != len(names) or not all(isinstance(n, str) and n.strip() for n in names):
            raise ValueError("identity names must be distinct non-empty strings")
        gallery = cls(embeddings.shape[1], **kwargs)
        gallery._set_all(list(names), embeddings, labels)
        return gallery

    def _set_all(self, names: list[str], vectors: np.ndarray, labels: np.ndarray) -> None:
        """Replace the contents in one pass (labels index ``names``; every name needs a row)."""
        vectors = self._check_embeddings(vectors) if len(vectors) else np.zeros((0, self.dim), np.float32)
        labels = np.asarray(labels, dtype=np.int64)
        counts = np.bincount(labels, minlength=len(names)) if len(labels) else np.zeros(len(names), np.int64)
        if len(counts) != len(names) or (counts == 0).any():
            raise ValueError("every identity needs at least one embedding and every label an identity")
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
            self._index = faiss.IndexFlatIP(self.dim)
            self._indexed, self._stale = 0, False
        n = len(self._names)
        if self._indexed < n:
            self._index.add(np.ascontiguousarray(self._templates.view()[self._indexed : n]))
            self._indexed = n
        return self._index

    def search(self, queries: np.ndarray, k: int = 5) -> list[list[Match]]:
        """Top-``k`` identities for each query embedding (dim or q x dim), best cosine score first."""
        if int(k) < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        q = self._check_embeddings(queries)
        if len(self._names) == 0:
            raise ValueError("the gallery is empty: enroll identities first")
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

    # ------------------------------------------------------------------ persistence
    def save(self, folder: str | os.PathLike) -> Path:
        """Write ``gallery.json`` and ``embeddings.safetensors`` into ``folder`` (created if needed)."""
        from safetensors.numpy import save_file

        out = Path(folder)
        if out.exists() and not out.is_dir():
            raise ValueError(f"gallery path {out} exists and is not a folder")
        out.mkdir(parents=True, exist_ok=True)
        counts = np.bincount(self._labels.view(), minlength=len(self._names)).tolist()
        meta = {
            "format": FORMAT,
            "version": VERSION,
            "dim": self.dim,
            "identities": self._names,
            "counts": counts,
            "metadata": self.metadata,
        }
        tmp_t, tmp_j = out / (TENSORS_NAME + ".tmp"), out / (JSON_NAME + ".tmp")
        save_file(
            {"embeddings": np.ascontiguousarray(self._vectors.view()), "labels": np.ascontiguousarray(self._labels.view())},
            str(tmp_t),
        )
        tmp_j.write_text(json.dumps(meta, indent=1, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp_t, out / TENSORS_NAME)
        os.replace(tmp_j, out / JSON_NAME)
        return out

    @classmethod
    def load(cls, folder: str | os.PathLike, *, backend: str = "auto") -> "Gallery":
        """Read a gallery written by :meth:`save`; inconsistent files raise ``ValueError``."""
        from safetensors.numpy import load_file

        root = Path(folder)
        jpath, tpath = root / JSON_NAME, root / TENSORS_NAME
        if not jpath.is_file() or not tpath.is_file():
            raise FileNotFoundError(f"no gallery in {root}: expected {JSON_NAME} and {TENSORS_NAME}")
        try:
            meta = json.loads(jpath.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{jpath} is not valid JSON: {exc}") from exc
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ValueError(f"{jpath} is not a facelivt gallery file")
        if meta.get("version") != VERSION:
            raise ValueError(f"{jpath}: unsupported gallery version {meta.get('version')!r} (expected {VERSION})")
        try:
            tensors = load_file(str(tpath))
        except Exception as exc:
            raise ValueError(f"cannot read {tpath}: {exc}") from exc
        names, dim = meta.get("identities"), meta.get("dim")
        emb, labels = tensors.get("embeddings"), tensors.get("labels")
        if not isinstance(names, list) or not isinstance(dim, int) or emb is None or labels is None:
            raise ValueError(f"gallery in {root} is incomplete (identities, dim, embeddings and labels are required)")
        if len(set(names)) != len(names):
            raise ValueError(f"gallery in {root} lists an identity twice")
        if emb.ndim != 2 or emb.shape[1] != dim or labels.shape != (emb.shape[0],):
            raise ValueError(f"gallery in {root}: embeddings {emb.shape} / labels {labels.shape} do not match dim {dim}")
        if len(labels) and (labels.min() < 0 or labels.max() >= len(names)):
            raise ValueError(f"gallery in {root}: labels refer to identities that are not listed")
        if not all(isinstance(n, str) and n.strip() for n in names):
            raise ValueError(f"gallery in {root}: identity names must be non-empty strings")
        if len(names) and np.bincount(labels, minlength=len(names)).min() == 0:
            raise ValueError(f"gallery in {root}: an identity has no embeddings")
        gallery = cls(dim, metadata=meta.get("metadata") or {}, backend=backend)
        gallery._set_all(names, emb, labels.astype(np.int64))
        return gallery


def build_gallery(items: Iterable[tuple[str, np.ndarray]], dim: int = 512, **kwargs: Any) -> Gallery:
    """A gallery from (name, embeddings) pairs."""
    gallery = Gallery(dim, **kwargs)
    for name, emb in items:
        gallery.enroll_embeddings(name, emb)
    return gallery
