"""int8 where it pays: the per-model choice (facelivt.deploy.int8_choice), ``optimize_for_inference(..., int8=...)``
applying it on trained weights and real faces, and the errors of bad calibration input."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import facelivt
import facelivt.deploy.int8_choice as choice_mod
from facelivt.cpu import ort_int8_isa
from facelivt.deploy.export import export_model
from facelivt.deploy.int8_choice import INT8_MEASURED, INT8_MIN_MEAN_COSINE, INT8_MIN_SPEEDUP, int8_choice
from facelivt.deploy.parity import compare_embeddings, pytorch_embeddings
from facelivt.deploy.quantize import MIN_CALIBRATION_IMAGES
from facelivt.evaluation import evaluate_distances, pair_distances

# A made-up table: one model int8 pays for, one it is not faster for, one whose embeddings it spoils.
FAKE = {"amx": {"facelivt_s": {"b1": 0.6, "b32": 0.7, "mean_cosine": 0.995},
                "slow_net": {"b1": 1.05, "b32": 0.7, "mean_cosine": 0.999},
                "fragile_net": {"b1": 0.5, "b32": 0.5, "mean_cosine": 0.9}}}

# The bounds of int8 against float32 on the held-out faces of the trained FaceLiVT-S (conftest.heldout_faces):
# benchmarks/int8.py measured a smallest cosine of 0.988 and a mean of 0.998 over those 610 images (README, int8;
# calibrated on 64 crops there, 32 here; with 32, 0.992 was measured, tests/deploy/weights/README.md);
# 0.98 / 0.995 leave room for another ONNX Runtime version's rounding, while a mis-scaled or clipping quantiser
# falls far below (crops times 0.05 as calibration: accuracy 54.5 %, tests/deploy/weights/README.md).
AGREE_MIN_COSINE = 0.98
AGREE_MEAN_COSINE = 0.995
MAX_ACCURACY_DROP = 0.02  # as test_export.INT8_MAX_ACCURACY_DROP: 8 of 400 verdicts, net


@pytest.fixture
def fake_table(monkeypatch):
    monkeypatch.setattr(choice_mod, "INT8_MEASURED", FAKE)
    monkeypatch.setattr(choice_mod, "ort_int8_isa", lambda: "amx")


def test_int8_choice_reads_the_measurements(fake_table):
    pays = int8_choice("facelivt_s")
    assert pays.use and not pays.forced and pays.isa == "amx" and "1.67x" in pays.reason
    slow = int8_choice("slow_net")
    assert not slow.use and "not 1.1x faster" in slow.reason and "0.95x" in slow.reason
    fragile = int8_choice("fragile_net")
    assert not fragile.use and "cosine" in fragile.reason
    assert not int8_choice("facelivtv2_l").use and "not measured for facelivtv2_l" in int8_choice("facelivtv2_l").reason
    assert not int8_choice(None).use
    avx2 = int8_choice("facelivt_s", isa="avx2")
    assert not avx2.use and "not measured on avx2" in avx2.reason and "VNNI" in avx2.reason
    forced = int8_choice("slow_net", force=True)
    assert forced.use and forced.forced and "forced" in forced.reason


def test_the_committed_table_follows_the_rule():
    """Each measured model's choice is what its figures say; the ISA key is one ort_int8_isa can return."""
    assert INT8_MEASURED and ort_int8_isa(frozenset()) == "none"
    for isa, table in INT8_MEASURED.items():
        assert isa in ("amx", "avx512_vnni", "avx_vnni", "avx2") and table
        for model, m in table.items():
            assert model in facelivt.list_models()
            faster = min(1 / m["b1"], 1 / m["b32"]) >= INT8_MIN_SPEEDUP
            assert int8_choice(model, isa=isa).use == (faster and m["mean_cosine"] >= INT8_MIN_MEAN_COSINE), model


def test_ort_int8_isa_from_flags():
    avx512 = frozenset({"avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512dq"})
    assert ort_int8_isa(avx512 | {"avx512_vnni", "amx_tile", "amx_int8"}) == "amx"
    assert ort_int8_isa(avx512 | {"avx512_vnni"}) == "avx512_vnni"
    assert ort_int8_isa(frozenset({"avx2", "fma", "avx_vnni"})) == "avx_vnni"
    assert ort_int8_isa(frozenset({"avx2", "fma"})) == "avx2"  # e.g. EPYC Zen 2/3


