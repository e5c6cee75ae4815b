"""Every command with a device option refuses a device this machine lacks with one clear line.

On a CPU-only build (or without a GPU) the device asked for is ``cuda``; where CUDA works, a GPU index
past the last one. Before, ``embed``, ``verify`` and ``align`` died with torch's ``AssertionError:
Torch not compiled with CUDA enabled`` traceback, and the others named neither the option nor what to use.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from disk_helpers import assert_clean_failure, run_cli

from facelivt.evaluation import write_bin

REPO = Path(__file__).resolve().parents[2]
FACES = REPO.parent / "shared" / "data" / "celeba_subset_112"


def _missing_cuda() -> tuple[str, str]:
    """(a CUDA device this machine cannot give, the start of the message expected for --device)."""
    if not torch.cuda.is_available():
        return "cuda", "CUDA was asked for (--device cuda) but "
    n = torch.cuda.device_count()
    return f"cuda:{n}", f"GPU {n} was asked for (--device cuda:{n}) but only {n} CUDA GPU"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    from facelivt import create_model
    from facelivt.models import save_weights

    root = tmp_path_factory.mktemp("dev")
    crops = sorted(p for d in sorted(FACES.iterdir())[:1] for p in sorted(d.iterdir())[:2])
    save_weights(create_model("facelivt_s").eval(), root / "w.safetensors")
    write_bin(root / "pairs.bin", [p.read_bytes() for p in crops], [True])
    (root / "photos").mkdir()
    for p in crops:
        (root / "photos" / p.name).write_bytes(p.read_bytes())
    return {"root": root, "weights": root / "w.safetensors", "bin": root / "pairs.bin", "a": crops[0], "b": crops[1]}


def _args(command: str, i: dict[str, Path], device: str) -> list[str]:
    w, out = str(i["weights"]), i["root"] / f"out_{command}"
    return {
        "embed": ["embed", str(i["a"]), "--aligned", "--weights", w, "--out", str(out / "e.safetensors")],
        "verify": ["verify", str(i["a"]), str(i["b"]), "--aligned", "--weights", w],
        "eval": ["eval", "--model", "facelivt_s", "--weights", w, "--bin", str(i["bin"]), "--out", str(out)],
        "align": ["align", str(i["root"] / "photos"), "--out", str(out)],
        "bench": ["bench", "--quick", "--out", str(out)],
    }[command] + ["--device", device]


@pytest.mark.parametrize("command", ["embed", "verify", "eval", "align", "bench"])
def test_missing_cuda_is_one_clear_line(inputs, command):
    device, expected = _missing_cuda()
    proc = run_cli(*_args(command, inputs, device), timeout=300)
    assert_clean_failure(proc)
    assert f"facelivt {command}: error: {expected}" in proc.stderr, proc.stderr
    assert "AssertionError" not in proc.stderr
    assert not (inputs["root"] / f"out_{command}").exists()  # refused before any work


def test_train_device_names_the_config_key(tmp_path):
    device, _ = _missing_cuda()
    proc = run_cli("train", str(REPO / "configs" / "synthetic_tiny.yaml"), f"train.device={device}",
                   f"output={tmp_path / 'run'}", timeout=300)
    assert_clean_failure(proc)
    assert re.search(rf"facelivt train: error: .* \(train\.device={re.escape(device)}\)", proc.stderr), proc.stderr


@pytest.mark.parametrize("device", ["warp-drive"])
def test_unknown_device_names(inputs, device):
    proc = run_cli(*_args("verify", inputs, device), timeout=300)
    assert_clean_failure(proc)
    assert f"device (--device {device}): " in proc.stderr and "auto, cpu, cuda, cuda:N or mps" in proc.stderr
