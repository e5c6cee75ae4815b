"""Metrics: known answers on constructed distances, and agreement with a straightforward re-implementation of
the community protocol (insightface verification.py calculate_roc / calculate_accuracy)."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import KFold

from facelivt.evaluation import (
    auc,
    eer,
    evaluate_distances,
    evaluate_embeddings,
    kfold_accuracy,
    kfold_splits,
    pair_distances,
    roc_curve,
    tar_at_far,
)


# ---------------------------------------------------------------------------------------------------------
# An independent, deliberately plain re-implementation of the reference protocol.
def reference_accuracy(dist: np.ndarray, issame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    thresholds = np.arange(0, 4, 0.01)

    def calculate_accuracy(threshold, d, actual):
        tp = tn = 0
        for di, ai in zip(d, actual):
            pred = di < threshold
            if pred and ai:
                tp += 1
            elif (not pred) and (not ai):
                tn += 1
        return float(tp + tn) / len(d)

    accs, best = [], []
    indices = np.arange(len(dist))
    for train, test in KFold(n_splits=10, shuffle=False).split(indices):
        acc_train = [calculate_accuracy(t, dist[train], issame[train]) for t in thresholds]
        b = 0
        for i in range(len(acc_train)):  # first maximum
            if acc_train[i] > acc_train[b]:
                b = i
        best.append(thresholds[b])
        accs.append(calculate_accuracy(thresholds[b], dist[test], issame[test]))
    return np.array(accs), np.array(best)


@pytest.mark.parametrize("n", [10, 57, 600, 613])
def test_folds_match_sklearn_kfold(n):
    ours = kfold_splits(n, 10)
    ref = list(KFold(n_splits=10, shuffle=False).split(np.arange(n)))
    assert len(ours) == 10
    for (tr, te), (rtr, rte) in zip(ours, ref):
        np.testing.assert_array_equal(tr, rtr)
        np.testing.assert_array_equal(te, rte)


@pytest.mark.parametrize("seed,n", [(0, 57), (1, 131), (2, 200)])
def test_accuracy_agrees_with_plain_reimplementation(seed, n):
    rng = np.random.default_rng(seed)
    issame = rng.random(n) < 0.5
    dist = np.where(issame, rng.normal(1.0, 0.35, n), rng.normal(1.6, 0.35, n)).clip(0, 4)
    # ties and values exactly on the threshold grid exercise the strict "<" and the first-maximum rule
    dist[: n // 4] = np.round(dist[: n // 4], 2)
    dist[n // 4 : n // 3] = np.arange(0, 4, 0.01)[rng.integers(0, 400, n // 3 - n // 4)]
    accs, thr = kfold_accuracy(dist, issame)
    raccs, rthr = reference_accuracy(dist, issame)
    np.testing.assert_allclose(accs, raccs, atol=1e-12)
    np.testing.assert_array_equal(thr, rthr)
    res = evaluate_distances(dist, issame)
    assert res["accuracy"] == pytest.approx(np.mean(raccs), abs=1e-10)
    assert res["accuracy_std"] == pytest.approx(np.std(raccs), abs=1e-10)  # ddof = 0
    np.testing.assert_allclose(res["distance_thresholds"], rthr, atol=1e-9)
    assert res["fold_accuracies"] == pytest.approx(list(raccs), abs=1e-12)


def test_accuracy_agrees_on_a_realistic_size():
    """6,000 pairs as LFW: the vectorised reference on all 400 thresholds (np.less, as verification.py)."""
    rng = np.random.default_rng(7)
    n = 6000
    issame = np.repeat(np.tile([True, False], 10), 300)
    dist = np.where(issame, rng.normal(0.9, 0.3, n), rng.normal(1.7, 0.3, n)).clip(0, 4).astype(np.float32)
    thresholds = np.arange(0, 4, 0.01)
    raccs, rthr = [], []
    for train, test in KFold(n_splits=10, shuffle=False).split(np.arange(n)):
        acc_train = np.array([np.mean(np.less(dist[train], t) == issame[train]) for t in thresholds])
        b = int(np.argmax(acc_train))
        rthr.append(thresholds[b])
        raccs.append(np.mean(np.less(dist[test], thresholds[b]) == issame[test]))
    res = evaluate_distances(dist, issame)
    assert round(res["accuracy"], 4) == round(float(np.mean(raccs)), 4)
    assert res["accuracy"] == pytest.approx(np.mean(raccs), abs=1e-10)
    assert res["accuracy_std"] == pytest.approx(np.std(raccs), abs=1e-10)
    np.testing.assert_allclose(res["distance_thresholds"], rthr, atol=1e-9)


def test_known_answer_perfect_separation():
    issame = np.tile([True, False], 100)
    dist = np.where(issame, 0.5, 1.5)
    res = evaluate_distances(dist, issame)
    assert res["accuracy"] == 1.0 and res["accuracy_std"] == 0.0
    # the first threshold with 0.5 < t: 0.51
    assert res["distance_thresholds"] == pytest.approx([0.51] * 10)
    # reported in cosine similarity: d = 2 - 2 cos, so d < 0.51 is cos > 0.745
    assert res["fold_thresholds"] == pytest.approx([0.745] * 10) and res["threshold"] == pytest.approx(0.745)
    assert res["auc"] == 1.0 and res["eer"] == 0.0
    assert res["tar_at_far"] == {"1e-2": 1.0}  # 100 negatives support FARs >= 1e-2 only
    assert res["tar_at_far_method"] == "floor"


def test_known_answer_with_impostors():
    """10 folds of 10 pairs; folds 0-4 each hold one impostor closer than every genuine pair."""
    dist = []
    issame = []
    for fold in range(10):
        for i in range(10):
            same = i < 5
            d = 0.2 if same else 1.0
            if fold < 5 and i == 9:
                d = 0.1
            dist.append(d)
            issame.append(same)
    res = evaluate_distances(np.array(dist), np.array(issame))
    assert res["accuracy"] == pytest.approx(0.95)
    assert res["accuracy_std"] == pytest.approx(0.05)
    assert res["fold_accuracies"] == pytest.approx([0.9] * 5 + [1.0] * 5)
    assert res["distance_thresholds"] == pytest.approx([0.21] * 10)
    assert res["threshold"] == pytest.approx(0.895)


def test_tar_at_far_known_answer():
    neg = np.arange(1000) / 1000.0  # similarity scores of 1000 impostor pairs
    pos = np.concatenate([np.full(30, 0.9995), np.full(20, 0.9955), np.full(50, 0.5)])
    scores = np.concatenate([pos, neg])
    labels = np.concatenate([np.ones(100, bool), np.zeros(1000, bool)])
    fpr, tpr, _ = roc_curve(scores, labels)
    out = tar_at_far(fpr, tpr, [1e-4, 1e-3, 1e-2, 1e-1], n_negative=1000)
    assert "1e-4" not in out  # 1000 negatives cannot measure FAR 1e-4
    assert out["1e-3"] == pytest.approx(0.30)
    assert out["1e-2"] == pytest.approx(0.50)
    assert out["1e-1"] == pytest.approx(0.50)
    # unsupported FARs on request: 30 genuine pairs score above every impostor (FPR 0)
    assert tar_at_far(fpr, tpr, [1e-4], 1000, require_support=False)["1e-4"] == pytest.approx(0.30)
    # distance form, through evaluate_distances: TAR read off -distance
    res = evaluate_distances(np.concatenate([1 - pos, 1 - neg]) * 2, labels, n_folds=10)
    assert res["tar_at_far"]["1e-3"] == pytest.approx(0.30)
    assert res["tar_at_far"]["1e-2"] == pytest.approx(0.50)
    assert "1e-4" not in res["tar_at_far"]
    with pytest.raises(ValueError, match="method"):
        tar_at_far(fpr, tpr, [1e-3], 1000, method="bogus")
    with pytest.raises(ValueError, match="FAR"):
        tar_at_far(fpr, tpr, [2.0], 1000)


def test_tar_at_far_nearest_matches_insightface_rule():
    """insightface's IJB script: flip the ROC, take min over (|fpr - x|, index) of the flipped arrays."""
    rng = np.random.default_rng(3)
    labels = rng.random(5000) < 0.1
    scores = np.round(np.where(labels, rng.normal(1.0, 1.0, 5000), rng.normal(-1.0, 1.0, 5000)), 2)
    fpr, tpr, _ = roc_curve(scores, labels)
    fars = [1e-3, 1e-2, 1e-1]
    ours = tar_at_far(fpr, tpr, fars, int((~labels).sum()), method="nearest")
    ffpr, ftpr = np.flipud(fpr), np.flipud(tpr)
    for x in fars:
        _, idx = min(zip(abs(ffpr - x), range(len(ffpr))))
        assert ours[f"1e{int(round(np.log10(x)))}"] == pytest.approx(ftpr[idx])


