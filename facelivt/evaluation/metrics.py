"""Verification metrics (the 10-fold LFW-style protocol of insightface): numpy in, numbers out; no torch.

- :func:`kfold_accuracy`: the community 10-fold protocol (insightface ``verification.py``): contiguous
  folds as scikit-learn's ``KFold(n_splits=10, shuffle=False)``, thresholds ``np.arange(0, 4, 0.01)``,
  a pair is predicted "same" when ``distance < threshold``; on the 9 training folds the threshold with
  the highest accuracy (the first of equal ones) is chosen and the accuracy ``(TP + TN) / n`` of the
  10th fold is recorded. Mean and (population, ddof=0) standard deviation over folds.
- ROC from similarity scores (``-distance`` for distances), AUC, EER, TAR at given FARs.

The protocol works on squared L2 distances of L2-normalised embeddings; what it reports to people is
in cosine similarity (``cos = 1 - d / 2``, :func:`distance_to_cosine`), as every other command speaks.
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np

from facelivt.errors import InvalidInputError

DEFAULT_THRESHOLDS = np.arange(0, 4, 0.01)
BIN_FARS = (1e-4, 1e-3, 1e-2)
IJB_FARS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Row-wise L2 normalisation (as ``sklearn.preprocessing.normalize``: zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float64)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(n, eps)


def pair_distances(embeddings: np.ndarray) -> np.ndarray:
    """Squared Euclidean distance of L2-normalised rows 2k and 2k+1."""
    emb = np.asarray(embeddings)
    if emb.ndim != 2 or emb.shape[0] % 2 or emb.shape[0] == 0:
        raise InvalidInputError(f"expected a (2 x pairs) x D embedding matrix, got shape {emb.shape}")
    if not np.isfinite(emb).all():
        raise InvalidInputError("embeddings contain NaN or infinite values")
    emb = l2_normalize(emb)
    return np.sum((emb[0::2] - emb[1::2]) ** 2, axis=1)


def distance_to_cosine(d: float) -> float:
    """The cosine similarity of two unit vectors at squared L2 distance ``d`` (d = 2 - 2 cos)."""
    return 1.0 - 0.5 * float(d)


def kfold_splits(n: int, n_folds: int = 10) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) index arrays of ``KFold(n_splits=n_folds, shuffle=False)``: contiguous folds, the first
    ``n % n_folds`` one item larger."""
    if n_folds < 2:
        raise InvalidInputError(f"n_folds must be >= 2, got {n_folds}")
    if n < n_folds:
        raise InvalidInputError(f"need at least {n_folds} pairs for {n_folds}-fold evaluation, got {n}")
    sizes = np.full(n_folds, n // n_folds, dtype=int)
    sizes[: n % n_folds] += 1
    idx = np.arange(n)
    out, start = [], 0
    for s in sizes:
        test = idx[start : start + s]
        train = np.concatenate([idx[:start], idx[start + s :]])
        out.append((train, test))
        start += s
    return out


def _correct_counts(dist: np.ndarray, issame: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """For every threshold, the number of pairs classified correctly by ``dist < threshold``."""
    # Sorting makes this O((n + t) log n) instead of O(n t): count positives/negatives below each threshold.
    pos = np.sort(dist[issame])
    neg = np.sort(dist[~issame])
    tp = np.searchsorted(pos, thresholds, side="left")  # dist < t
    fp = np.searchsorted(neg, thresholds, side="left")
    tn = len(neg) - fp
    return tp + tn


def kfold_accuracy(
    dist: np.ndarray,
    issame: np.ndarray,
    n_folds: int = 10,
    thresholds: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-fold test accuracy and chosen threshold of the 10-fold protocol (see module docstring)."""
    dist, issame = _check_pairs(dist, issame)
    thr = DEFAULT_THRESHOLDS if thresholds is None else np.asarray(thresholds, dtype=np.float64)
    accs = np.zeros(n_folds)
    best = np.zeros(n_folds)
    for k, (train, test) in enumerate(kfold_splits(len(dist), n_folds)):
        counts = _correct_counts(dist[train], issame[train], thr)
        t = thr[int(np.argmax(counts))]  # first maximum, as np.argmax of the train accuracies
        pred = dist[test] < t
        accs[k] = float(np.sum(pred == issame[test])) / len(test)
        best[k] = t
    return accs, best


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds) of "same when score >= threshold", every distinct score a point, fpr ascending."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels).astype(bool).reshape(-1)
    if scores.shape != labels.shape:
        raise InvalidInputError(f"{scores.size} scores but {labels.size} labels")
    if labels.all() or not labels.any():
        raise InvalidInputError("ROC needs both matched and mismatched pairs")
    # scikit-learn takes about a second to import: only where an ROC is computed, so that importing
    # facelivt.inference (which embeds through facelivt.evaluation) stays as quick as before.
    from sklearn.metrics import roc_curve as sk_roc_curve

    fpr, tpr, thr = sk_roc_curve(labels, scores, drop_intermediate=False)
    return fpr, tpr, thr


def auc(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Area under a ROC curve given by points with ascending ``fpr`` (trapezoids)."""
    fpr, tpr = np.asarray(fpr, dtype=np.float64), np.asarray(tpr, dtype=np.float64)
    return float(np.sum((fpr[1:] - fpr[:-1]) * (tpr[1:] + tpr[:-1]) / 2.0))


def eer(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Equal error rate: where the ROC curve (linearly interpolated) crosses FPR = 1 - TPR."""
    fpr, tpr = np.asarray(fpr, dtype=np.float64), np.asarray(tpr, dtype=np.float64)
    d = fpr - (1.0 - tpr)  # non-decreasing along the curve, from -1 (at 0,0) to +1 (at 1,1)
    i = int(np.argmax(d >= 0))
    if d[i] == 0 or i == 0:
        return float(fpr[i])
    t = -d[i - 1] / (d[i] - d[i - 1])
    return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))


def far_key(far: float) -> str:
    """``1e-3`` style key for a FAR that is a power of ten, else ``repr``."""
    e = math.log10(far)
    if abs(e - round(e)) < 1e-9:
        return f"1e{int(round(e))}"
    return repr(float(far))


def tar_at_far(
    fpr: np.ndarray,
    tpr: np.ndarray,
    fars: Iterable[float],
    n_negative: int,
    method: str = "floor",
    require_support: bool = True,
) -> dict[str, float]:
    """TAR at each FAR of ``fars``.

    ``method="floor"``: the highest TPR among ROC points with FPR <= FAR (a threshold that keeps the false
    accept rate at or under the target). ``method="nearest"``: the TPR of the ROC point whose FPR is nearest
    to the target (highest TPR on ties), as insightface's IJB evaluation reports it.
    With ``require_support`` a FAR is reported only when there are at least ``1 / FAR`` negative pairs
    (otherwise no threshold can realise it); the key is left out."""
    if method not in ("floor", "nearest"):
        raise InvalidInputError(f"unknown TAR@FAR method {method!r}; use 'floor' or 'nearest'")
    fpr, tpr = np.asarray(fpr, dtype=np.float64), np.asarray(tpr, dtype=np.float64)
    out: dict[str, float] = {}
    for far in fars:
        if not 0 < far < 1:
            raise InvalidInputError(f"FAR must be in (0, 1), got {far}")
        if require_support and n_negative * far < 1 - 1e-9:
            continue
        if method == "floor":
            ok = fpr <= far + 1e-12
            out[far_key(far)] = float(tpr[ok].max()) if ok.any() else 0.0
        else:
            gap = np.abs(fpr - far)
            cands = np.flatnonzero(gap == gap.min())
            out[far_key(far)] = float(tpr[cands].max())
    return out


def evaluate_distances(
    dist: np.ndarray,
    issame: np.ndarray,
    n_folds: int = 10,
    fars: Sequence[float] = BIN_FARS,
    thresholds: np.ndarray | None = None,
) -> dict:
    """All verification figures of pair distances: 10-fold accuracy (mean, std, per-fold accuracies and
    thresholds), TAR at FAR, AUC and EER. JSON-ready (plain floats and lists).

    Thresholds are reported as cosine similarities, the language of every other command:
    ``threshold`` (the mean of the folds' best-accuracy thresholds; "same" when cosine >= it) and
    ``fold_thresholds``; ``distance_thresholds`` keeps the protocol's own per-fold thresholds on the
    squared L2 distance d = 2 - 2 cos ("same" when d < it)."""
    dist, issame = _check_pairs(dist, issame)
    accs, thr = kfold_accuracy(dist, issame, n_folds=n_folds, thresholds=thresholds)
    n_pos = int(issame.sum())
    n_neg = int(len(issame) - n_pos)
    result = {
        "accuracy": float(np.mean(accs)),
        "accuracy_std": float(np.std(accs)),
        "fold_accuracies": [float(a) for a in accs],
        "threshold": float(round(distance_to_cosine(float(np.mean(thr))), 10)),
        "fold_thresholds": [float(round(distance_to_cosine(t), 10)) for t in thr],
        "distance_thresholds": [float(round(t, 10)) for t in thr],
        "n_pairs": int(len(issame)),
        "n_positive": n_pos,
        "n_negative": n_neg,
    }
    if n_pos and n_neg:
        fpr, tpr, _ = roc_curve(-dist, issame)
        result["tar_at_far"] = tar_at_far(fpr, tpr, fars, n_neg, method="floor")
        result["tar_at_far_method"] = "floor"
        result["auc"] = auc(fpr, tpr)
        result["eer"] = eer(fpr, tpr)
    else:
        result["tar_at_far"] = {}
        result["auc"] = None
        result["eer"] = None
    return result


def evaluate_embeddings(
    embeddings: np.ndarray,
    issame: np.ndarray,
    n_folds: int = 10,
    fars: Sequence[float] = BIN_FARS,
) -> dict:
    """Verification figures of a (2 x pairs) x D embedding matrix (rows 2k, 2k+1 form pair k): rows are
    L2-normalised, distance = squared Euclidean, then :func:`evaluate_distances`."""
    issame = np.asarray(issame).reshape(-1)
    emb = np.asarray(embeddings)
    if emb.ndim != 2 or emb.shape[0] != 2 * len(issame):
        raise InvalidInputError(f"need 2 embeddings per pair: {len(issame)} pairs but embeddings of shape {emb.shape}")
    return evaluate_distances(pair_distances(emb), issame, n_folds=n_folds, fars=fars)


def _check_pairs(dist: np.ndarray, issame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    dist = np.asarray(dist, dtype=np.float64).reshape(-1)
    issame_arr = np.asarray(issame)
    if issame_arr.dtype != bool:
        if not np.isin(issame_arr, (0, 1)).all():
            raise InvalidInputError("pair labels must be booleans (or 0/1)")
        issame_arr = issame_arr.astype(bool)
    issame_arr = issame_arr.reshape(-1)
    if dist.shape != issame_arr.shape:
        raise InvalidInputError(f"{dist.size} distances but {issame_arr.size} pair labels")
    if not np.isfinite(dist).all():
        raise InvalidInputError("distances contain NaN or infinite values")
    return dist, issame_arr
