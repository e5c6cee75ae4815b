"""Group unknown faces by identity: embed them, then cluster the embeddings on cosine distance.

Two faces belong together when their cosine similarity reaches the recognizer's threshold, the
same one ``verify`` uses: the clustering runs on cosine distance with the cut at ``1 - threshold``.
``agglomerative`` (scikit-learn, average linkage: a group's members are on average that similar)
needs the N x N distances (N = 20 000 faces: 1.6 GB); ``dbscan`` (density: chains of faces each
within the distance of ``min_size`` others) goes further with less memory. Groups of fewer than
``min_size`` faces are noise (label -1). Groups are numbered by size, largest first.

This module imports scikit-learn (a dependency of facelivt, and the reason this module is not
loaded by :mod:`facelivt.inference`): only the ``cluster`` command loads it.
"""
from __future__ import annotations

import csv
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Literal

import numpy as np

from facelivt.errors import InvalidInputError, UnavailableError
from facelivt.files import atomic_dir, atomic_open
from facelivt.inference.calibration import check_threshold
from facelivt.inference.folders import embed_files

try:
    from sklearn.cluster import DBSCAN, AgglomerativeClustering
except ImportError:  # pragma: no cover - scikit-learn is a dependency; a broken install still gets a message
    DBSCAN = AgglomerativeClustering = None

if TYPE_CHECKING:
    from facelivt.inference.recognizer import FaceRecognizer

Method = Literal["agglomerative", "dbscan"]
METHODS = ("agglomerative", "dbscan")
NOISE = -1
NOISE_FOLDER = "noise"


def cluster_embeddings(embeddings: np.ndarray, threshold: float, *, method: Method = "agglomerative",
                       min_size: int = 2) -> np.ndarray:
    """A label per row of ``embeddings`` (N x D): rows whose cosine similarity reaches ``threshold`` are
    grouped (see the module's docstring); 0 is the largest group, -1 noise (groups under ``min_size``)."""
    threshold = check_threshold(threshold, "threshold")
    if method not in METHODS:
        raise InvalidInputError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if isinstance(min_size, bool) or int(min_size) < 1:
        raise InvalidInputError(f"min_size must be at least 1, got {min_size}")
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2:
        raise InvalidInputError(f"expected an N x D embedding matrix, got shape {x.shape}")
    if not np.isfinite(x).all() or (len(x) and (np.linalg.norm(x, axis=1) == 0).any()):
        raise InvalidInputError("embeddings contain NaN, infinite or all-zero rows")
    if AgglomerativeClustering is None:
        raise UnavailableError("clustering needs scikit-learn: pip install scikit-learn")
    if len(x) < 2:
        raw = np.zeros(len(x), np.int64)
    elif method == "agglomerative":
        raw = AgglomerativeClustering(n_clusters=None, metric="cosine", linkage="average",
                                      distance_threshold=1.0 - threshold).fit_predict(x)
    else:
        raw = DBSCAN(eps=max(1.0 - threshold, 1e-9), min_samples=int(min_size), metric="cosine").fit_predict(x)
    return _by_size(np.asarray(raw, np.int64), int(min_size))


def _by_size(raw: np.ndarray, min_size: int) -> np.ndarray:
    """Renumber groups largest first (ties: first seen first); groups under ``min_size`` become noise."""
    labels = np.full(len(raw), NOISE, np.int64)
    groups = [g for g in dict.fromkeys(raw.tolist()) if g != NOISE]
    sizes = {g: int((raw == g).sum()) for g in groups}
    kept = sorted((g for g in groups if sizes[g] >= min_size), key=lambda g: -sizes[g])
    for new, g in enumerate(kept):
        labels[raw == g] = new
    return labels


