"""IJB-B / IJB-C 1:1 template verification from the standard release layout (insightface's IJB evaluation).

Layout of ``root`` (e.g. ``IJB_release/IJBC``), with ``name`` = ``IJBC`` or ``IJBB`` (lower-cased in file names):

- ``loose_crop/<image>``                       the loose face crops (``1.jpg``, ``2.jpg``, ...);
- ``meta/<name>_name_5pts_score.txt``         ``<image> x1 y1 x2 y2 ... x5 y5 <detector score>`` per line;
- ``meta/<name>_face_tid_mid.txt``            ``<image> <template id> <media id>``, same rows in the same order;
- ``meta/<name>_template_pair_label.txt``     ``<template 1> <template 2> <label 0/1>``.

As insightface's IJB evaluation: each crop is aligned with its 5 landmarks to 112x112, embedded with
its flip (flip-sum); image features are scaled by the detector score (optionally L2-normalised first;
insightface's default keeps the norm); a media's feature is the mean of its images', a template's the
sum of its medias' (equal to their mean after the final L2 normalisation); a pair's score is the cosine
of its templates. TAR at FAR 1e-6 .. 1e-1 is read off the ROC curve.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from torch import nn

from facelivt.data.align import align_face
from facelivt.data.decode import decode_rgb
from facelivt.errors import InputNotFoundError, InvalidInputError
from facelivt.evaluation.metrics import IJB_FARS, auc, eer, l2_normalize, roc_curve, tar_at_far
from facelivt.models.embed import embed_batches


@dataclass
class IJBMeta:
    """The meta files of an IJB release, row-aligned (image i has landmarks[i], scores[i], templates[i], medias[i])."""

    root: Path
    names: list[str]
    landmarks: np.ndarray  # (N, 5, 2) float32, pixels of the loose crop
    scores: np.ndarray  # (N,) float32 detector scores
    templates: np.ndarray  # (N,) int64
    medias: np.ndarray  # (N,) int64
    pairs: np.ndarray  # (P, 2) int64 template ids
    labels: np.ndarray  # (P,) bool

    @property
    def image_dir(self) -> Path:
        return self.root / "loose_crop"


def meta_paths(root: str | Path, name: str = "IJBC") -> dict[str, Path]:
    """Paths of the three meta files for release ``name``."""
    root = Path(root)
    p = name.lower()
    return {
        "landmarks": root / "meta" / f"{p}_name_5pts_score.txt",
        "templates": root / "meta" / f"{p}_face_tid_mid.txt",
        "pairs": root / "meta" / f"{p}_template_pair_label.txt",
    }


def _lines(path: Path) -> list[list[str]]:
    if not path.is_file():
        raise InputNotFoundError(f"IJB meta file not found: {path}")
    return [ln.split() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]


def read_ijb_meta(root: str | Path, name: str = "IJBC") -> IJBMeta:
    """Read and cross-check the meta files of an IJB release (see module docstring)."""
    root = Path(root)
    if not root.is_dir():
        raise InputNotFoundError(f"IJB folder not found: {root}")
    paths = meta_paths(root, name)
    names, lmk, scores = _read_landmarks(paths["landmarks"])
    templates, medias = _read_templates(paths["templates"], paths["landmarks"], names)
    pl = _read_pairs(paths["pairs"], templates, paths["templates"].name)
    return IJBMeta(
        root=root,
        names=names,
        landmarks=np.asarray(lmk, dtype=np.float32).reshape(-1, 5, 2),
        scores=np.asarray(scores, dtype=np.float32),
        templates=templates,
        medias=np.asarray(medias, dtype=np.int64),
        pairs=pl[:, :2].copy(),
        labels=pl[:, 2].astype(bool),
    )


def _read_landmarks(path: Path) -> tuple[list[str], list[list[float]], list[float]]:
    """Image names, 10 landmark coordinates and the detector score of each row of the landmarks file."""
    names, lmk, scores = [], [], []
    for i, row in enumerate(_lines(path), start=1):
        if len(row) != 12:
            raise InvalidInputError(f"{path}:{i}: expected '<image> x1 y1 ... x5 y5 <score>' (12 fields), got {len(row)}")
        try:
            vals = [float(v) for v in row[1:]]
        except ValueError:
            raise InvalidInputError(f"{path}:{i}: landmarks and score must be numbers: {' '.join(row)}") from None
        names.append(row[0])
        lmk.append(vals[:10])
        scores.append(vals[10])
    if not names:
        raise InvalidInputError(f"{path} lists no images")
    return names, lmk, scores


def _read_templates(path: Path, landmarks_path: Path, names: list[str]) -> tuple[np.ndarray, list[int]]:
    """Template ids (int64 array) and media ids of the images, checked against the landmarks file's order."""
    rows = _lines(path)
    if len(rows) != len(names):
        raise InvalidInputError(
            f"{path} has {len(rows)} rows but {landmarks_path} has {len(names)}: "
            "the two files must list the same images in the same order"
        )
    templates, medias = [], []
    for i, row in enumerate(rows, start=1):
        if len(row) != 3:
            raise InvalidInputError(f"{path}:{i}: expected '<image> <template id> <media id>', got {len(row)} fields")
        if row[0] != names[i - 1]:
            raise InvalidInputError(f"{path}:{i}: image {row[0]!r} but row {i} of {landmarks_path.name} is {names[i - 1]!r}")
        try:
            templates.append(int(row[1]))
            medias.append(int(row[2]))
        except ValueError:
            raise InvalidInputError(f"{path}:{i}: template and media ids must be integers: {' '.join(row)}") from None
    return np.asarray(templates, dtype=np.int64), medias


