"""The one ROC plot (facelivt.evaluation.report.rocs_png), as `facelivt eval` and the quickstart draw it."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

from facelivt.evaluation.report import roc_png, rocs_png
from facelivt.quickstart.plots import plot_rocs

FPR = np.array([0.0, 0.001, 0.01, 0.1, 0.5, 1.0])
TPR = np.array([0.0, 0.3, 0.6, 0.8, 0.95, 1.0])


def _size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return Image.open(io.BytesIO(png)).size


def test_eval_and_quickstart_figures_come_from_the_one_plot(tmp_path):
    assert _size(roc_png(FPR, TPR, "lfw ROC", n_negative=1000)) == (550, 450)
    path = plot_rocs({"a": (FPR, TPR), "b": (FPR, TPR ** 2)}, tmp_path / "roc.png", 1000, "held-out")
    assert path == tmp_path / "roc.png" and sorted(p.name for p in tmp_path.iterdir()) == ["roc.png"]
    assert path.read_bytes() == rocs_png({"a": (FPR, TPR), "b": (FPR, TPR ** 2)}, "held-out", 1e-3, size=(6.0, 4.6),
                                         steps=True, axis_labels=("false accept rate", "true accept rate"))
    assert _size(path.read_bytes()) == (600, 460)


def test_the_curve_is_drawn():
    other = roc_png(FPR, np.sqrt(TPR), "lfw ROC", n_negative=1000)
    assert roc_png(FPR, TPR, "lfw ROC", n_negative=1000) != other
    assert roc_png(FPR, TPR, "lfw ROC", n_negative=1000) == roc_png(FPR, TPR, "lfw ROC", n_negative=1000)