def test_auc_and_eer():
    rng = np.random.default_rng(0)
    labels = rng.random(400) < 0.5
    scores = np.where(labels, rng.normal(1, 1, 400), rng.normal(0, 1, 400))
    fpr, tpr, _ = roc_curve(scores, labels)
    assert auc(fpr, tpr) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    # EER exactly at a ROC point: accept score >= 5 gives TPR 0.8 (FNR 0.2) and FPR 0.2
    s = np.array([1, 5, 6, 7, 8, 0, 2, 3, 4, 9], dtype=float)
    y = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0, 0], dtype=bool)
    f, t, _ = roc_curve(s, y)
    assert eer(f, t) == pytest.approx(0.2)
    # interpolated crossing: the EER lies between the error rates of the neighbouring points
    e = eer(fpr, tpr)
    fnr = 1 - tpr
    i = int(np.argmax(fpr - fnr >= 0))
    assert min(fpr[i - 1], fnr[i]) - 1e-12 <= e <= max(fpr[i], fnr[i - 1]) + 1e-12
    # perfect and inverted scores
    f, t, _ = roc_curve(np.array([2.0, 3.0, 0.0, 1.0]), np.array([1, 1, 0, 0], bool))
    assert auc(f, t) == 1.0 and eer(f, t) == 0.0
    f, t, _ = roc_curve(np.array([0.0, 1.0, 2.0, 3.0]), np.array([1, 1, 0, 0], bool))
    assert auc(f, t) == 0.0 and eer(f, t) == 1.0


