"""Quickstart training: one call of :func:`facelivt.training.train` per model, with the quickstart's
settings, and the per-step losses read back from the run log."""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch
from torch import nn

import facelivt
from facelivt.training import Config, TrainResult, train

from .data import FaceArray


@dataclass
class TrainSettings:
    """What one quickstart training run uses (the rest are :class:`facelivt.training.Config` defaults)."""

    model: str
    steps: int
    batch_size: int
    lr: float
    head: str = "gdc"
    warmup_steps: int = 0
    min_lr: float = 1e-5
    weight_decay: float = 5e-4
    margin: str = "cosface"
    scale: float = 64.0
    margin_m: Optional[float] = None  # None: the margin's default (CosFace 0.4)
    distill: bool = False
    distill_kind: str = "mse"
    distill_alpha: float = 0.5
    distill_normalize: bool = False
    teacher_cache: bool = False  # cache the teacher's embeddings (image and flip): pays off beyond 2 epochs
    seed: int = 0
    device: str = "cpu"
    threads: Optional[int] = None
    max_minutes: Optional[float] = None  # hard stop (the schedule still assumes ``steps``)
    progress: bool = True

    def config(self, output: Path, teacher_name: str | None = None) -> Config:
        """The training config (validated by the trainer)."""
        cfg = Config(output=str(output))
        cfg.model.name, cfg.model.head = self.model, self.head
        cfg.data.type = "synthetic"  # replaced by the in-memory data set given to train()
        cfg.data.held_out_fraction = 0.0  # the quickstart splits identities itself
        cfg.data.flip, cfg.data.num_workers = True, 0
        cfg.loss.margin, cfg.loss.s = self.margin, self.scale
        if self.margin_m is not None:
            key = {"cosface": "m3", "arcface": "m2"}.get(self.margin)
            if key is None:
                raise ValueError(f"margin_m is only supported for cosface and arcface, not {self.margin!r}")
            setattr(cfg.loss, key, self.margin_m)
        cfg.optim.lr, cfg.optim.min_lr = self.lr, min(self.min_lr, self.lr)
        cfg.optim.weight_decay, cfg.optim.warmup_steps = self.weight_decay, self.warmup_steps
        t = cfg.train
        t.max_steps, t.epochs, t.batch_size = self.steps, 10_000, self.batch_size
        t.amp, t.device, t.seed, t.num_threads = "none", self.device, self.seed, self.threads
        t.max_minutes = self.max_minutes
        t.checkpoint_every_steps, t.log_every_steps = 0, 1
        t.progress, t.tensorboard, t.resume = self.progress, False, "never"
        cfg.eval.every_epoch = False
        if self.distill:
            d = cfg.distill
            d.enabled, d.teacher = True, teacher_name or "teacher"
            d.kind, d.alpha, d.normalize = self.distill_kind, self.distill_alpha, self.distill_normalize
            d.cache, d.cache_dtype = ("memory" if self.teacher_cache else "none"), "float32"
        return cfg


@dataclass
class TrainedModel:
    """A trained model of the quickstart and how it got there."""

    key: str  # teacher | student_kd | student_plain
    name: str  # registry name
    model: nn.Module  # train form, eval mode
    result: TrainResult
    settings: TrainSettings
    seconds: float
    loss: list[float] = field(default_factory=list)  # total loss per optimiser step
    loss_cls: list[float] = field(default_factory=list)  # classification part per step
    loss_dis: list[float] = field(default_factory=list)  # distillation part per step (KD only)
    num_train_images: int = 0

    @property
    def images_seen(self) -> int:
        return self.result.steps * self.settings.batch_size

    @property
    def epochs(self) -> float:
        return self.images_seen / max(self.num_train_images, 1)


def read_step_losses(log_path: Path) -> tuple[list[float], list[float]]:
    """(classification loss, distillation loss) of every logged training step (``log_every_steps=1``)."""
    cls, dis = [], []
    if not log_path.is_file():
        return cls, dis
    for line in log_path.read_text().splitlines():
        rec = json.loads(line)
        if rec.get("event") == "train":
            cls.append(float(rec["loss_cls"]))
            dis.append(float(rec["loss_dis"]))
    return cls, dis


def train_model(
    key: str,
    settings: TrainSettings,
    train_set: FaceArray,
    run_dir: Path,
    *,
    teacher: TrainedModel | None = None,
) -> TrainedModel:
    """Train ``settings.model`` from scratch on ``train_set`` (every identity a class), with
    embedding distillation from ``teacher`` when ``settings.distill``.

    The run folder keeps ``config.yaml``, ``log.jsonl`` and ``result.json``; its checkpoints and the
    trainer's weight files are removed at the end (a finished quickstart run is not resumed, and the
    deploy step saves the train- and deploy-form weights of every model itself).
    """
    if settings.distill and teacher is None:
        raise ValueError("distillation needs a trained teacher")
    if run_dir.exists():
        shutil.rmtree(run_dir)  # an old run of the same name would otherwise be resumed or mixed in
    torch.manual_seed(settings.seed)
    model = facelivt.create_model(settings.model, head=settings.head)
    teacher_module = None
    if teacher is not None and settings.distill:
        teacher_module = facelivt.reparameterize_model(teacher.model)  # deploy form: same function, faster
    cfg = settings.config(run_dir, teacher.name if teacher is not None else None)
    start = time.perf_counter()
    result = train(cfg, dataset=train_set, model=model, teacher=teacher_module, progress=settings.progress)
    seconds = time.perf_counter() - start
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    for exported in (result.weights, result.deploy_weights):
        if exported is not None and Path(exported).is_file():
            Path(exported).unlink()  # the quickstart saves every model's weights itself (deploy step)
    cls, dis = read_step_losses(run_dir / "log.jsonl")
    return TrainedModel(
        key=key,
        name=settings.model,
        model=model.eval(),
        result=result,
        settings=settings,
        seconds=seconds,
        loss=list(result.loss_history),
        loss_cls=cls,
        loss_dis=dis if settings.distill else [],
        num_train_images=len(train_set),
    )
