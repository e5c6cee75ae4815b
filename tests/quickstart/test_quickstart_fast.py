"""The CI-sized quickstart (`facelivt quickstart --quick`) runs end to end and writes every file of
the report; the report's numbers are the ones measured (results.json)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from facelivt.cli import main
from facelivt.models.card import SYNTHETIC_WARNING, read_card
from facelivt.quickstart import REPORT_FILES, STEPS
from results_layout import LAYOUT_FILE, results_layout

MODEL_KEYS = ("teacher", "student_kd", "student_plain")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("quickstart") / "report"
    rc = main(["quickstart", "--quick", "--out", str(out), "--threads", "1", "--quiet"])
    assert rc == 0
    return out, json.loads((out / "results.json").read_text())


def test_every_file_of_the_report_exists_and_is_not_empty(run):
    out, results = run
    expected = list(REPORT_FILES) + ["facelivt_s_kd.onnx"]
    for key in MODEL_KEYS:
        expected += [f"weights/{key}.safetensors", f"weights/{key}_deploy.safetensors", f"train/{key}/log.jsonl",
                     f"train/{key}/config.yaml"]
    for rel in expected:
        path = out / rel
        assert path.is_file(), f"missing {rel}"
        assert path.stat().st_size > 0, f"empty {rel}"
    listed = {f["path"] for f in results["files"]}
    assert {"results.json", "report.md", "weights/student_kd_deploy.safetensors"} <= listed
    assert not (out / "train" / "teacher" / "checkpoints").exists()  # training checkpoints are cleaned up


def test_pngs_decode_and_are_not_blank(run):
    out, _ = run
    for name in ("loss_curves.png", "roc.png", "samples.png"):
        with Image.open(out / name) as im:
            im.load()
            assert im.format == "PNG" and im.width >= 100 and im.height >= 100
            pixels = np.asarray(im.convert("L"), dtype=np.float32)
        assert pixels.std() > 5.0, f"{name} looks blank"


def test_report_mentions_every_step(run):
    out, _ = run
    md = (out / "report.md").read_text()
    low = md.lower()
    for words in ("identity split", "held out", "train the teacher", "with distillation", "without distillation",
                  "held-out verification", "10-fold", "reparameterization", "deploy form", "onnx runtime",
                  "latency", "edgeface_xs", "wall time", "ci-sized run"):
        assert words in low, f"report.md does not mention {words!r}"
    for title in (t for _, t in STEPS):
        assert title.split(":")[0].split(" (")[0].lower() in low
    for image in ("loss_curves.png", "roc.png", "samples.png"):
        assert f"]({image})" in md
    page = (out / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and page.count("<table>") >= 6
    for image in ("loss_curves.png", "roc.png", "samples.png"):
        assert f'src="{image}"' in page


def test_results_json_holds_the_measured_numbers(run):
    out, r = run
    assert set(r["step_seconds"]) == {k for k, _ in STEPS}
    assert all(v >= 0 for v in r["step_seconds"].values())
    assert r["wall_seconds"] >= sum(r["step_seconds"].values()) - 1e-6
    assert r["plan"]["tiny"] is True and r["machine"]["threads"] == 1
    for key in MODEL_KEYS:
        m, v, d = r["models"][key], r["verification"][key], r["deploy"][key]
        assert m["steps"] == m["planned_steps"] > 0 and len(m["loss"]) == m["steps"] == len(m["loss_cls"])
        assert all(np.isfinite(m["loss"]))
        assert 0.0 <= v["accuracy"] <= 1.0 and len(v["fold_accuracies"]) == 10 and 0.0 <= v["auc"] <= 1.0
        assert v["n_pairs"] == r["data"]["pairs"]
        assert d["batchnorm_train"] > 0 and d["batchnorm_deploy"] == 0
        assert d["parity"]["min_cosine"] > 0.9999 and d["reload_parity"]["max_abs_diff"] < 1e-4 and d["passed"]
    assert len(r["models"]["student_kd"]["loss_dis"]) == r["models"]["student_kd"]["steps"]
    assert r["models"]["student_plain"]["loss_dis"] == []
    assert r["onnx"]["passed"] and r["onnx"]["parity"]["min_cosine"] > 0.9999
    labels = {row["label"] for row in r["benchmark"]}
    assert {"facelivt_s train form", "facelivt_s deploy form", "edgeface_xs deploy form"} <= labels
    assert all(row["latency_ms"]["1"] > 0 for row in r["benchmark"])
    assert r["distillation"]["verdict"] in ("helped", "hurt", "no clear difference")
    assert r["checks_passed"] is True


def test_results_json_keeps_its_layout(run):
    """The same keys and kinds of values as before the results were dataclasses (the environment may grow)."""
    _, r = run
    expected = json.loads(LAYOUT_FILE.read_text())
    got = results_layout(r)
    assert set(expected.pop("machine")) <= set(got.pop("machine"))
    assert got == expected
    assert {"model", "train", "distill", "quickstart", "quick"} <= set(r["config"])
    assert all(m["config"]["model"]["name"] == m["name"] for m in r["models"].values())


def test_each_runs_result_json_names_its_weights_where_they_are(run):
    out, _ = run
    for key in MODEL_KEYS:
        summary = json.loads((out / "train" / key / "result.json").read_text())
        assert Path(summary["weights"]) == out / "weights" / f"{key}.safetensors"
        assert Path(summary["deploy_weights"]) == out / "weights" / f"{key}_deploy.safetensors"
        assert Path(summary["weights"]).is_file() and Path(summary["deploy_weights"]).is_file()
        # each says what it is: trained on synthetic faces, so no verdict on real photos is to be trusted
        card = read_card(summary["weights"])
        assert card.faces == "synthetic" and card.warning() == SYNTHETIC_WARNING and card.training.steps > 0
        assert read_card(summary["deploy_weights"]) == card


def test_report_numbers_come_from_results(run):
    out, r = run
    md = (out / "report.md").read_text()
    for key in MODEL_KEYS:
        v = r["verification"][key]
        assert f"{100 * v['accuracy']:.2f} +- {100 * v['accuracy_std']:.2f}" in md
    row = next(b for b in r["benchmark"] if b["label"] == "facelivt_s deploy form")
    assert f"{row['latency_ms']['1']:.2f}" in md
    assert f"{r['wall_seconds']:.1f}" in md


def test_saved_weights_load_and_match(run):
    from facelivt.models import load_model

    out, _ = run
    x = torch.randn(2, 3, 112, 112, generator=torch.Generator().manual_seed(0))
    train = load_model("facelivt_s", out / "weights" / "student_kd.safetensors", deploy=False)
    deploy = load_model("facelivt_s", out / "weights" / "student_kd_deploy.safetensors")
    with torch.no_grad():
        a, b = train(x), deploy(x)
    assert torch.allclose(a, b, atol=1e-4, rtol=1e-4)


def test_onnx_file_runs_in_onnxruntime(run):
    from facelivt.deploy.sessions import onnx_runner, onnx_session

    out, _ = run
    session = onnx_session(out / "facelivt_s_kd.onnx", threads=1)
    y = onnx_runner(session)(np.zeros((3, 3, 112, 112), np.float32))
    assert y.shape == (3, 512) and np.isfinite(y).all()