def test_pair_distances_and_embeddings():
    emb = np.array([[1, 0], [2, 0], [0, 3], [1, 0], [1, 1], [-2, -2]], dtype=np.float32)
    np.testing.assert_allclose(pair_distances(emb), [0.0, 2.0, 4.0], atol=1e-7)
    rng = np.random.default_rng(1)
    base = rng.normal(size=(20, 8))
    emb = np.repeat(base, 2, axis=0)  # 20 pairs of identical rows
    emb[1::2][10:] = rng.normal(size=(10, 8))  # last 10 pairs: different rows
    issame = np.arange(20) < 10
    res = evaluate_embeddings(emb, issame)
    assert res["n_pairs"] == 20 and res["n_positive"] == 10


def test_errors_are_clear():
    with pytest.raises(ValueError, match="2 embeddings per pair"):
        evaluate_embeddings(np.zeros((5, 4)), np.zeros(2, bool))
    with pytest.raises(ValueError, match="NaN"):
        evaluate_embeddings(np.full((4, 2), np.nan), np.array([True, False]))
    with pytest.raises(ValueError, match="at least 10 pairs"):
        evaluate_distances(np.zeros(5), np.array([True, False, True, False, True]))
    with pytest.raises(ValueError, match="labels"):
        evaluate_distances(np.zeros(20), np.full(20, 2))
    with pytest.raises(ValueError, match="distances but"):
        evaluate_distances(np.zeros(20), np.zeros(19, bool))
    with pytest.raises(ValueError, match="both matched and mismatched"):
        roc_curve(np.zeros(4), np.ones(4, bool))