@dataclass
class ClusterRun:
    """Outcome of :func:`cluster_files`: row ``i`` is face ``faces[i]`` of ``paths[i]``, in group
    ``labels[i]`` (-1: noise); the files that gave no embedding are in ``failures`` (path, reason)."""

    paths: list[Path]
    faces: list[int]
    labels: np.ndarray
    threshold: float
    failures: list[tuple[Path, str]] = field(default_factory=list)
    several_faces: list[tuple[Path, int]] = field(default_factory=list)

    @property
    def groups(self) -> int:
        return int(self.labels.max()) + 1 if len(self.labels) else 0

    @property
    def noise(self) -> int:
        return int((self.labels == NOISE).sum())

    def to_dict(self) -> dict:
        return {"threshold": self.threshold, "groups": self.groups, "noise": self.noise,
                "faces": [{"path": str(p), "face": f, "cluster": int(c)}
                          for p, f, c in zip(self.paths, self.faces, self.labels)],
                "failures": [{"path": str(p), "reason": r} for p, r in self.failures]}


def cluster_files(recognizer: "FaceRecognizer", files: Iterable[str | os.PathLike], *, threshold: float | None = None,
                  method: Method = "agglomerative", min_size: int = 2, aligned: bool = False, face: str = "largest",
                  progress: bool = True) -> ClusterRun:
    """Embed the faces of ``files`` (:func:`~facelivt.inference.folders.embed_files`) and group them
    (:func:`cluster_embeddings`) at ``threshold`` (default: the recognizer's)."""
    threshold = recognizer.threshold if threshold is None else threshold
    run = embed_files(recognizer, files, aligned=aligned, progress=progress, face=face)
    labels = cluster_embeddings(run.embeddings, threshold, method=method, min_size=min_size)
    return ClusterRun(run.paths, run.faces, labels, float(threshold), run.failures, run.several_faces)


def folder_name(label: int) -> str:
    """``cluster_000``, ... for groups, ``noise`` for -1."""
    return NOISE_FOLDER if label == NOISE else f"cluster_{label:03d}"


def write_cluster_folders(run: ClusterRun, out: str | os.PathLike, *, copy: bool = False) -> Path:
    """The folder ``out`` with a folder per group (``cluster_000``, ...) and ``noise``, each holding
    symbolic links to its photos (``copy``: copies); a name two photos share gets ``_1``, ``_2``, ...
    The whole folder appears at once (:func:`facelivt.files.atomic_dir`)."""
    check_cluster_folder(out)
    with atomic_dir(out) as tmp:
        tmp.mkdir()
        placed: set[tuple[int, str]] = set()
        for path, label in zip(run.paths, run.labels.tolist()):
            if (label, str(path)) in placed:  # two faces of one photo in one group: one entry
                continue
            placed.add((label, str(path)))
            folder = tmp / folder_name(label)
            folder.mkdir(exist_ok=True)
            target = _free_name(folder, path.name)
            if copy:
                shutil.copy2(path, target)
            else:
                os.symlink(os.path.abspath(path), target)
    return Path(out)


def check_cluster_folder(out: str | os.PathLike) -> None:
    """Refuse an output folder that holds anything but an earlier clustering (which is replaced)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"{out} is a file: the clusters are written as a folder of folders")
    if out.is_dir():
        other = [e.name for e in os.scandir(out) if not (e.is_dir(follow_symlinks=False)
                 and (e.name == NOISE_FOLDER or e.name.startswith("cluster_")))]
        if other:
            raise InvalidInputError(f"{out} holds other files ({', '.join(sorted(other)[:3])}): the output "
                                    "folder is replaced whole; give a new folder (or an earlier clustering's)")


def _free_name(folder: Path, name: str) -> Path:
    target, n = folder / name, 0
    while os.path.lexists(target):
        n += 1
        target = folder / f"{Path(name).stem}_{n}{Path(name).suffix}"
    return target


def write_cluster_csv(run: ClusterRun, path: str | os.PathLike) -> Path:
    """``path,face,cluster`` per face (cluster -1: noise), written atomically."""
    with atomic_open(path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(("path", "face", "cluster"))
        for p, face, label in zip(run.paths, run.faces, run.labels.tolist()):
            writer.writerow((str(p), face, label))
    return Path(path)
