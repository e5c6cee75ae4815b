"""The benchmark scripts run, and their baselines compute what they claim (no timing asserted here:
speed goals are read off the scripts' tables)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import facelivt
from facelivt.cpu import cpu_capability, cpu_flags

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


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.split("|")[1:-1]]


def test_latency_script_prints_its_table(tmp_path):
    # an ONNX Runtime row always, and the peer's rows in the same rounds
    out = _run("latency.py", "--models", "facelivt_s", "--batches", "1", "--runs", "2", "--warmup", "1", "--backend", "eager",
               "--out", str(tmp_path / "lat.json"))
    assert out.startswith("CPU capability: CPU ")
    rows = [_cells(ln) for ln in out.splitlines() if ln.startswith("| facelivt_s") or ln.startswith("| edgeface_xs")]
    forms = ["per-head loop (baseline)", "train form", "deploy form (eager)", "optimize_for_inference (onnxruntime)",
             "optimize_for_inference (eager -> eager)"]
    assert [(r[0], r[2]) for r in rows] == [("facelivt_s", f) for f in forms] + [("edgeface_xs", f) for f in forms]
    assert rows[0][5] == "1.000"
    ms = {(r[0], r[2]): float(r[3]) for r in rows}
    ort = "optimize_for_inference (onnxruntime)"
    assert float(rows[3][6]) == pytest.approx(ms[("facelivt_s", ort)] / ms[("edgeface_xs", ort)], rel=0.02, abs=0.002)
    assert float(rows[2][6]) == pytest.approx(ms[("facelivt_s", "deploy form (eager)")] / ms[("edgeface_xs", "deploy form (eager)")],
                                              rel=0.02, abs=0.002)
    assert [r[6] for r in rows if r[0] == "edgeface_xs" and r[2] in ("deploy form (eager)", ort)] == ["1.000", "1.000"]
    data = json.loads((tmp_path / "lat.json").read_text())
    assert data["cpu_capability"]["torch"] == torch.backends.cpu.get_cpu_capability()
    assert len(data["results"]) == len(rows) and data["peer"] == "edgeface_xs"


def test_latency_script_without_a_peer_has_no_peer_column_values():
    out = _run("latency.py", "--models", "facelivt_s", "--batches", "1", "--runs", "2", "--warmup", "1", "--backend", "onnxruntime",
               "--peer", "none")
    rows = [_cells(ln) for ln in out.splitlines() if ln.startswith("| ")][1:]
    rows = [r for r in rows if not r[0].startswith("-")]
    assert {r[0] for r in rows} == {"facelivt_s"} and len(rows) == 4 and {r[6] for r in rows} == {"-"}


def test_latency_script_v2_rows_and_edgeface_ratios():
    out = _run("latency.py", "--models", "facelivtv2_xs", "--batches", "1", "--runs", "2", "--warmup", "1",
               "--backend", "onnxruntime", "--threads", "1")
    cells = [_cells(ln) for ln in out.splitlines() if ln.startswith("| facelivtv2_xs") or ln.startswith("| edgeface_xs")]
    v2 = [c for c in cells if c[0] == "facelivtv2_xs"]
    assert len(v2) == 6 and sum("Lite MHLA unfolded" in c[2] for c in v2) == 2
    assert all(c[6] != "-" for c in cells)  # every row has its ratio to EdgeFace-XS of the same run


def test_benchmarks_say_which_cpu_they_ran_on(tmp_path):
    out = _run("train_throughput.py", "--batch", "4", "--steps", "1", "--rounds", "1", "--warmup", "1", "--classes", "10",
               "--rows", "plain", "--isolation", "none", "--out", str(tmp_path / "t.json"))
    cap = cpu_capability()
    assert f"CPU capability: {cap.summary()}" in out
    data = json.loads((tmp_path / "t.json").read_text())
    assert data["cpu_capability"]["onednn"] == cap.onednn and [r["row"] for r in data["rows"]] == ["plain"]


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


def test_profile_script_lists_ops_and_the_cpu(tmp_path):
    out = _run("profile_ops.py", "--rows", "infer", "--infer-batch", "1", "--steps", "1", "--warmup", "1", "--threads", "1",
               "--out", str(tmp_path / "p.json"))
    assert out.startswith("CPU capability: ")
    data = json.loads((tmp_path / "p.json").read_text())
    ops = data["rows"]["infer"]["ops"]
    assert data["cpu_capability"]["summary"] in out and any("conv" in o["op"] for o in ops)
    assert [o["self_ms"] for o in ops] == sorted((o["self_ms"] for o in ops), reverse=True)


@pytest.mark.skipif("avx2" not in cpu_flags(), reason="--isa avx2 selects AVX2 kernels, which need an x86 CPU with AVX2")
def test_isa_flag_reexecs_with_the_avx2_kernels(tmp_path):
    # --isa avx2 re-runs the script with APPROX_AVX2_ENV; the capability it reports says so
    out = _run("profile_ops.py", "--isa", "avx2", "--rows", "infer", "--infer-batch", "1", "--steps", "1", "--warmup", "1",
               "--threads", "1", "--out", str(tmp_path / "p.json"))
    cap = json.loads((tmp_path / "p.json").read_text())["cpu_capability"]
    assert cap["torch"] == "AVX2" and cap["onednn"] == "avx2" and cap["mkl"] == "AVX2" and cap["isa"] == "avx2"
    assert "torch AVX2, oneDNN avx2" in out


def test_batchnorm_layouts_lists_every_batchnorm_shape_of_the_model(tmp_path):
    from batchnorm_layouts import bn_shapes  # noqa: PLC0415 - benchmarks/ is on sys.path above

    shapes = bn_shapes("facelivt_s", 2)
    model = facelivt.create_model("facelivt_s")
    assert sum(shapes.values()) == sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert (2, 20, 56, 56) in shapes  # the stem's first BatchNorm, which runs NCHW (RepConv nchw=True)
    out = _run("batchnorm_layouts.py", "--batch", "2", "--runs", "1", "--threads", "1", "--out", str(tmp_path / "b.json"))
    rows = [ln for ln in out.splitlines() if ln.startswith("| ")][2:]
    data = json.loads((tmp_path / "b.json").read_text())
    assert out.startswith("CPU capability: ") and len(rows) == len(shapes) == len(data["rows"])


def test_pretrained_cold_start_script_prints_its_table():
    out = _run("pretrained_cold_start.py", "--runs", "1", "--model", "facelivt_s")
    assert "CPU capability:" in out
    rows = {line.split("  ")[0]: line.split()[-2:] for line in out.splitlines() if line.startswith(("local", "cold", "warm"))}
    assert set(rows) == {"local file (baseline)", "cold cache", "warm cache"}
    assert float(rows["local file (baseline)"][1]) == 1.0  # the baseline's own ratio


def test_embed_resume_script_prints_its_table():
    out = _run("embed_resume.py", "--identities", "2")
    lines = [ln for ln in out.splitlines() if ln.startswith("| ")]
    assert len(lines) == 4 and "streamed folder + --resume" in lines[-1], out
    left = int(lines[-1].split("|")[4])
    assert left > 0  # the killed streamed run left rows that --resume kept
def test_startup_script_prints_its_table():
    out = _run("startup.py", "--runs", "1", "--model", "facelivtv2_xs")
    assert out.startswith("CPU capability: ")
    rows = [ln.split("|")[1:-1] for ln in out.splitlines() if ln.startswith("| ") and not ln.startswith("| row")]
    assert [r[0].strip() for r in rows] == ["import torch (baseline)", "facelivt --help", "import facelivt", "facelivt verify (2 photos)"]
    assert float(rows[0][2]) == 1.0
    assert all(float(r[1]) > 0 and float(r[2]) > 0 for r in rows)
    assert [r[3].strip() for r in rows] == ["-", "<= 1.04", "-", "<= 1.65"]
    assert rows[1][4].strip() in ("yes", "no") and rows[3][4].strip() in ("yes", "no")


def test_photo_pipeline_script_prints_its_tables():
    out = _run("photo_pipeline.py", "--photos", "5", "--batch-size", "2", "--threads", "1")
    assert out.startswith("CPU capability: CPU ")
    tables = [[_cells(ln) for ln in block.splitlines() if ln.startswith("| ")] for block in out.split("\n\n")]
    tables = [t for t in tables if t]
    assert [t[0][0] for t in tables] == ["path", "path"]
    raw, aligned = tables
    assert [r[0] for r in raw[2:]] == ["one photo at a time (--workers 0, old path)", "pipeline (--workers 2)"]
    assert [r[0] for r in aligned[2:]] == ["model's own batch 32 (crops in memory)",
                                           "one photo at a time (--workers 0, old path)", "pipeline (one worker for crops)"]
    assert all(len(r) == 7 for r in raw) and all(len(r) == 6 for r in aligned)
    assert raw[2][-1] == "1.00x" and aligned[2][-1] == "1.00x"
    for row in raw[2:] + aligned[2:]:
        assert float(row[1]) > 0 and float(row[-2]) > 0  # photos/s, total ms


def test_int8_script_prints_its_tables(tmp_path):
    out = _run("int8.py", "--models", "facelivtv2_xs", "--batches", "1", "2", "--runs", "2", "--threads", "1",
               "--calib-images", "16", "--check-images", "4", "--pairs", "20", "--out", str(tmp_path / "q.json"))
    lines = out.splitlines()
    assert lines[0].startswith("CPU capability: ") and "int8 ISA" in lines[0]
    rows = [ln.split("|") for ln in lines if ln.startswith("| facelivtv2_xs")]
    assert [int(r[2]) for r in rows] == [1, 2]
    for r in rows:  # the ratio column is int8 ms over fp32 ms of the same run
        assert float(r[5]) == pytest.approx(float(r[4]) / float(r[3]), abs=0.011)
    assert any(ln.startswith("trained FaceLiVT-S, 20 held-out pairs") for ln in lines)
    data = json.loads((tmp_path / "q.json").read_text())
    assert data["accuracy"]["pairs"] == 20 and 0.5 <= data["accuracy"]["fp32_accuracy"] <= 1
    assert data["int8_isa"] == out.split("int8 ISA (MLAS u8s8 kernels): ")[1].split()[0]
    assert [r["batch"] for r in data["speed"]] == [1, 2] and data["speed"][0]["int8_mb"] < data["speed"][0]["fp32_mb"]


def test_detector_speed_script_prints_its_tables():
    """Two photos, one pass: the CPU line first, ours and the reference MTCNN (through the benchmark's own
    torchvision stand-in) in ms per photo, then one profile row per stage adding up to the total."""
    out = _run("detector_speed.py", "--photos", "2", "--passes", "1", "--threads", "1")
    assert out.startswith("CPU capability: ")
    rows = [ln.split("|")[1:-1] for ln in out.splitlines() if ln.startswith("| ") and not ln.startswith(("| detector", "| stage"))]
    speed, stages = rows[:2], rows[2:]
    assert [r[0].strip() for r in speed] == ["facelivt FaceDetector (ours)", "facenet-pytorch MTCNN (reference)"]
    assert float(speed[0][2]) == 1.0 and all(float(r[1]) > 0 for r in speed)
    assert [r[0].strip() for r in stages] == ["pyramid+P-Net", "NMS", "R-Net", "O-Net", "alignment", "other"]
    assert all(float(r[1]) >= 0 for r in stages[:-1])
    total = float(out.split("total ")[1].split(")")[0])
    assert abs(sum(float(r[1]) for r in stages) - total) < 0.1
    assert "torchvision" not in sys.modules  # the stand-in lives in the script's process only
