"""The benchmark scripts run, and their baselines compute what they claim (no timing asserted here:
speed goals are read off the scripts' tables)."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import facelivt

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))
from baselines import PerHeadLoopLiteMHLA, PerHeadLoopMHLA, TwoBranchRepConv, released_style, unfolded_lite_mhla  # noqa: E402
from model_helpers import randomize_model  # noqa: E402


@pytest.mark.parametrize("deploy", [False, True])
def test_released_style_baseline_is_the_same_function(deploy):
    torch.manual_seed(0)
    model = randomize_model(facelivt.create_model("facelivt_s")).eval()
    if deploy:
        model = facelivt.reparameterize_model(model)
    base = released_style(model)
    kinds = {type(m) for m in base.modules()}
    assert PerHeadLoopMHLA in kinds
    assert (TwoBranchRepConv in kinds) != deploy  # the deploy form has no RepConv left
    assert not base.training
    x = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        torch.testing.assert_close(base(x), model(x), rtol=1e-4, atol=1e-4)


def test_released_style_baseline_trains_with_the_same_gradients():
    torch.manual_seed(0)
    model = facelivt.create_model("facelivt_s").train()
    base = released_style(model)
    assert base.training
    x = torch.randn(4, 3, 112, 112)
    g = torch.randn(4, 512)
    grads = dict(zip([n for n, _ in model.named_parameters()], torch.autograd.grad(model(x), list(model.parameters()), g)))
    base_grads = dict(zip([n for n, _ in base.named_parameters()], torch.autograd.grad(base(x), list(base.parameters()), g)))
    # (biases before a training-mode BatchNorm get only round-off gradients, so weights are compared)
    for name in ("stem.0.conv_1x1.weight", "stem.0.conv_kxk.weight", "stages.1.blocks.0.mixer.fn.conv_1x1.weight", "head.fc.weight"):
        a, b = base_grads[name], grads[name]
        assert b.norm() > 0
        assert (a - b).norm() / b.norm() < 1e-3, name


def _run(script: str, *args: str) -> str:
    proc = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_train_throughput_script_prints_its_table():
    out = _run("train_throughput.py", "--batch", "4", "--steps", "1", "--rounds", "1", "--warmup", "1", "--classes", "10", "--rows", "plain,cached,released,peer")
    lines = [ln for ln in out.splitlines() if ln.startswith("| ")]
    assert [ln.split("|")[1].strip() for ln in lines[2:]] == ["plain", "cached", "released", "peer"]
    assert "1.00x" in lines[2]


def test_train_throughput_script_refuses_unknown_rows():
    proc = subprocess.run([sys.executable, str(BENCH / "train_throughput.py"), "--rows", "plain,fast"], capture_output=True, text=True)
    assert proc.returncode == 2 and "--rows takes" in proc.stderr


def test_latency_script_prints_its_table():
    out = _run("latency.py", "--models", "facelivt_s", "--batches", "1", "--runs", "2", "--warmup", "1", "--backend", "eager")
    rows = [ln for ln in out.splitlines() if ln.startswith("| facelivt_s")]
    # columns: model, batch, form, ms, images/s, x baseline, x EdgeFace-XS ("-": EdgeFace-XS not measured)
    assert len(rows) == 4 and [c.strip() for c in rows[0].split("|")[6:8]] == ["1.000", "-"]


def test_latency_script_v2_rows_and_edgeface_ratios():
    out = _run("latency.py", "--models", "facelivtv2_xs", "edgeface_xs", "--batches", "1", "--runs", "2", "--warmup", "1",
               "--backend", "eager", "--threads", "1")
    cells = [[c.strip() for c in ln.split("|")[1:-1]] for ln in out.splitlines() if ln.startswith("| facelivtv2_xs") or ln.startswith("| edgeface_xs")]
    v2 = [c for c in cells if c[0] == "facelivtv2_xs"]
    assert len(v2) == 6 and any("Lite MHLA unfolded" in c[2] for c in v2)
    assert all(c[6] != "-" for c in cells)  # every row has its ratio to EdgeFace-XS of the same run
    assert [c[6] for c in cells if c[0] == "edgeface_xs" and c[2] == "deploy form (eager)"] == ["1.000"]


@pytest.mark.parametrize("deploy", [False, True])
def test_v2_baselines_are_the_same_function(deploy):
    torch.manual_seed(0)
    model = randomize_model(facelivt.create_model("facelivtv2_xs")).eval()
    if deploy:
        model = facelivt.reparameterize_model(model)
        unfolded = unfolded_lite_mhla(model)
        assert {type(m).__name__ for m in unfolded.modules()} >= {"LiteMHLA"} and "LiteMHLAFolded" not in {type(m).__name__ for m in unfolded.modules()}
    base = released_style(model)
    assert PerHeadLoopLiteMHLA in {type(m) for m in base.modules()}
    x = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        torch.testing.assert_close(base(x), model(x), rtol=1e-4, atol=1e-4)
        if deploy:
            torch.testing.assert_close(unfolded(x), model(x), rtol=1e-4, atol=1e-4)


def test_train_throughput_script_in_one_process():
    out = _run("train_throughput.py", "--batch", "4", "--steps", "2", "--rounds", "2", "--warmup", "1", "--classes", "10",
               "--rows", "plain,nchw", "--isolation", "none")
    lines = [ln for ln in out.splitlines() if ln.startswith("| ")]
    assert [ln.split("|")[1].strip() for ln in lines[2:]] == ["plain", "nchw"]
