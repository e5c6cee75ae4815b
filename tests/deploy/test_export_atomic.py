"""An export is checked before it replaces anything: a failed parity check keeps the earlier file."""
from __future__ import annotations

import pytest

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
