"""The quickstart's three training runs: one :func:`facelivt.training.train` call each, on the faces
in memory, with the config :func:`facelivt.quickstart.plan.run_config` derives from the config file."""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from facelivt.data import FaceArray
from facelivt.files import write_json
from facelivt.models import create_model, reparameterize_model
from facelivt.training import Config, TrainResult, train


@dataclass
class TrainedModel:
    """A trained model of the quickstart and how it got there."""

    key: str  # teacher | student_kd | student_plain
    model: nn.Module  # train form, eval mode
    config: Config
    result: TrainResult
    seconds: float
    num_train_images: int
    loss_cls: list[float] = field(default_factory=list)  # classification part per optimiser step
    loss_dis: list[float] = field(default_factory=list)  # distillation part per step (distilled run only)

    @property
    def name(self) -> str:
        return self.config.model.name

    @property
    def weights(self) -> Path:  # train form
        return self.result.weights

    @property
    def deploy_weights(self) -> Path:
        return self.result.deploy_weights

    @property
    def images_seen(self) -> int:
        return self.result.steps * self.config.train.batch_size


def read_step_losses(log_path: Path) -> tuple[list[float], list[float]]:
    """(classification loss, distillation loss) of every ``train`` event of a run's ``log.jsonl``."""
    records = [json.loads(line) for line in log_path.read_text().splitlines()] if log_path.is_file() else []
    train_events = [r for r in records if r.get("event") == "train"]
    return [float(r["loss_cls"]) for r in train_events], [float(r["loss_dis"]) for r in train_events]


def train_model(key: str, cfg: Config, faces: FaceArray, num_train_images: int, weights_dir: Path,
                teacher: TrainedModel | None = None) -> TrainedModel:
    """Train ``cfg.model`` from scratch on ``faces`` (the trainer holds out ``cfg.data.held_out_fraction``
    of the identities), distilled from ``teacher``'s deploy form when ``cfg.distill.enabled``.

    The run folder keeps ``config.yaml``, ``log.jsonl`` and ``result.json``; the checkpoints go (the
    quickstart does not resume); the trainer's weight files (train and deploy form) move to
    ``weights_dir`` (:func:`keep_weights`)."""
    if cfg.distill.enabled and teacher is None:
        raise ValueError("distillation needs a trained teacher")
    out = Path(cfg.output)
    shutil.rmtree(out, ignore_errors=True)  # an old run of the same name would otherwise be mixed in
    torch.manual_seed(cfg.train.seed)
    model = create_model(cfg.model.name, head=cfg.model.head)
    frozen = reparameterize_model(teacher.model) if cfg.distill.enabled else None  # same function, faster
    start = time.perf_counter()
    result = train(cfg, dataset=faces, model=model, teacher=frozen)
    seconds = time.perf_counter() - start
    shutil.rmtree(out / "checkpoints", ignore_errors=True)
    result = keep_weights(result, weights_dir, key)
    cls, dis = read_step_losses(out / "log.jsonl")
    return TrainedModel(key, model.eval(), cfg, result, seconds, num_train_images, cls, dis if cfg.distill.enabled else [])


def keep_weights(result: TrainResult, weights_dir: Path, key: str) -> TrainResult:
    """The trainer's two weight files moved to ``weights_dir/<key>.safetensors`` and
    ``<key>_deploy.safetensors``, and the run's ``result.json`` rewritten to name them there."""
    weights_dir.mkdir(parents=True, exist_ok=True)
    moved = replace(result, weights=weights_dir / f"{key}.safetensors", deploy_weights=weights_dir / f"{key}_deploy.safetensors")
    summary_path = Path(result.output_dir) / "result.json"
    summary = json.loads(summary_path.read_text())
    os.replace(result.weights, moved.weights)
    os.replace(result.deploy_weights, moved.deploy_weights)
    write_json(summary_path, {**summary, "weights": str(moved.weights), "deploy_weights": str(moved.deploy_weights)})
    return moved
