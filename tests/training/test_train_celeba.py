"""A short run on real aligned faces (../shared/data/celeba_subset_112) through the whole pipeline
(image folder, identity split, Partial FC, held-out verification pairs, 10-fold protocol): the loss
falls and held-out verification accuracy is above chance.

A from-scratch FaceLiVT-S needs minutes of CPU time before its eval-mode embeddings are better
than at initialisation (see the report of the 10-minute cpu_small runs), so this test trains a
small BatchNorm-free CNN that gets through two epochs in seconds."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from facelivt.data import ImageFolderDataset
from facelivt.training import Config, train

from train_helpers import SHARED

CELEBA = SHARED / "data" / "celeba_subset_112"


class FirstIdentities(torch.utils.data.Dataset):
    """The images of identities 0 .. n-1 of an image folder (keeps the test short)."""

    def __init__(self, base: ImageFolderDataset, n: int) -> None:
        self.base = base
        self.index = np.flatnonzero(base.labels < n)
        self.labels = base.labels[self.index]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int):
        return self.base[int(self.index[i])]


class SmallNet(nn.Module):
    """Four strided 3x3 convs with GroupNorm and GELU, then a linear embedding (no BatchNorm)."""

    def __init__(self, dim: int = 128) -> None:
        super().__init__()
        ch = [3, 16, 32, 64, 128]
        layers: list[nn.Module] = []
        for a, b in zip(ch, ch[1:]):
            layers += [nn.Conv2d(a, b, 3, 2, 1), nn.GroupNorm(1, b), nn.GELU()]
        self.body = nn.Sequential(*layers)
        self.fc = nn.Linear(128 * 7 * 7, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x).flatten(1))


@pytest.mark.slow
def test_short_run_on_real_faces(tmp_path):
    assert CELEBA.is_dir(), f"shared test data missing: {CELEBA}"
    data = FirstIdentities(ImageFolderDataset(CELEBA), 60)  # ~1300 images
    cfg = Config(output=str(tmp_path / "celeba"))
    cfg.data.held_out_fraction = 0.3  # 18 identities never seen in training
    cfg.data.num_workers = 0
    cfg.loss.s, cfg.loss.m3 = 32.0, 0.2
    cfg.optim.lr, cfg.optim.warmup_steps = 3e-3, 3
    t = cfg.train
    t.device, t.amp, t.num_threads, t.progress, t.tensorboard = "cpu", "none", 1, False, False
    t.batch_size, t.max_steps, t.seed = 32, 56, 0  # two epochs of the ~900 training images
    cfg.eval.heldout_pairs, cfg.eval.every_epoch = 300, False
    torch.manual_seed(0)
    result = train(cfg, dataset=data, model=SmallNet())

    losses = np.array(result.loss_history)
    assert len(losses) == 56 and np.isfinite(losses).all()
    assert losses[-10:].mean() < 0.85 * losses[:10].mean(), losses
    heldout = result.metrics["heldout"]
    assert heldout["n_pairs"] == 300
    # chance is 0.5; with 300 pairs the standard error is about 0.03
    assert heldout["accuracy"] > 0.56 and heldout["auc"] > 0.56, heldout
    assert result.weights.is_file() and result.deploy_weights.is_file()