def test_optimize_int8_where_it_pays_agrees_with_fp32_on_held_out_faces(fake_table, trained_deploy, heldout_faces):
    faces = heldout_faces
    fast = facelivt.optimize_for_inference(trained_deploy, int8=True, calibration=faces.calibration)
    assert fast.backend == "onnxruntime" and fast.int8.use and fast.int8.model == "facelivt_s"
    with torch.no_grad():
        e8 = fast(faces.images).numpy()
    e32 = pytorch_embeddings(trained_deploy, faces.images)
    parity = compare_embeddings(e32, e8)
    assert parity.max_abs_diff > 1e-3  # it is not the float32 model
    assert parity.min_cosine >= AGREE_MIN_COSINE and parity.mean_cosine >= AGREE_MEAN_COSINE, parity
    r32 = evaluate_distances(pair_distances(e32[faces.rows]), faces.issame)
    r8 = evaluate_distances(pair_distances(e8[faces.rows]), faces.issame)
    assert r8["accuracy"] >= r32["accuracy"] - MAX_ACCURACY_DROP, (r32["accuracy"], r8["accuracy"])


def test_optimize_int8_skipped_where_it_does_not_pay(monkeypatch, fake_table, trained_deploy, heldout_faces):
    monkeypatch.setattr(trained_deploy, "model_name", "slow_net")
    with pytest.warns(RuntimeWarning, match="int8 skipped for slow_net.*not 1.1x faster.*'force'"):
        fast = facelivt.optimize_for_inference(trained_deploy, backend="onnxruntime", int8=True, calibration=heldout_faces.calibration)
    assert not fast.int8.use
    x = heldout_faces.images[:4]
    with torch.no_grad():
        assert (fast(x) - trained_deploy(x)).abs().max() < 1e-4  # the float32 model
    forced = facelivt.optimize_for_inference(trained_deploy, int8="force", calibration=heldout_faces.calibration)
    assert forced.int8.use and forced.int8.forced
    with torch.no_grad():
        assert (forced(x) - trained_deploy(x)).abs().max() > 1e-3


def test_export_int8_follows_the_choice(tmp_path, fake_table, trained_deploy, heldout_faces):
    from facelivt.deploy.onnx_graph import graph_ops

    calib = heldout_faces.calibration
    report = export_model(trained_deploy, "onnx", tmp_path / "s.onnx", images=heldout_faces.images[:4], int8=True, calibration=calib)
    assert report.int8_choice.use and report.int8 is not None and graph_ops(tmp_path / "s.onnx")["QuantizeLinear"] > 40
    v2 = facelivt.reparameterize_model(facelivt.create_model("facelivtv2_xs").eval())  # not in the made-up table
    skipped = export_model(v2, "onnx", tmp_path / "v2.onnx", images=heldout_faces.images[:4], int8=True, calibration=calib)
    assert not skipped.int8_choice.use and skipped.int8 is None and "not measured" in skipped.int8_choice.reason
    assert "QuantizeLinear" not in graph_ops(tmp_path / "v2.onnx") and skipped.parity.min_cosine >= 0.9999


def _few_crops_folder(root, crops_dir, count: int):
    root.mkdir()
    for i, path in enumerate(sorted(crops_dir.rglob("*.jpg"))[:count]):
        Image.open(path).save(root / f"{i}.png")
    return root


def test_bad_calibration_input_is_a_clear_error(tmp_path, trained_deploy, check_crops, crops_dir):
    with pytest.raises(ValueError, match="int8 needs calibration images: real aligned"):
        facelivt.optimize_for_inference(trained_deploy, int8=True)
    with pytest.raises(ValueError, match=f"at least {MIN_CALIBRATION_IMAGES} face crops, got 8"):
        facelivt.optimize_for_inference(trained_deploy, int8=True, calibration=check_crops[:8])
    few = _few_crops_folder(tmp_path / "few", crops_dir, 3)
    with pytest.raises(ValueError, match=f"at least {MIN_CALIBRATION_IMAGES} face crops, got 3"):
        facelivt.optimize_for_inference(trained_deploy, int8=True, calibration=few)
    with pytest.raises(FileNotFoundError, match="crops folder not found"):
        facelivt.optimize_for_inference(trained_deploy, int8=True, calibration=tmp_path / "missing")
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        facelivt.optimize_for_inference(trained_deploy, int8=True, calibration=np.zeros((32, 112, 112, 3), np.float32))
    with pytest.raises(ValueError, match="backend must be 'auto' or 'onnxruntime'"):
        facelivt.optimize_for_inference(trained_deploy, backend="torchscript", int8=True, calibration=check_crops)
    with pytest.raises(ValueError, match="int8 must be False, True"):
        facelivt.optimize_for_inference(trained_deploy, int8="yes", calibration=check_crops)
    with pytest.raises(ValueError, match=f"at least {MIN_CALIBRATION_IMAGES} face crops"):
        export_model(trained_deploy, "onnx", tmp_path / "x.onnx", int8=True, calibration=check_crops[:4])
    assert not (tmp_path / "x.onnx").exists()
