"""The trainer's CUDA paths: bf16 / fp16 autocast (fp16 with loss scaling), torch.compile, and NCCL
between two processes. They need a GPU (NCCL: two), so they are skipped, with that reason shown, on
CPU machines; on a GPU machine run ``python -m pytest tests/training/test_train_cuda.py``."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from facelivt.data import SyntheticIdentities
from facelivt.training import load_checkpoint_file, train

from train_helpers import CONFIGS, REPO, last_state, quick_config, train_eager_and_compiled

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def cuda_config(output, **train_section):
    cfg = quick_config(output, **train_section)
    cfg.train.device = "cuda"
    cfg.train.deterministic = False  # deterministic cuBLAS would need CUBLAS_WORKSPACE_CONFIG
    return cfg


@needs_cuda
@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_trains_facelivt_on_cuda(tmp_path, amp):
    import facelivt

    if amp == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bfloat16")
    faces = SyntheticIdentities(8, 8, seed=1)
    cfg = cuda_config(tmp_path / amp, epochs=4)  # 64 images, batch 8: 32 steps
    cfg.train.amp = amp
    cfg.optim.lr = 2e-3
    model = facelivt.create_model("facelivt_s", embedding_size=16)
    result = train(cfg, dataset=faces, model=model)
    losses = result.loss_history
    assert result.stopped == "completed" and len(losses) == 32
    assert all(torch.isfinite(torch.tensor(losses)))
    k = len(losses) // 3
    assert sum(losses[-k:]) / k < sum(losses[:k]) / k
    assert all(p.dtype == torch.float32 and p.is_cuda for p in model.parameters())
    state = load_checkpoint_file(result.last_checkpoint / "rank0.pt")
    if amp == "fp16":
        assert 0 < state["scaler"]["scale"] <= 2.0**16
    else:
        assert state["scaler"] == {}


@needs_cuda
def test_compiled_backbone_trains_like_eager_on_cuda(tmp_path, faces):
    runs = train_eager_and_compiled(tmp_path, faces, cuda_config)
    (eager, _), (comp, _) = runs[False], runs[True]
    assert comp.steps == eager.steps == 4
    assert comp.loss_history == pytest.approx(eager.loss_history, rel=1e-3, abs=1e-4)


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="NCCL between two processes needs two GPUs")
def test_torchrun_two_nccl_processes(tmp_path):
    out = tmp_path / "nccl"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "facelivt", "train", str(CONFIGS / "synthetic_tiny.yaml"), f"output={out}",
        "train.device=auto", "train.amp=auto", "train.deterministic=false",
        "train.progress=false", "train.epochs=1", "train.checkpoint_every_steps=0",
    ]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    last, r0 = last_state(out, rank=0)
    _, r1 = last_state(out, rank=1)
    assert last["world_size"] == 2
    assert r0["partial_fc"]["weight"].shape == r1["partial_fc"]["weight"].shape
    for key in r0["model"]:
        if "running" in key or "num_batches" in key:
            continue
        assert torch.equal(r0["model"][key], r1["model"][key]), key
