"""Choose a verification threshold (on cosine similarity) from labelled pairs.

Two rules: the threshold with the best accuracy on the pairs, or the lowest threshold whose false
accept rate on the impostor pairs stays at or below a target. A pairs list is a text file with one
pair per line, ``path_a<TAB>path_b<TAB>label`` (or three whitespace-separated fields when paths have
no spaces), label ``1``/``0`` or ``true``/``false``; relative paths are resolved against the list's
folder; blank lines and lines starting with ``#`` are ignored.

A threshold is a cosine score in (-1, 1]: :func:`check_threshold` refuses anything else (NaN,
infinity, -1 or below, which would accept every pair, and above 1) wherever a threshold is set.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facelivt.errors import FaceLiVTError, InputNotFoundError, InvalidInputError
from facelivt.models.card import CalibratedThreshold

_TRUE = {"1", "true", "yes", "same", "match"}
_FALSE = {"0", "false", "no", "different", "diff", "mismatch"}

#: The ``threshold_source`` of a recognizer's default threshold: nobody calibrated it for its weights
#: (a gallery's saved threshold replaces it).
UNCALIBRATED = "uncalibrated default: calibrate on labelled pairs for real use (facelivt calibrate)"
#: What a verdict of weights with no record of real-face training and an uncalibrated threshold is marked with.
UNRELIABLE = "UNRELIABLE: uncalibrated threshold, weights with no record of training on real faces"
#: How a ``threshold_source`` taken from the weights' model card starts (a gallery's threshold replaces it).
FROM_CARD = "model card: "
#: The lowest threshold accepted, just above -1 (every cosine score reaches -1).
MIN_THRESHOLD = float(np.nextafter(-1.0, 0.0))


class InvalidThresholdError(FaceLiVTError, ValueError):
    """A verification threshold that is not a finite cosine score in (-1, 1]."""


def check_threshold(value: object, what: str = "threshold") -> float:
    """``value`` as a float when it is a finite number in (-1, 1]; else :class:`InvalidThresholdError`
    naming ``what`` (the option, file or key the value came from)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InvalidThresholdError(f"{what} must be a number in (-1, 1], got {value!r}")
    t = float(value)
    if not math.isfinite(t) or not -1.0 < t <= 1.0:
        raise InvalidThresholdError(
            f"{what} must be a finite cosine score in (-1, 1], got {value!r}"
            + (" (every score reaches -1, so nothing would be rejected)" if t == -1.0 else "")
        )
    return t


def replaceable(source: str) -> bool:
    """True for a ``threshold_source`` that a gallery's saved threshold replaces: the uncalibrated
    default or the weights' model card (a threshold given or calibrated in this run stays)."""
    return source in (UNCALIBRATED, "default") or source.startswith(FROM_CARD)


def _clip(t: float) -> float:
    """A computed threshold moved into (-1, 1] (a cut just past the highest score can land above 1)."""
    return float(min(max(t, MIN_THRESHOLD), 1.0))


@dataclass(frozen=True)
class Calibration:
    """A chosen threshold and how it does on the calibration pairs."""

    threshold: float
    accuracy: float
    tar: float  # genuine pairs accepted
    far: float  # impostor pairs accepted
    num_pairs: int
    rule: str  # "best-accuracy" or "far<=X"

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    def card_threshold(self, source: str) -> CalibratedThreshold:
        """This threshold as a model card records it (``source``: the pairs it was chosen on)."""
        return CalibratedThreshold(cosine=self.threshold, rule=self.rule, source=source, far=self.far,
                                   accuracy=self.accuracy, pairs=self.num_pairs)


def _check(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).astype(bool).ravel()
    if s.shape != y.shape:
        raise InvalidInputError(f"{len(s)} scores but {len(y)} labels")
    if len(s) == 0:
        raise InvalidInputError("no pairs to calibrate on")
    if not np.isfinite(s).all():
        raise InvalidInputError("scores contain NaN or infinite values")
    if y.all() or not y.any():
        raise InvalidInputError("calibration needs both genuine (same) and impostor (different) pairs")
    return s, y


def _summary(s: np.ndarray, y: np.ndarray, t: float, rule: str) -> Calibration:
    t = _clip(t)
    pred = s >= t
    return Calibration(
        threshold=float(t),
        accuracy=float((pred == y).mean()),
        tar=float(pred[y].mean()),
        far=float(pred[~y].mean()),
        num_pairs=int(len(s)),
        rule=rule,
    )


def best_accuracy_threshold(scores: np.ndarray, labels: np.ndarray) -> Calibration:
    """Threshold (midway between neighbouring scores) that maximises accuracy of ``score >= t``."""
    s, y = _check(scores, labels)
    order = np.argsort(s, kind="stable")
    s, y = s[order], y[order]
    n = len(s)
    pos_before = np.concatenate([[0], np.cumsum(y)])  # genuine pairs among the first i
    neg_before = np.arange(n + 1) - pos_before
    correct = (pos_before[-1] - pos_before) + neg_before  # accept s[i:], reject s[:i]
    cut_ok = np.ones(n + 1, dtype=bool)
    cut_ok[1:n] = s[1:] > s[:-1]  # cannot cut between equal scores
    correct = np.where(cut_ok, correct, -1)
    i = int(np.argmax(correct))
    if i == 0:
        t = s[0] - 1e-6
    elif i == n:
        t = s[-1] + 1e-6
    else:
        t = 0.5 * (s[i - 1] + s[i])
    return _summary(s, y, t, "best-accuracy")


def threshold_at_far(scores: np.ndarray, labels: np.ndarray, far: float) -> Calibration:
    """Lowest threshold accepting at most a fraction ``far`` of the impostor pairs."""
    if not 0.0 <= far < 1.0:
        raise InvalidInputError(f"target FAR must be in [0, 1), got {far}")
    s, y = _check(scores, labels)
    neg = np.sort(s[~y])[::-1]
    allowed = int(np.floor(far * len(neg)))
    t = float(np.nextafter(neg[allowed], np.inf))
    return _summary(s, y, t, f"far<={far:g}")


def calibrate_scores(scores: np.ndarray, labels: np.ndarray, target_far: float | None = None) -> Calibration:
    """Best-accuracy threshold, or the threshold at ``target_far`` when given."""
    if target_far is None:
        return best_accuracy_threshold(scores, labels)
    return threshold_at_far(scores, labels, target_far)


def _parse_label(text: str, where: str) -> bool:
    t = text.strip().lower()
    if t in _TRUE:
        return True
    if t in _FALSE:
        return False
    raise InvalidInputError(f"{where}: label must be 1/0 or true/false, got {text!r}")


def read_pairs_list(path: str | os.PathLike) -> list[tuple[Path, Path, bool]]:
    """Parse a pairs list (see module docstring) into (path_a, path_b, same)."""
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"pairs list not found: {path}")
    pairs = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split("\t") if "\t" in line else line.split()
        where = f"{path}:{lineno}"
        if len(fields) != 3:
            raise InvalidInputError(f"{where}: expected 'path_a path_b label', got {len(fields)} fields")
        a, b = (Path(f.strip()) for f in fields[:2])
        a = a if a.is_absolute() else path.parent / a
        b = b if b.is_absolute() else path.parent / b
        pairs.append((a, b, _parse_label(fields[2], where)))
    if not pairs:
        raise InvalidInputError(f"pairs list {path} holds no pairs")
    return pairs
