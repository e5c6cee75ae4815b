"""Threshold calibration from scores and from pairs lists."""
from __future__ import annotations

import numpy as np
import pytest

from facelivt.errors import FaceLiVTError
from facelivt.inference.calibration import (
    InvalidThresholdError,
    best_accuracy_threshold,
    calibrate_scores,
    check_threshold,
    read_pairs_list,
    threshold_at_far,
)


def test_best_accuracy_separable():
    scores = np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.9])
    labels = np.array([0, 0, 0, 1, 1, 1])
    cal = best_accuracy_threshold(scores, labels)
    assert cal.threshold == pytest.approx(0.45) and cal.accuracy == 1.0 and cal.tar == 1.0 and cal.far == 0.0


def test_best_accuracy_overlapping_matches_exhaustive_search():
    rng = np.random.default_rng(0)
    labels = rng.random(400) < 0.5
    scores = np.where(labels, rng.normal(0.5, 0.2, 400), rng.normal(0.1, 0.2, 400)).round(2)  # ties
    cal = best_accuracy_threshold(scores, labels)
    grid = np.unique(np.concatenate([scores, scores + 1e-9]))
    best = max(((scores >= t) == labels).mean() for t in grid)
    assert cal.accuracy == pytest.approx(best)
    assert cal.accuracy == pytest.approx(((scores >= cal.threshold) == labels).mean())


def test_threshold_at_far():
    rng = np.random.default_rng(1)
    neg = rng.normal(0, 0.1, 1000)
    pos = rng.normal(0.6, 0.1, 1000)
    scores = np.concatenate([neg, pos])
    labels = np.r_[np.zeros(1000), np.ones(1000)]
    for far in (0.0, 0.001, 0.01, 0.1):
        cal = threshold_at_far(scores, labels, far)
        assert cal.far <= far + 1e-12
        assert (neg >= cal.threshold).sum() == int(np.floor(far * 1000))
    assert calibrate_scores(scores, labels, 0.01).rule == "far<=0.01"
    with pytest.raises(ValueError, match="FAR"):
        threshold_at_far(scores, labels, 1.5)


def test_bad_scores():
    with pytest.raises(ValueError, match="both"):
        best_accuracy_threshold([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="labels"):
        best_accuracy_threshold([0.1, 0.2], [1])
    with pytest.raises(ValueError, match="no pairs"):
        best_accuracy_threshold([], [])
    with pytest.raises(ValueError, match="NaN"):
        best_accuracy_threshold([np.nan, 0.2], [1, 0])


def test_pairs_list(tmp_path):
    (tmp_path / "sub").mkdir()
    text = "# a comment\n\nsub/a.jpg sub/b.jpg 1\n/abs/c.jpg\tdir with space/d.jpg\tfalse\n"
    path = tmp_path / "pairs.txt"
    path.write_text(text)
    pairs = read_pairs_list(path)
    assert pairs[0] == (tmp_path / "sub/a.jpg", tmp_path / "sub/b.jpg", True)
    assert pairs[1][0].as_posix() == "/abs/c.jpg" and pairs[1][1] == tmp_path / "dir with space/d.jpg"
    assert pairs[1][2] is False
    path.write_text("a.jpg b.jpg maybe\n")
    with pytest.raises(ValueError, match="pairs.txt:1: label"):
        read_pairs_list(path)
    path.write_text("a.jpg 1\n")
    with pytest.raises(ValueError, match="3|fields"):
        read_pairs_list(path)
    path.write_text("# nothing\n")
    with pytest.raises(ValueError, match="no pairs"):
        read_pairs_list(path)
    with pytest.raises(FileNotFoundError):
        read_pairs_list(tmp_path / "missing.txt")


def test_check_threshold_accepts_cosine_scores_only():
    for good in (-0.999, 0.0, 0.3, 1.0, np.float32(0.5), 1):
        assert check_threshold(good) == float(good)
    for bad in (float("nan"), float("inf"), -float("inf"), -1.0, -1, -2.0, 1.0000001, 2, True, "0.3", None):
        with pytest.raises(InvalidThresholdError, match="--threshold must be a"):
            check_threshold(bad, "--threshold")
    assert issubclass(InvalidThresholdError, ValueError) and issubclass(InvalidThresholdError, FaceLiVTError)


def test_calibrated_thresholds_stay_valid():
    """A cut just above an impostor score of 1.0, or just below a genuine score of -1, used to give a
    threshold outside [-1, 1] that no gallery or recognizer accepts; now it is clipped into (-1, 1],
    and the reported rates are those of the threshold returned."""
    cases = [
        (threshold_at_far, np.array([0.2, 1.0, 1.0]), np.array([1, 0, 1]), (0.0,)),
        (best_accuracy_threshold, np.array([-1.0, 0.5]), np.array([1, 0]), ()),
        (best_accuracy_threshold, np.array([1.0, 1.0, -0.5]), np.array([0, 0, 1]), ()),
    ]
    for rule, scores, labels, extra in cases:
        cal = rule(scores, labels, *extra)
        assert check_threshold(cal.threshold) == cal.threshold
        pred, y = scores >= cal.threshold, labels.astype(bool)
        assert cal.accuracy == (pred == y).mean() and cal.tar == pred[y].mean() and cal.far == pred[~y].mean()
