"""Shared helpers of the training tests: paths, tiny models, quick configs."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from facelivt.training import Config, StepRunner, load_checkpoint_file, train

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO / ".." / "shared"
CONFIGS = REPO / "configs"


class TinyNet(nn.Module):
    """A BatchNorm-free embedder (conv, pool, linear): fast, and its gradients do not depend on how
    a batch is split, so accumulation can be compared exactly."""

    def __init__(self, dim: int = 16, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.conv = nn.Conv2d(3, 8, 5, stride=4)
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.fc = nn.Linear(8 * 16, dim)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.pool(self.conv(x))).flatten(1))


def quick_config(output: Path, **train) -> Config:
    """A CPU config for in-process runs on small synthetic data."""
    cfg = Config(output=str(output))
    cfg.data.type = "synthetic"
    cfg.data.num_workers = 0
    cfg.train.device = "cpu"
    cfg.train.amp = "none"
    cfg.train.progress = False
    cfg.train.tensorboard = False
    cfg.train.deterministic = True
    cfg.train.num_threads = 1  # small ops with 2 threads crawl on a busy 2-core machine
    cfg.train.batch_size = 8
    cfg.train.epochs = 1
    cfg.train.log_every_steps = 1
    cfg.optim.lr = 1e-3
    cfg.eval.every_epoch = False
    for k, v in train.items():
        setattr(cfg.train, k, v)
    return cfg


def state_equal(a: dict, b: dict, atol: float = 0.0) -> float:
    """Largest absolute difference between two state dicts with the same keys."""
    assert set(a) == set(b)
    worst = 0.0
    for k in a:
        worst = max(worst, (a[k].double() - b[k].double()).abs().max().item() if a[k].numel() else 0.0)
    return worst


def last_state(output: Path, rank: int = 0) -> tuple[dict, dict]:
    """The ``last.json`` pointer of a run's output folder and that checkpoint's state of ``rank``."""
    pointer = json.loads((Path(output) / "checkpoints" / "last.json").read_text())
    return pointer, load_checkpoint_file(Path(output) / "checkpoints" / pointer["dir"] / f"rank{rank}.pt")


_LOSSES = StepRunner.losses


def nan_at_step(monkeypatch, step: int) -> None:
    """The total loss of optimiser step ``step`` (0-based) becomes NaN, by patching
    :meth:`StepRunner.losses` (a later call replaces an earlier one)."""

    def poisoned(self, x, y, idx, flip, step_index):
        loss, loss_cls, loss_dis = _LOSSES(self, x, y, idx, flip, step_index)
        return (loss * float("nan") if step_index == step else loss), loss_cls, loss_dis

    monkeypatch.setattr(StepRunner, "losses", poisoned)


def overflow_at_call(model: TinyNet, call: int) -> None:
    """The gradients of the ``call``-th backward pass become infinite (as a float16 overflow does)."""
    calls = []

    def hook(grad):
        calls.append(1)
        return grad * float("inf") if len(calls) == call else grad

    model.fc.weight.register_hook(hook)


def train_eager_and_compiled(output: Path, faces, make_config=quick_config) -> dict:
    """One epoch of ``faces`` with a TinyNet, eagerly and with ``model.compile=true``:
    ``{False: (result, model), True: (result, model)}``."""
    runs = {}
    for compiled in (False, True):
        cfg = make_config(Path(output) / f"compile_{compiled}", epochs=1)
        cfg.model.compile = compiled
        model = TinyNet(dim=16)
        runs[compiled] = (train(cfg, dataset=faces, model=model), model)
    return runs


# ----------------------------------------------------------------------------- resume with another process count
# 10 identities x 4 images, batch 12: 3 steps an epoch, 6 in two epochs; 10 class centres split
# 5 + 5 over two processes, 4 + 3 + 3 over three (the shard borders do not line up).
RESHARD_IDENTITIES = 10
GLOO_SCRIPT = Path(__file__).resolve().parent / "gloo_train.py"


def reshard_faces():
    from facelivt.data import SyntheticIdentities

    return SyntheticIdentities(RESHARD_IDENTITIES, 4, seed=1)


def reshard_config(output: Path) -> Config:
    cfg = quick_config(output, epochs=2, batch_size=12, checkpoint_every_steps=1)
    cfg.data.flip = True
    return cfg


TINY_CLI = Path(__file__).resolve().parent / "tiny_cli.py"


def tiny_train_command(output: Path, *overrides: str) -> list[str]:
    """``facelivt train configs/synthetic_tiny.yaml`` with the TinyNet backbone, as a command line."""
    import sys

    return [sys.executable, str(TINY_CLI), "train", str(CONFIGS / "synthetic_tiny.yaml"), f"output={output}",
            "model.name=tinynet", "model.embedding_size=16", "train.progress=false", *overrides]
