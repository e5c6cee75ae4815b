"""The quickstart's report and figures are written atomically: a full disk keeps the earlier files."""
from __future__ import annotations

import numpy as np
import pytest

from disk_helpers import fill, listing, tmpfs
from facelivt.errors import OutputWriteError
from facelivt.quickstart.plots import plot_loss_curves, plot_rocs, save_samples
from facelivt.quickstart.report import Heading, Para, Report, to_html, to_markdown, write_report


def _report() -> Report:
    rep = Report("T")
    rep.add(Heading("Part"), Para("text " * 2000))
    return rep


def test_report_and_figures_are_written(tmp_path):
    md, page = write_report(_report(), tmp_path)
    assert md.read_text(encoding="utf-8") == to_markdown(_report()) and page.read_text(encoding="utf-8") == to_html(_report())
    plot_loss_curves({"a": [3.0, 2.0, 1.0]}, tmp_path / "loss.png")
    plot_rocs({"a": (np.array([0.0, 0.5, 1.0]), np.array([0.0, 0.8, 1.0]))}, tmp_path / "roc.png", 10, "t")
    save_samples(np.zeros((4, 8, 8, 3), np.uint8), np.array([0, 0, 1, 1]), tmp_path / "s.png", per_row=2, rows=2)
    for name in ("loss.png", "roc.png", "s.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loss.png", "report.html", "report.md", "roc.png", "s.png"]


def test_full_disk_keeps_the_earlier_report_and_figures():
    with tmpfs("200k") as disk:
        for name in ("report.md", "report.html", "loss.png", "s.png"):
            (disk / name).write_bytes(f"earlier {name}".encode())
        before = listing(disk)
        fill(disk, leave=0)
        with pytest.raises(OutputWriteError, match="No space left on device"):
            write_report(_report(), disk)
        with pytest.raises(OutputWriteError, match="No space left on device"):
            plot_loss_curves({"a": list(np.linspace(3, 1, 200))}, disk / "loss.png")
        with pytest.raises(OutputWriteError, match="No space left on device"):
            save_samples(np.random.default_rng(0).integers(0, 255, (4, 64, 64, 3), dtype=np.uint8),
                         np.array([0, 0, 1, 1]), disk / "s.png", per_row=2, rows=2)
        (disk / ".filler").unlink()
        assert listing(disk) == before
