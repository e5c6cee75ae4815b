"""``facelivt bench --weights W`` / ``--onnx FILE``: the user's own model timed beside FaceLiVT-S, and
bench's output speaks of the project only."""
from __future__ import annotations

import json
import re
import sys

import pytest

import facelivt
from facelivt.cli import main
from facelivt.deploy.onnx_export import export_onnx

MODEL = "facelivtv2_xs"  # the smallest FaceLiVT


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("w") / "mine.safetensors"
    facelivt.save_weights(facelivt.create_model(MODEL), path)
    return path


@pytest.fixture(scope="module")
def onnx_files(tmp_path_factory):
    """The same small model exported with a dynamic batch and with a fixed batch of 1."""
    folder = tmp_path_factory.mktemp("onnx")
    model = facelivt.reparameterize_model(facelivt.create_model(MODEL))
    export_onnx(model, folder / "dynamic.onnx", batch="dynamic")
    export_onnx(model, folder / "fixed1.onnx", batch=1)
    return folder


def _bench(tmp_path, capsys, *extra):
    rc = main(["bench", "--quick", "--batch-sizes", "1", "--out", str(tmp_path / "b"), *extra])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def _rows(tmp_path):
    data = json.loads((tmp_path / "b" / "bench.json").read_text())
    assert list(data["tables"]) == ["yours"]
    return {r["model"]: r for r in data["tables"]["yours"]}


def test_bench_times_the_users_weights_and_onnx_file(tmp_path, capsys, weights, onnx_files):
    onnx = onnx_files / "dynamic.onnx"
    rc, out, err = _bench(tmp_path, capsys, "--weights", str(weights), "--onnx", str(onnx))
    assert rc == 0, err
    rows = _rows(tmp_path)
    mine = f"{MODEL} ({weights})"
    assert list(rows) == ["facelivt_s", mine, str(onnx)]
    assert rows["facelivt_s"]["eager_b1_ratio"] == 1.0 and rows["facelivt_s"]["ort_b1_ratio"] == 1.0
    assert rows[mine]["eager_b1_ms"] > 0 and rows[mine]["ort_b1_ms"] > 0
    assert 0 < rows[mine]["params_m"] < rows["facelivt_s"]["params_m"]
    assert rows[str(onnx)]["ort_b1_ms"] > 0 and "eager_b1_ms" not in rows[str(onnx)]  # ONNX Runtime only
    assert "## Your model beside FaceLiVT-S" in out and str(onnx) in out


def test_bench_onnx_file_at_several_batch_sizes_alone(tmp_path, capsys, onnx_files):
    onnx = onnx_files / "dynamic.onnx"
    rc, _, err = _bench(tmp_path, capsys, "--onnx", str(onnx), "--batch-sizes", "1,3", "--torch-only")
    assert rc == 2 and "drop --torch-only" in err
    rc, _, err = _bench(tmp_path, capsys, "--onnx", str(onnx), "--batch-sizes", "1,3")
    assert rc == 0, err
    row = _rows(tmp_path)[str(onnx)]
    assert row["ort_b1_ms"] > 0 and row["ort_b3_ms"] > 0 and row["ort_b3_img_s"] > 0


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "missing.onnx", "ONNX model not found"),
    (lambda d: _write(d / "text.onnx", b"this is not an ONNX model"), "is not an ONNX model"),
    (lambda d: d, "is a folder, not a ONNX model"),
])
def test_bench_refuses_a_file_that_is_not_onnx(tmp_path, capsys, make, message):
    rc, out, err = _bench(tmp_path, capsys, "--onnx", str(make(tmp_path)))
    assert rc == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "b").exists()


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def test_bench_refuses_batch_sizes_a_fixed_batch_file_does_not_take(tmp_path, capsys, onnx_files):
    rc, _, err = _bench(tmp_path, capsys, "--onnx", str(onnx_files / "fixed1.onnx"), "--batch-sizes", "1,4")
    assert rc == 2 and "fixed batch of 1: time it with --batch-sizes 1" in err


@pytest.mark.parametrize("extra, message", [
    (["--model", MODEL], "--model names the model of --weights"),
    (["--weights", "/nonexistent/w.safetensors"], "not found"),
    (["--tables", "yours"], "give weights (--weights) or an ONNX file (--onnx)"),
])
def test_bench_bad_weights_options(tmp_path, capsys, extra, message):
    rc, _, err = _bench(tmp_path, capsys, *extra)
    assert rc == 2 and message in err and "Traceback" not in err


def test_bench_weights_of_another_model_are_refused(tmp_path, capsys, weights):
    rc, _, err = _bench(tmp_path, capsys, "--weights", str(weights), "--model", "facelivt_m")
    assert rc == 2 and f"holds weights of '{MODEL}'" in err


INTERNAL = re.compile(r"\bissue\b|\bgoals?\b|MISSED|\bseed\b|the five of", re.IGNORECASE)


def test_bench_output_has_no_internal_wording(tmp_path, capsys):
    rc = main(["bench", "--quick", "--tables", "table3,peers", "--models", "facelivt_s,edgeface_xs", "--batch-sizes", "1",
               "--torch-only", "--out", str(tmp_path / "b")])
    captured = capsys.readouterr()
    assert rc == 0
    text = captured.out + captured.err + (tmp_path / "b" / "bench.md").read_text()
    assert "## Comparisons" in text and "EdgeFace-XS" in text
    assert INTERNAL.findall(text) == []


def test_bench_help_has_no_internal_wording(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    text = capsys.readouterr().out
    assert "--weights" in text and "--onnx" in text
    assert INTERNAL.findall(text) == []


def test_bench_without_onnx_runtime_names_the_extra_or_runs_pytorch_only(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if the [export] extra were not installed
    rc, _, err = _bench(tmp_path, capsys, "--tables", "table4")
    assert rc == 2 and 'pip install "facelivt[export]"' in err and "--torch-only" in err
    assert not (tmp_path / "b").exists()
    rc, out, err = _bench(tmp_path, capsys, "--tables", "table4", "--torch-only")
    assert rc == 0, err
    assert "onnxruntime not used" in out and "ONNX Runtime b1" not in out
