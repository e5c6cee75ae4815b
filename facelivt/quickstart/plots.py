"""Quickstart figures (matplotlib, Agg canvas; pyplot's global state is not touched)."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np

from facelivt.evaluation.report import agg_figure, figure_png, rocs_png
from facelivt.files import write_bytes


def smooth(values: Sequence[float], window: int) -> np.ndarray:
    """Trailing moving average (the first points average what exists so far)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0 or window <= 1:
        return v
    c, end = np.cumsum(np.insert(v, 0, 0.0)), np.arange(1, v.size + 1)
    start = np.maximum(0, end - window)
    return (c[end] - c[start]) / (end - start)


def plot_loss_curves(curves: dict[str, Sequence[float]], path: str | Path, title: str = "Training loss") -> Path:
    """One line per curve (loss per optimiser step, raw in light colour and a moving average on top)."""
    fig = agg_figure(7.0, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    for i, (label, values) in enumerate(curves.items()):
        v = np.asarray(values, dtype=np.float64)
        if v.size == 0:
            continue
        steps = np.arange(1, v.size + 1)
        colour = f"C{i}"
        ax.plot(steps, v, color=colour, alpha=0.25, lw=0.8)
        ax.plot(steps, smooth(v, max(1, v.size // 20)), color=colour, lw=1.8, label=label)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    write_bytes(path, figure_png(fig))  # atomic: no half-written image on a full disk
    return Path(path)


def plot_rocs(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: str | Path, n_negative: int, title: str) -> Path:
    """ROC curves (true accept rate against false accept rate, log axis from 1 / negatives) of several
    models on one figure; the label should carry the accuracy or AUC."""
    lo = 1.0 / max(n_negative, 1)
    path = Path(path)
    write_bytes(path, rocs_png(curves, title, lo, size=(6.0, 4.6), steps=True,
                               axis_labels=("false accept rate", "true accept rate")))
    return path


def save_samples(images: np.ndarray, labels: np.ndarray, path: str | Path, per_row: int = 8, rows: int = 4) -> Path:
    """A grid of example faces (``rows`` identities, ``per_row`` images each) as PNG."""
    from PIL import Image

    ids = list(dict.fromkeys(int(l) for l in labels))[:rows]
    tiles = []
    for ident in ids:
        idx = np.flatnonzero(labels == ident)[:per_row]
        row = [images[i] for i in idx] + [np.zeros_like(images[0])] * (per_row - len(idx))
        tiles.append(np.concatenate(row, axis=1))
    grid = np.concatenate(tiles, axis=0)
    buffer = io.BytesIO()
    Image.fromarray(grid).save(buffer, format="PNG")
    path = Path(path)
    write_bytes(path, buffer.getvalue())
    return path