def _read_pairs(path: Path, templates: np.ndarray, templates_name: str) -> np.ndarray:
    """The (P, 3) ``template 1, template 2, label`` rows, every template known and every label 0/1."""
    if not path.is_file():
        raise InputNotFoundError(f"IJB meta file not found: {path}")
    try:
        pl = np.loadtxt(path, dtype=np.int64, ndmin=2)
    except ValueError as exc:
        raise InvalidInputError(f"{path}: expected '<template 1> <template 2> <label>' integer rows: {exc}") from None
    if pl.size == 0:
        raise InvalidInputError(f"{path} lists no template pairs")
    if pl.shape[1] != 3:
        raise InvalidInputError(f"{path}: expected 3 columns '<template 1> <template 2> <label>', got {pl.shape[1]}")
    if not np.isin(pl[:, 2], (0, 1)).all():
        raise InvalidInputError(f"{path}: labels must be 0 or 1")
    missing = np.setdiff1d(np.unique(pl[:, :2]), np.unique(templates))
    if missing.size:
        raise InvalidInputError(
            f"{path} refers to {missing.size} template(s) with no image in {templates_name}, e.g. {missing[:5].tolist()}"
        )
    return pl


def load_aligned(meta: IJBMeta, index: int, size: int = 112) -> np.ndarray:
    """Loose crop ``index`` aligned with its landmarks: size x size x 3 uint8 RGB."""
    path = meta.image_dir / meta.names[index]
    if not path.is_file():
        raise InputNotFoundError(f"IJB image not found: {path}")
    img = decode_rgb(path, name=f"IJB image {path}")
    return align_face(img, meta.landmarks[index].astype(np.float64), size=size)


def iter_aligned_batches(meta: IJBMeta, batch_size: int = 64, workers: int = 2, size: int = 112) -> Iterator[np.ndarray]:
    """Aligned crops in meta order, ``batch_size`` at a time; the next batch is read while one is used."""
    if batch_size < 1:
        raise InvalidInputError(f"batch_size must be >= 1, got {batch_size}")
    n = len(meta.names)
    starts = list(range(0, n, batch_size))
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:

        def submit(start: int):
            return [pool.submit(load_aligned, meta, i, size) for i in range(start, min(start + batch_size, n))]

        pending = submit(starts[0]) if starts else None
        for k in range(len(starts)):
            current = pending
            pending = submit(starts[k + 1]) if k + 1 < len(starts) else None
            yield np.stack([f.result() for f in current])


