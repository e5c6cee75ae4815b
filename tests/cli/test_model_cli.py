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
    assert main(["convert", str(src), str(out), "--model", "facelivt_s"]) == 0
    ref = torch.load(src, weights_only=True)
    with torch.no_grad():
        assert (load_model("facelivt_s", out, deploy=False)(ref["input"]) - ref["output"]).abs().max() < 1e-5
    assert main(["convert", str(src), str(tmp_path / "m.safetensors"), "--model", "facelivt_m"]) == 2
    assert "facelivt_m" in capsys.readouterr().err
    assert not (tmp_path / "m.safetensors").exists()


def test_console_entry_point_runs():
    r = subprocess.run([sys.executable, "-m", "facelivt", "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0
    for cmd in ("info", "convert"):
        assert cmd in r.stdout
