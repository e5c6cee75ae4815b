"""Evaluation reports: a text table, ``results.json`` and ROC-curve PNGs (matplotlib, Agg backend).

Files are written atomically (:mod:`facelivt.files`); :func:`write_outputs` commits a run's files
together, so a failed write leaves the previous run's files as they were.
"""
from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Mapping

import numpy as np

from facelivt.evaluation.metrics import BIN_FARS, IJB_FARS, far_key
from facelivt.files import atomic_paths, write_bytes


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100.0 * x:.2f}"


def format_table(results: Mapping[str, dict]) -> str:
    """A text table of the results of several sets (bin sets and IJB sets in separate sections)."""
    bins = {k: v for k, v in results.items() if "accuracy" in v}
    ijbs = {k: v for k, v in results.items() if "accuracy" not in v}
    blocks = []
    if bins:
        fars = [far_key(f) for f in BIN_FARS]
        head = ["set", "pairs", "accuracy %", "threshold (cos)", "AUC %", "EER %"] + [f"TAR@FAR={k} %" for k in fars]
        rows = [
            [
                name,
                str(r["n_pairs"]),
                f"{100 * r['accuracy']:.2f} +- {100 * r['accuracy_std']:.2f}",
                "-" if r.get("threshold") is None else f"{r['threshold']:.4f}",
                _pct(r.get("auc")),
                _pct(r.get("eer")),
            ]
            + [_pct(r.get("tar_at_far", {}).get(k)) for k in fars]
            for name, r in bins.items()
        ]
        blocks.append(_grid(head, rows))
    if ijbs:
        fars = [far_key(f) for f in IJB_FARS]
        head = ["set", "templates", "pairs", "AUC %", "EER %"] + [f"TAR@{k} %" for k in fars]
        rows = [
            [name, str(r.get("n_templates", "-")), str(r["n_pairs"]), _pct(r.get("auc")), _pct(r.get("eer"))]
            + [_pct(r.get("tar_at_far", {}).get(k)) for k in fars]
            for name, r in ijbs.items()
        ]
        blocks.append(_grid(head, rows))
    note = ("threshold: cosine similarity at which two faces are the same person (10-fold best accuracy).\n"
            "'-': not enough mismatched pairs for that FAR (needs >= 1/FAR).")
    return "\n\n".join(blocks) + ("\n" + note if blocks else "")


def _grid(head: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(head[i]), *(len(r[i]) for r in rows)) for i in range(len(head))]
    line = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))  # noqa: E731
    return "\n".join([line(head), "  ".join("-" * w for w in widths)] + [line(r) for r in rows])


#: What results.json says its thresholds are.
THRESHOLD_NOTE = ("threshold, fold_thresholds: cosine similarity, same person when cos >= threshold; "
                  "distance_thresholds: the 10-fold protocol's own, on squared L2 distance d = 2 - 2 cos (same when d < it)")


def results_json(results: Mapping[str, dict], about: Mapping | None = None) -> bytes:
    """``results.json`` as indented JSON (UTF-8): what was evaluated (``about``: model, weights, their
    file and sha256), what its thresholds are, and the figures of each set under ``sets``."""
    doc = {**(about or {}), "thresholds": THRESHOLD_NOTE, "sets": dict(results)}
    return (json.dumps(doc, indent=2, sort_keys=False) + "\n").encode("utf-8")


def write_json(results: Mapping[str, dict], path: str | Path, about: Mapping | None = None) -> Path:
    """Write ``results`` (and ``about``) as :func:`results_json`."""
    path = Path(path)
    write_bytes(path, results_json(results, about))
    return path


def write_outputs(contents: Mapping[str | os.PathLike, bytes]) -> list[Path]:
    """Write several files (path -> bytes) as one set: all or, on a failure, none of them replaced."""
    paths = [Path(p) for p in contents]
    with atomic_paths(*paths) as temps:
        for tmp, data in zip(temps, contents.values()):
            tmp.write_bytes(data)
    return paths


def plot_roc(fpr: np.ndarray, tpr: np.ndarray, path: str | Path, title: str, n_negative: int | None = None) -> Path:
    """Save a ROC curve (TAR against FAR on a log axis) as a PNG."""
    path = Path(path)
    write_bytes(path, roc_png(fpr, tpr, title, n_negative))
    return path


def agg_figure(width: float, height: float):
    """A matplotlib Figure on its own Agg canvas (pyplot's global backend and state are not touched)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # matplotlib: imported when a figure is drawn
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def figure_png(fig) -> bytes:
    """``fig`` (laid out tightly) as PNG bytes; write them with :mod:`facelivt.files`."""
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def rocs_png(
    curves: Mapping[str | None, tuple[np.ndarray, np.ndarray]],
    title: str,
    lo: float,
    *,
    size: tuple[float, float] = (5.5, 4.5),
    steps: bool = False,
    axis_labels: tuple[str, str] = ("False accept rate", "True accept rate"),
) -> bytes:
    """ROC curves (TAR against FAR on a log axis from ``lo``) as PNG bytes: the one ROC plot of the
    package. ``curves``: label (None: unlabelled, no legend) -> (fpr, tpr). ``steps``: draw each curve
    as steps clipped to the axis, with the chance line and a legend (the quickstart's figure)."""
    fig = agg_figure(*size)
    ax = fig.add_subplot(1, 1, 1)
    for i, (label, (fpr, tpr)) in enumerate(curves.items()):
        fpr = np.asarray(fpr, dtype=np.float64)
        tpr = np.asarray(tpr, dtype=np.float64)
        keep = fpr > 0
        if steps:
            ax.step(np.clip(fpr[keep], lo, 1.0), tpr[keep], where="post", lw=1.6, color=f"C{i}", label=label)
        else:
            ax.plot(fpr[keep], tpr[keep], lw=1.5, label=label)
    if steps:
        ax.plot([lo, 1.0], [lo, 1.0], color="grey", lw=0.8, ls="--", label="chance")
    ax.set_xscale("log")
    ax.set_xlim(lo, 1.0)
    ax.set_ylim(0.0, 1.01)
    ax.set_xlabel(axis_labels[0])
    ax.set_ylabel(axis_labels[1])
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    if steps:
        ax.legend(fontsize=8, loc="lower right")
    return figure_png(fig)


def roc_png(fpr: np.ndarray, tpr: np.ndarray, title: str, n_negative: int | None = None) -> bytes:
    """A ROC curve (TAR against FAR on a log axis) as PNG bytes."""
    fpr = np.asarray(fpr, dtype=np.float64)
    lo = 1.0 / n_negative if n_negative else max(float(fpr[fpr > 0].min()) if (fpr > 0).any() else 1e-6, 1e-7)
    return rocs_png({None: (fpr, tpr)}, title, lo)
