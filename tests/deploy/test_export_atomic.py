"""An export is checked before it replaces anything: a failed parity check keeps the earlier file."""
from __future__ import annotations

import tempfile

import pytest

from disk_helpers import fill, listing, tmpfs
from facelivt.deploy.export import export_model


def test_failed_parity_check_keeps_the_earlier_export(tmp_path, reference_deploy, check_crops):
    out = tmp_path / "s.pt"
    out.write_bytes(b"the earlier, good export")
    with pytest.raises(RuntimeError, match="does not match PyTorch"):
        export_model(reference_deploy, "torchscript", out, images=check_crops[:2], min_cosine=1.5)  # cannot pass
    assert out.read_bytes() == b"the earlier, good export"
    assert [p.name for p in tmp_path.iterdir()] == ["s.pt"]  # no temporary left


def test_successful_export_replaces_and_reports_the_final_path(tmp_path, reference_deploy, check_crops):
    out = tmp_path / "s.onnx"
    out.write_bytes(b"the earlier export")
    report = export_model(reference_deploy, "onnx", out, images=check_crops[:2])
    assert report.path == str(out) and report.size_bytes == out.stat().st_size > 1_000_000
    assert [p.name for p in tmp_path.iterdir()] == ["s.onnx"]


def test_onnx_is_built_beside_the_output_not_under_tmpdir(tmp_path, monkeypatch, reference_deploy, check_crops):
    """Before: torch wrote the raw graph under TMPDIR, so a full TMPDIR failed the export with 'cannot write
    OUT: No space left on device' while OUT's own disk had room."""
    with tmpfs("1m") as full:
        fill(full, leave=64 * 1024)  # room for tempfile's probe of the folder, not for a 17 MB graph
        before = listing(full)
        monkeypatch.setattr(tempfile, "tempdir", str(full))
        assert tempfile.gettempdir() == str(full)
        report = export_model(reference_deploy, "onnx", tmp_path / "s.onnx", images=check_crops[:2])
        assert listing(full) == before
    assert report.parity.min_cosine > 0.9999
    assert [p.name for p in tmp_path.iterdir()] == ["s.onnx"]  # the raw graph's folder is gone too
