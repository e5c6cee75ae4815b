"""`facelivt train` killed with SIGKILL right after a mid-epoch checkpoint, then resumed, ends with the
same weights (bit for bit) as an uninterrupted run."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from facelivt.training import load_checkpoint_file

from train_helpers import CONFIGS, REPO

CONFIG = str(CONFIGS / "synthetic_tiny.yaml")  # 32 images, batch 8: 4 steps per epoch, 8 steps, checkpoints every 2


def command(output) -> list[str]:
    return [sys.executable, "-m", "facelivt", "train", CONFIG, f"output={output}", "train.progress=false"]


def run_to_end(output) -> subprocess.CompletedProcess:
    proc = subprocess.run(command(output), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_gives_identical_weights(tmp_path):
    straight = tmp_path / "straight"
    killed = tmp_path / "killed"
    run_to_end(straight)

    proc = subprocess.Popen(command(killed), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    pointer = killed / "checkpoints" / "last.json"
    deadline = time.monotonic() + 240
    try:
        while not pointer.is_file():
            assert proc.poll() is None, f"training ended before its first checkpoint: {proc.stderr.read()[-2000:]}"
            assert time.monotonic() < deadline, "no checkpoint appeared in time"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    info = json.loads(pointer.read_text())
    assert info["step"] % 4 != 0, "the checkpoint should be inside an epoch"
    assert info["step"] < 8 and not (killed / "model.safetensors").exists()

    resumed = run_to_end(killed)
    assert "stopped: completed after 8/8 steps" in resumed.stderr
    events = [json.loads(line) for line in (killed / "log.jsonl").read_text().splitlines()]
    starts = [e for e in events if e["event"] == "start"]
    assert len(starts) == 2 and starts[1]["step"] == info["step"] and starts[1]["resumed_from"]

    a = load_file(str(straight / "model.safetensors"))
    b = load_file(str(killed / "model.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from the uninterrupted run"
    ca = load_checkpoint_file(straight / "checkpoints" / "step-00000008" / "rank0.pt")
    cb = load_checkpoint_file(killed / "checkpoints" / "step-00000008" / "rank0.pt")
    assert torch.equal(ca["partial_fc"]["weight"], cb["partial_fc"]["weight"])
    assert torch.equal(ca["loss_history"], cb["loss_history"])
    for key, value in ca["optimizer"]["state"][0].items():
        assert torch.equal(value, cb["optimizer"]["state"][0][key])

    # both exported forms load through the model library and compute the same function
    from facelivt.models import load_model

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 2-thread pool crawls on a busy 2-core machine
    try:
        train_form = load_model("facelivt_s", killed / "model.safetensors", deploy=False)
        deploy_form = load_model("facelivt_s", killed / "model_deploy.safetensors")
        x = torch.randn(2, 3, 112, 112, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            assert torch.allclose(train_form(x), deploy_form(x), atol=1e-4)
    finally:
        torch.set_num_threads(threads)
