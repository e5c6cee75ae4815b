"""``facelivt export`` and ``facelivt bench`` from the command line."""
from __future__ import annotations

import json

import pytest

from facelivt.cli import main


@pytest.fixture(scope="module")
def reference_pt(shared_dir):
    return str(shared_dir / "reference" / "official_facelivt_s.pt")


def test_export_onnx_prints_parity(tmp_path, capsys, reference_pt, shared_dir):
    out = tmp_path / "s.onnx"
    rc = main(["export", "--model", "facelivt_s", "--weights", reference_pt, "--format", "onnx", "--out", str(out),
               "--data", str(shared_dir / "data" / "celeba_subset_112"), "--check-images", "8"])
    text = capsys.readouterr().out
    assert rc == 0 and out.is_file()
    assert "batch dynamic" in text and "max |diff|" in text and "min cosine = 1.0000" in text


def test_export_torchscript_json(tmp_path, capsys, reference_pt, shared_dir):
    out = tmp_path / "s.pt"
    rc = main(["export", "--weights", reference_pt, "--format", "torchscript", "--out", str(out), "--batch-size", "2",
               "--data", str(shared_dir / "data" / "celeba_subset_112"), "--check-images", "4", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert rc == 0 and report["format"] == "torchscript" and report["batch"] == "2"
    assert report["parity"]["min_cosine"] >= 0.9999


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--format", "torchscript", "--int8"], "only available with --format onnx"),
        (["--format", "onnx", "--batch-size", "zero"], "--batch-size must be"),
        (["--format", "onnx", "--weights", "/nonexistent/w.safetensors"], "not found"),
        (["--format", "onnx", "--model", "nope"], "unknown model"),
        (["--format", "onnx", "--data", "/nonexistent/crops"], "not found"),
    ],
)
def test_export_bad_input_is_a_clean_error(tmp_path, capsys, extra, message):
    rc = main(["export", "--out", str(tmp_path / "x.onnx"), *extra])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err


def test_bench_quick_runs(tmp_path, capsys):
    rc = main(["bench", "--quick", "--tables", "table3,peers", "--models", "facelivt_s,edgeface_xs",
               "--batch-sizes", "1,2", "--out", str(tmp_path / "b")])
    text = capsys.readouterr().out
    assert rc == 0
    assert "Structural reparameterization" in text and "edgeface_xs" in text and "## Comparisons" in text
    data = json.loads((tmp_path / "b" / "bench.json").read_text())
    forms = [r["form"] for r in data["tables"]["table3"]]
    assert forms == ["full", "no_residual", "no_fused_bn"]
    assert data["tables"]["table3"][2]["macs_m"] > data["tables"]["table3"][0]["macs_m"]  # unfused BN counted
    assert any("EdgeFace-XS" in g["goal"] for g in data["goals"])


def test_bench_bad_options(tmp_path, capsys):
    assert main(["bench", "--quick", "--tables", "table7", "--out", str(tmp_path)]) == 2
    assert "unknown table" in capsys.readouterr().err
    assert main(["bench", "--quick", "--batch-sizes", "1,x", "--out", str(tmp_path)]) == 2
    assert "--batch-sizes" in capsys.readouterr().err


def test_export_without_data_checks_on_bundled_synthetic_faces(tmp_path, capsys):
    out = tmp_path / "s.onnx"
    rc = main(["export", "--model", "facelivt_s", "--format", "onnx", "--out", str(out), "--check-images", "4",
               "--json", "--quiet"])
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert rc == 0 and out.is_file() and report["crops"] == "synthetic"
    assert report["parity"]["images"] == 4 and report["parity"]["min_cosine"] >= 0.9999


def test_export_int8_without_data_says_what_to_pass(tmp_path, capsys):
    rc = main(["export", "--format", "onnx", "--int8", "--out", str(tmp_path / "q.onnx")])
    err = capsys.readouterr().err
    assert rc == 2 and "--int8 calibrates on real faces: give --data DIR" in err and not (tmp_path / "q.onnx").exists()


def test_bench_json_quiet_torch_only(tmp_path, capsys):
    rc = main(["bench", "--quick", "--tables", "table3", "--batch-sizes", "1", "--torch-only", "--device", "cpu",
               "--out", str(tmp_path / "b"), "--json", "--quiet"])
    captured = capsys.readouterr()
    assert rc == 0 and captured.err == ""  # --quiet: no [bench] progress lines
    assert json.loads(captured.out) == json.loads((tmp_path / "b" / "bench.json").read_text())
    assert not json.loads(captured.out)["config"]["onnx"]


def test_export_int8_too_few_calibration_crops_is_refused(tmp_path, capsys, shared_dir):
    rc = main(["export", "--format", "onnx", "--int8", "--calib-images", "4", "--out", str(tmp_path / "q.onnx"),
               "--data", str(shared_dir / "data" / "celeba_subset_112")])
    err = capsys.readouterr().err
    assert rc == 2 and "--calib-images must be at least 16" in err and not (tmp_path / "q.onnx").exists()


def test_export_int8_says_when_it_is_skipped_and_force_quantises(tmp_path, capsys, shared_dir, monkeypatch):
    import facelivt.deploy.int8_choice as choice_mod
    from facelivt.deploy.onnx_graph import graph_ops

    monkeypatch.setattr(choice_mod, "INT8_MEASURED", {"amx": {"facelivtv2_xs": {"b1": 1.2, "b32": 0.95, "mean_cosine": 0.995}}})
    monkeypatch.setattr(choice_mod, "ort_int8_isa", lambda: "amx")
    common = ["export", "--model", "facelivtv2_xs", "--format", "onnx", "--data", str(shared_dir / "data" / "celeba_subset_112"),
              "--check-images", "4", "--calib-images", "16", "--quiet"]
    assert main([*common, "--int8", "--out", str(tmp_path / "a.onnx")]) == 0
    text = capsys.readouterr().out
    assert "int8 skipped, wrote the fp32 model: int8 measured 0.83x fp32's speed at batch 1" in text
    assert "--force-int8 quantises anyway" in text and "QuantizeLinear" not in graph_ops(tmp_path / "a.onnx")
    assert main([*common, "--force-int8", "--json", "--out", str(tmp_path / "b.onnx")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["int8_choice"]["use"] and report["int8_choice"]["forced"] and report["int8"]["min_cosine"] > 0.9
    assert graph_ops(tmp_path / "b.onnx")["QuantizeLinear"] > 20
