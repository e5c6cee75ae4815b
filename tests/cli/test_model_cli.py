import subprocess
import sys

import torch

from facelivt.cli import main
from facelivt.models import load_model


def test_info_prints_table(capsys):
    assert main(["info", "facelivt_s", "facelivt_s_mhsa"]) == 0
    out = capsys.readouterr().out
    assert "facelivt_s " in out and "5.056" in out and "160.4" in out and "237.3" in out


def test_info_unknown_name(capsys):
    assert main(["info", "resnet50"]) == 2
    assert "available models" in capsys.readouterr().err


def test_convert_released(tmp_path, shared_dir, capsys):
    src = shared_dir / "reference" / "official_facelivt_s.pt"
    out = tmp_path / "s.safetensors"
    assert main(["convert", str(src), "--out", str(out), "--model", "facelivt_s"]) == 0
    ref = torch.load(src, weights_only=True)
    with torch.no_grad():
        assert (load_model("facelivt_s", out, deploy=False)(ref["input"]) - ref["output"]).abs().max() < 1e-5
    assert main(["convert", str(src), "--out", str(tmp_path / "m.safetensors"), "--model", "facelivt_m"]) == 2
    assert "facelivt_m" in capsys.readouterr().err
    assert not (tmp_path / "m.safetensors").exists()


def test_console_entry_point_runs():
    r = subprocess.run([sys.executable, "-m", "facelivt", "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0
    for cmd in ("info", "convert"):
        assert cmd in r.stdout


def test_info_v2_rows(capsys):
    assert main(["info", "facelivtv2_xs", "facelivtv2_l"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith("facelivtv2_")}
    assert set(rows) == {"facelivtv2_xs", "facelivtv2_l"}
    assert rows["facelivtv2_xs"][5] == "2.970/90.2" and rows["facelivtv2_l"][5] == "8.825/332.3"
    for r in rows.values():  # deploy params / MACs within 0.5 % of the released code's figures
        assert all(abs(float(d)) < 0.5 for d in r[6].split("/"))


def test_convert_released_v2(tmp_path, shared_dir, capsys):
    src = shared_dir / "reference" / "official_facelivtv2_s.pt"
    ref = torch.load(src, weights_only=True)
    for form in ("train", "deploy"):
        out = tmp_path / f"{form}.safetensors"
        assert main(["convert", str(src), "--out", str(out), "--model", "facelivtv2_s"] + (["--deploy"] if form == "deploy" else [])) == 0
        model = load_model("facelivtv2_s", out, deploy=form == "deploy")
        with torch.no_grad():
            assert (model(ref["input"]) - ref["output" if form == "train" else "output_deploy"]).abs().max() < 1e-5
    assert main(["convert", str(src), "--out", str(tmp_path / "v1.safetensors"), "--model", "facelivt_s"]) == 2
    assert "facelivtv2_s" in capsys.readouterr().err
