"""Two CPU processes (gloo) under torchrun: Partial FC sharded, DDP keeps the backbones equal."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from facelivt.cli import main

from train_helpers import CONFIGS, REPO, last_state


@pytest.mark.slow
def test_torchrun_two_gloo_processes(tmp_path, capsys):
    out = tmp_path / "ddp"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "facelivt", "train", str(CONFIGS / "synthetic_tiny.yaml"), f"output={out}",
        "train.progress=false", "train.epochs=1", "train.checkpoint_every_steps=0",
    ]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stderr.count("stopped: completed") == 1  # only rank 0 reports
    last, r0 = last_state(out, rank=0)
    _, r1 = last_state(out, rank=1)
    assert last["world_size"] == 2 and last["step"] == 4  # 32 images / batch 8 (4 per process)
    # the 8 class centres are split 4 + 4 over the two processes
    assert r0["partial_fc"]["weight"].shape == (4, 512) and r1["partial_fc"]["weight"].shape == (4, 512)
    assert not torch.equal(r0["partial_fc"]["weight"], r1["partial_fc"]["weight"])
    for key in r0["model"]:
        if "running" in key or "num_batches" in key:
            continue  # BatchNorm statistics are per process (DDP broadcasts rank 0's at each forward)
        assert torch.equal(r0["model"][key], r1["model"][key]), key
    assert all(torch.isfinite(torch.tensor(r0["loss_history"].tolist())))
    assert (out / "model.safetensors").is_file() and (out / "model_deploy.safetensors").is_file()
    # one process continues the 2-process run: the class centres are re-split (test_train_reshard.py)
    rc = main(["train", str(CONFIGS / "synthetic_tiny.yaml"), f"output={out}", "train.progress=false", "train.epochs=2"])
    assert rc == 0, capsys.readouterr().err
    last, r0 = last_state(out, rank=0)
    assert last["world_size"] == 1 and last["step"] == 8 and r0["partial_fc"]["weight"].shape == (8, 512)