def template_features(
    image_features: np.ndarray,
    templates: np.ndarray,
    medias: np.ndarray,
    detector_scores: np.ndarray | None = None,
    normalize_images: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """(unique template ids ascending, L2-normalised template features): per template, the sum over its
    medias of the mean of the media's (score-weighted) image features."""
    feats = np.asarray(image_features, dtype=np.float64)
    templates = np.asarray(templates).reshape(-1)
    medias = np.asarray(medias).reshape(-1)
    if feats.ndim != 2 or not (feats.shape[0] == len(templates) == len(medias)):
        raise InvalidInputError(
            f"need one template and media id per image feature: features {feats.shape}, "
            f"{len(templates)} template ids, {len(medias)} media ids"
        )
    if normalize_images:
        feats = l2_normalize(feats)
    if detector_scores is not None:
        s = np.asarray(detector_scores, dtype=np.float64).reshape(-1)
        if len(s) != feats.shape[0]:
            raise InvalidInputError(f"{len(s)} detector scores for {feats.shape[0]} images")
        feats = feats * s[:, None]
    uniq_t, t_inv = np.unique(templates, return_inverse=True)
    tm = np.stack([t_inv.reshape(-1), medias.astype(np.int64)], axis=1)
    _, tm_inv, tm_count = np.unique(tm, axis=0, return_inverse=True, return_counts=True)
    tm_inv = tm_inv.reshape(-1)
    media_sum = np.zeros((len(tm_count), feats.shape[1]))
    np.add.at(media_sum, tm_inv, feats)
    media_mean = media_sum / tm_count[:, None]
    media_template = np.empty(len(tm_count), dtype=np.int64)
    media_template[tm_inv] = t_inv.reshape(-1)
    tfeat = np.zeros((len(uniq_t), feats.shape[1]))
    np.add.at(tfeat, media_template, media_mean)
    return uniq_t, l2_normalize(tfeat)


def score_template_pairs(
    template_ids: np.ndarray, template_feats: np.ndarray, pairs: np.ndarray, chunk: int = 100_000
) -> np.ndarray:
    """Cosine score of every template pair (rows of ``pairs``: template id 1, template id 2)."""
    template_ids = np.asarray(template_ids)
    pairs = np.asarray(pairs).reshape(-1, 2)
    idx = np.searchsorted(template_ids, pairs)
    idx = np.clip(idx, 0, len(template_ids) - 1)
    bad = template_ids[idx] != pairs
    if bad.any():
        raise InvalidInputError(f"pairs refer to unknown template ids, e.g. {np.unique(pairs[bad])[:5].tolist()}")
    out = np.empty(len(pairs))
    for s in range(0, len(pairs), chunk):
        a = template_feats[idx[s : s + chunk, 0]]
        b = template_feats[idx[s : s + chunk, 1]]
        out[s : s + chunk] = np.sum(a * b, axis=1)
    return out


def evaluate_scores(
    scores: np.ndarray, labels: np.ndarray, fars: Sequence[float] = IJB_FARS, method: str = "nearest"
) -> dict:
    """TAR at FAR (``method`` as :func:`facelivt.evaluation.metrics.tar_at_far`), AUC and EER of pair scores."""
    labels = np.asarray(labels).astype(bool)
    fpr, tpr, _ = roc_curve(scores, labels)
    n_neg = int((~labels).sum())
    return {
        "tar_at_far": tar_at_far(fpr, tpr, fars, n_neg, method=method),
        "tar_at_far_method": method,
        "auc": auc(fpr, tpr),
        "eer": eer(fpr, tpr),
        "n_pairs": int(len(labels)),
        "n_positive": int(labels.sum()),
        "n_negative": n_neg,
    }


def ijb_scores(
    model: nn.Module,
    root: str | Path,
    name: str = "IJBC",
    batch_size: int = 64,
    device: str = "auto",
    flip: bool = True,
    workers: int = 2,
    progress: bool = True,
    normalize_images: bool = False,
    use_detector_score: bool = True,
) -> tuple[np.ndarray, np.ndarray, IJBMeta]:
    """(template pair scores, labels, meta) of ``model`` on the IJB release at ``root``."""
    meta = read_ijb_meta(root, name)
    feats = embed_batches(
        model,
        iter_aligned_batches(meta, batch_size=batch_size, workers=workers),
        device=device,
        flip=flip,
        total=len(meta.names),
        progress=progress,
        desc=f"embed {name}",
    )
    tids, tfeats = template_features(
        feats,
        meta.templates,
        meta.medias,
        detector_scores=meta.scores if use_detector_score else None,
        normalize_images=normalize_images,
    )
    return score_template_pairs(tids, tfeats, meta.pairs), meta.labels, meta


def evaluate_ijb(
    model: nn.Module,
    root: str | Path,
    name: str = "IJBC",
    batch_size: int = 64,
    device: str = "auto",
    flip: bool = True,
    workers: int = 2,
    progress: bool = True,
    fars: Sequence[float] = IJB_FARS,
    method: str = "nearest",
) -> dict:
    """IJB 1:1 verification figures of ``model`` (see module docstring and :func:`evaluate_scores`)."""
    scores, labels, meta = ijb_scores(model, root, name, batch_size, device, flip, workers, progress)
    res = evaluate_scores(scores, labels, fars=fars, method=method)
    res["n_images"] = len(meta.names)
    res["n_templates"] = int(len(np.unique(meta.templates)))
    return res
