"""Clustering embeddings by identity: constructed embeddings with known groups (random weights give
meaningless groups on real faces; the grouping logic is tested here, the command on real photos in
tests/cli/test_cluster_cli.py)."""
from __future__ import annotations

import numpy as np
import pytest

from facelivt.errors import InvalidInputError
from facelivt.inference import InvalidThresholdError
from facelivt.inference.cluster import NOISE, cluster_embeddings

DIM = 64


def groups_of(sizes: list[int], spread: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unit rows around one random centre per group (``spread``: noise added to each), shuffled, and the
    group of each row."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((len(sizes), DIM))
    truth = np.repeat(np.arange(len(sizes)), sizes)
    x = centres[truth] + spread * rng.standard_normal((len(truth), DIM))
    order = rng.permutation(len(truth))
    x = x[order] / np.linalg.norm(x[order], axis=1, keepdims=True)
    return x.astype(np.float32), truth[order]


def same_partition(labels: np.ndarray, truth: np.ndarray) -> bool:
    pairs = {(int(a), int(b)) for a, b in zip(labels, truth)}
    return len(pairs) == len(set(labels.tolist())) == len(set(truth.tolist()))


@pytest.mark.parametrize("method", ["agglomerative", "dbscan"])
def test_known_groups_are_found_largest_first(method):
    x, truth = groups_of([7, 12, 4], spread=0.3)
    labels = cluster_embeddings(x, threshold=0.5, method=method)
    assert same_partition(labels, truth)
    assert [int((labels == g).sum()) for g in range(3)] == [12, 7, 4] and NOISE not in labels


@pytest.mark.parametrize("method", ["agglomerative", "dbscan"])
def test_faces_alike_to_nobody_are_noise(method):
    x, truth = groups_of([6, 5], spread=0.3, seed=1)
    loners = np.random.default_rng(9).standard_normal((3, DIM)).astype(np.float32)
    x = np.vstack([x, loners / np.linalg.norm(loners, axis=1, keepdims=True)])
    labels = cluster_embeddings(x, threshold=0.5, method=method)
    assert (labels[-3:] == NOISE).all() and same_partition(labels[:-3], truth)


def test_threshold_decides_what_is_one_person():
    """Two groups whose centres have a cosine of about 0.6: one person at 0.4, two at 0.8."""
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((2, DIM))
    b = 0.6 * a / np.linalg.norm(a) * np.linalg.norm(b) + 0.8 * b
    x = np.vstack([c + 0.05 * np.linalg.norm(c) * rng.standard_normal((5, DIM)) for c in (a, b)])
    assert len(set(cluster_embeddings(x, threshold=0.4).tolist())) == 1
    assert len(set(cluster_embeddings(x, threshold=0.8).tolist())) == 2


def test_min_size_turns_small_groups_into_noise():
    x, truth = groups_of([6, 2], spread=0.2, seed=2)
    labels = cluster_embeddings(x, threshold=0.5, min_size=3)
    assert (labels[truth == 1] == NOISE).all() and (labels[truth == 0] == 0).all()
    assert (cluster_embeddings(x, threshold=0.5, min_size=1) != NOISE).all()


def test_one_or_no_embedding():
    assert cluster_embeddings(np.zeros((0, DIM)), 0.5).tolist() == []
    one = np.eye(1, DIM)
    assert cluster_embeddings(one, 0.5).tolist() == [NOISE]
    assert cluster_embeddings(one, 0.5, min_size=1).tolist() == [0]


@pytest.mark.parametrize("kwargs,error,message", [
    ({"threshold": 1.5}, InvalidThresholdError, "threshold must be a finite cosine score"),
    ({"threshold": float("nan")}, InvalidThresholdError, "threshold must be a finite cosine score"),
    ({"method": "kmeans"}, InvalidInputError, "method must be one of agglomerative, dbscan"),
    ({"min_size": 0}, InvalidInputError, "min_size must be at least 1"),
    ({"x": np.zeros((3, DIM))}, InvalidInputError, "all-zero"),
    ({"x": np.full((3, DIM), np.nan)}, InvalidInputError, "NaN"),
    ({"x": np.ones(DIM)}, InvalidInputError, "N x D"),
])
def test_bad_input(kwargs, error, message):
    x = kwargs.pop("x", groups_of([3], 0.1)[0])
    kwargs.setdefault("threshold", 0.5)
    with pytest.raises(error, match=message):
        cluster_embeddings(x, **kwargs)
