"""The training loop: data, epochs, resume, periodic verification, checkpoints, export."""
from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from facelivt.data import DistributedResumableSampler, build_dataset, build_loader, split_identities

from .batches import FlipSampler, TrainView, dataset_labels
from .checkpoint import CheckpointManager, atomic_write_text, rng_state, set_rng_state
from .config import Config, validate_config
from .distributed import DistEnv, any_true, barrier, broadcast_object, cleanup, init_distributed
from .engine import NonFiniteLossError, StepRunner, StepStats, build_step_runner
from .heldout import HeldoutPairs
from .logging import Progress, RunLogger
from .teacher import warn_flip_mismatch


@dataclass
class TrainResult:
    """What a finished (or budget-stopped) run produced."""

    output_dir: Path
    weights: Optional[Path]  # model.safetensors (train form)
    deploy_weights: Optional[Path]  # model_deploy.safetensors (deploy form)
    best_weights: Optional[Path]
    last_checkpoint: Optional[Path]
    metrics: dict[str, dict]  # final verification results by set name
    best: Optional[dict]
    loss_history: list[float]  # loss of every optimiser step of the run (including resumed parts)
    steps: int
    total_steps: int
    stopped: str  # completed | time_budget | already_finished
    elapsed_s: float
    num_classes: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _dataset_spec(cfg: Config) -> dict[str, Any]:
    d = cfg.data
    if d.type == "synthetic":
        return {"type": "synthetic", "num_identities": d.num_identities, "images_per_identity": d.images_per_identity, "seed": d.synthetic_seed}
    spec: dict[str, Any] = {"type": d.type, "root": d.root, "max_bad_fraction": d.max_bad_fraction}
    if d.type == "recordio" and d.label_cache:
        spec["label_cache"] = d.label_cache
    return spec


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Trainer:
    """One training run in this process (one rank of it when distributed).

    ``dataset``: any map-style data set of ``(3x112x112 tensor, label)`` items with a ``labels``
    array (e.g. :class:`facelivt.data.SyntheticIdentities`); default: built from ``cfg.data``.
    ``model``: a train-form backbone to train instead of ``cfg.model`` (same object is updated).
    ``teacher``: a distillation teacher module instead of the one ``cfg.distill`` names.
    """

    def __init__(
        self,
        cfg: Config,
        env: DistEnv | None = None,
        *,
        dataset: Dataset | None = None,
        model: nn.Module | None = None,
        teacher: nn.Module | None = None,
        progress: bool | None = None,
    ) -> None:
        validate_config(cfg, need_data=dataset is None)
        self.cfg = cfg
        self.env = env or DistEnv()
        self.out = Path(cfg.output)
        t = cfg.train
        if t.num_threads is not None:
            torch.set_num_threads(t.num_threads)
        if t.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
            if torch.backends.cudnn.is_available():
                torch.backends.cudnn.benchmark = False
        _seed_everything(t.seed)
        self.show_progress = (t.progress if progress is None else progress) and self.env.is_main

        # ---- data
        base = dataset if dataset is not None else build_dataset(_dataset_spec(cfg))
        labels = dataset_labels(base)
        train_idx, held_idx = split_identities(labels, cfg.data.held_out_fraction, cfg.data.split_seed)
        if train_idx.size == 0:
            raise ValueError("no training samples (every identity is held out or unlabelled)")
        self.base, self.labels, self.held_idx = base, labels, held_idx
        self.view = TrainView(base, train_idx, labels)
        if cfg.distill.enabled and cfg.distill.cache != "none":
            warn_flip_mismatch(base)
        world, accum = self.env.world_size, t.accumulate
        if t.batch_size % (world * accum):
            raise ValueError(
                f"train.batch_size ({t.batch_size}) must be divisible by processes x accumulate ({world} x {accum})"
            )
        self.micro_batch = t.batch_size // (world * accum)
        base_sampler = DistributedResumableSampler(len(self.view), world, self.env.rank, shuffle=True, seed=t.seed, drop_last=True)
        self.sampler = FlipSampler(base_sampler, t.seed, cfg.data.flip)
        self.loader = build_loader(
            self.view,
            self.micro_batch,
            sampler=self.sampler,
            num_workers=cfg.data.num_workers,
            drop_last=True,
            pin_memory=self.env.device.type == "cuda",
        )
        self.steps_per_epoch = (self.sampler.num_samples // self.micro_batch) // accum
        if self.steps_per_epoch < 1:
            raise ValueError(
                f"{len(self.view)} training images are fewer than one step of train.batch_size={t.batch_size}; "
                "lower the batch size or use more data"
            )
        self.total_steps = t.max_steps if t.max_steps is not None else t.epochs * self.steps_per_epoch
        warmup = cfg.optim.warmup_steps + int(round(cfg.optim.warmup_epochs * self.steps_per_epoch))
        if warmup >= self.total_steps:
            raise ValueError(f"warm-up ({warmup} steps) must be shorter than the run ({self.total_steps} steps)")

        # ---- trainable state
        cache_key = f"{len(self.view)}:{int(self.view.indices.sum())}:{int(self.view.labels.sum())}"
        self.runner: StepRunner = build_step_runner(
            cfg,
            self.env,
            self.view.num_classes,
            self.total_steps,
            warmup,
            model=model,
            teacher=teacher,
            num_samples=len(self.view),
            cache_dir=str(self.out / "teacher_cache"),
            cache_key=cache_key,
        )
        self.ckpt = CheckpointManager(self.out / "checkpoints", self.env.rank, world, barrier=lambda: barrier(self.env))
        self.global_step = 0
        self.loss_history: list[float] = []
        self.best: Optional[dict] = None
        self.elapsed_s = 0.0
        self.finished = False
        self.last_saved_step: Optional[int] = None

        # ---- verification
        self.heldout: Optional[HeldoutPairs] = None
        if cfg.eval.heldout_pairs and self.env.is_main:
            self.heldout = HeldoutPairs(base, held_idx, labels, cfg.eval.heldout_pairs, seed=cfg.data.split_seed, progress=self.show_progress)
        self.best_key = cfg.eval.best_metric or ("heldout" if cfg.eval.heldout_pairs else (Path(cfg.eval.bins[0]).stem if cfg.eval.bins else None))
        known = (["heldout"] if cfg.eval.heldout_pairs else []) + [Path(b).stem for b in cfg.eval.bins]
        if self.best_key is not None and self.best_key not in known:
            raise ValueError(f"eval.best_metric={self.best_key!r} is none of the evaluated sets: {', '.join(known) or 'none'}")
        for b in cfg.eval.bins:
            if not Path(b).is_file():
                raise FileNotFoundError(f"verification set not found: {b}")

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        state = self.runner.state_dict()
        state.update(
            {
                "global_step": self.global_step,
                "epoch": self.global_step // self.steps_per_epoch,
                "step_in_epoch": self.global_step % self.steps_per_epoch,
                "steps_per_epoch": self.steps_per_epoch,
                "loss_history": torch.tensor(self.loss_history, dtype=torch.float64),
                "best": self.best,
                "elapsed_s": self.elapsed_s,
                "finished": self.finished,
                "rng": rng_state(),
                "config": self.cfg.to_dict(),
            }
        )
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if int(state["steps_per_epoch"]) != self.steps_per_epoch:
            raise ValueError(
                f"the checkpoint's epochs have {state['steps_per_epoch']} steps but this run's have {self.steps_per_epoch}: "
                "the data set, batch size, accumulation or process count changed; resume with the same settings"
            )
        self.runner.load_state_dict(state)
        self.global_step = int(state["global_step"])
        self.loss_history = [float(v) for v in state["loss_history"].tolist()]
        self.best = state.get("best")
        self.elapsed_s = float(state.get("elapsed_s", 0.0))
        self.finished = bool(state.get("finished", False))
        set_rng_state(state["rng"])

    def maybe_resume(self) -> Optional[Path]:
        mode = self.cfg.train.resume
        if mode == "never":
            return None
        folder = self.ckpt.resolve(None if mode == "auto" else mode)
        if folder is None:
            return None
        self.load_state_dict(self.ckpt.load(folder))
        self.last_saved_step = self.global_step
        return folder

    def save(self) -> Path:
        folder = self.ckpt.save(self.state_dict(), self.global_step, {"epoch": self.global_step / self.steps_per_epoch, "finished": self.finished})
        self.last_saved_step = self.global_step
        return folder

    # ------------------------------------------------------------------ verification
    def evaluate(self) -> dict[str, dict]:
        """Verification on every configured set (rank 0 computes; the result reaches every rank)."""
        results: dict[str, dict] = {}
        if self.env.is_main:
            model = self.runner.model
            dev = str(self.env.device)
            if self.heldout is not None:
                results["heldout"] = self.heldout.evaluate(model, self.cfg.eval.batch_size, dev)
            if self.cfg.eval.bins:
                from facelivt.evaluation import evaluate_bin

                for b in self.cfg.eval.bins:
                    results[Path(b).stem] = evaluate_bin(model, b, batch_size=self.cfg.eval.batch_size, device=dev)
        return broadcast_object(self.env, results)

    @property
    def has_eval(self) -> bool:
        return bool(self.cfg.eval.heldout_pairs or self.cfg.eval.bins)

    def _after_eval(self, results: dict[str, dict], logger: RunLogger, progress: Progress) -> bool:
        """Log results; True when they are the best so far."""
        summary = {k: {m: v[m] for m in ("accuracy", "accuracy_std", "auc", "eer") if m in v} for k, v in results.items()}
        logger.log("eval", self.global_step, **summary)
        text = ", ".join(f"{k} {v['accuracy'] * 100:.2f}%" for k, v in results.items())
        progress.write(f"step {self.global_step}: verification {text}")
        if self.best_key is None or self.best_key not in results:
            return False
        value = float(results[self.best_key]["accuracy"])
        if self.best is None or value > float(self.best["value"]):
            self.best = {"metric": self.best_key, "value": value, "step": self.global_step}
            return True
        return False

    def _mark_best(self) -> None:
        assert self.best is not None
        self.ckpt.mark_best(self.global_step, self.best["metric"], self.best["value"])
        if self.env.is_main:
            from facelivt.models import save_weights

            save_weights(self.runner.model, self.out / "best.safetensors", {"step": str(self.global_step), "accuracy": str(self.best["value"]), "metric": self.best["metric"]})
        barrier(self.env)

    # ------------------------------------------------------------------ export
    def export(self) -> tuple[Path, Path]:
        """``model.safetensors`` (train form) and ``model_deploy.safetensors`` (deploy form)."""
        from facelivt import reparameterize_model
        from facelivt.models import save_weights

        weights, deploy = self.out / "model.safetensors", self.out / "model_deploy.safetensors"
        if self.env.is_main:
            meta = {"step": str(self.global_step), "num_classes": str(self.view.num_classes)}
            model = self.runner.model
            save_weights(model, weights, meta)
            was_training = model.training
            deployed = reparameterize_model(model)
            model.train(was_training)
            save_weights(deployed.to(memory_format=torch.contiguous_format), deploy, meta)
        barrier(self.env)
        return weights, deploy

    # ------------------------------------------------------------------ loop
    def _time_up(self, start: float) -> bool:
        budget = self.cfg.train.max_minutes
        if budget is None:
            return False
        spent = self.elapsed_s + (time.monotonic() - start)
        return any_true(self.env, spent >= budget * 60.0)

    def run(self) -> TrainResult:
        cfg, env = self.cfg, self.env
        self.out.mkdir(parents=True, exist_ok=True)
        logger = RunLogger(self.out, enabled=env.is_main, tensorboard=cfg.train.tensorboard)
        resumed_from = self.maybe_resume()
        if env.is_main:
            atomic_write_text(self.out / "config.yaml", cfg.to_yaml())
        already = self.finished or self.global_step >= self.total_steps
        logger.log(
            "start",
            self.global_step,
            resumed_from=str(resumed_from) if resumed_from else None,
            total_steps=self.total_steps,
            steps_per_epoch=self.steps_per_epoch,
            num_classes=self.view.num_classes,
            train_images=len(self.view),
            heldout_images=int(self.held_idx.size),
            world_size=env.world_size,
            device=str(env.device),
        )
        progress = Progress(self.total_steps, self.global_step, self.show_progress, messages=env.is_main)
        start = time.monotonic()
        stopped = "already_finished" if already else "completed"
        final_metrics: dict[str, dict] = {}
        window: list[StepStats] = []
        window_start = time.monotonic()
        try:
            while not already and self.global_step < self.total_steps:
                if self._time_up(start):
                    stopped = "time_budget"
                    break
                epoch, in_epoch = divmod(self.global_step, self.steps_per_epoch)
                self.sampler.set_epoch(epoch)
                self.sampler.set_start(in_epoch * cfg.train.accumulate * self.micro_batch)
                batches = iter(self.loader)
                for _ in range(in_epoch, self.steps_per_epoch):
                    if self.global_step >= self.total_steps:
                        break
                    if self._time_up(start):
                        stopped = "time_budget"
                        break
                    micro = [next(batches) for _ in range(cfg.train.accumulate)]
                    stats = self.runner.step(micro, self.global_step)
                    self.global_step += 1
                    self.loss_history.append(stats.loss)
                    window.append(stats)
                    now = time.monotonic()
                    postfix = {"loss": stats.loss, "cls": stats.loss_cls}
                    if self.runner.distill is not None:
                        postfix["dis"] = stats.loss_dis
                    postfix["lr"] = stats.lr
                    elapsed_window = max(now - window_start, 1e-9)
                    postfix["img/s"] = round(sum(s.images for s in window) * env.world_size / elapsed_window, 1)
                    progress.update(1, **postfix)
                    if self.global_step % cfg.train.log_every_steps == 0 or self.global_step == self.total_steps:
                        logger.log(
                            "train",
                            self.global_step,
                            epoch=self.global_step / self.steps_per_epoch,
                            loss=float(np.mean([s.loss for s in window])),
                            loss_cls=float(np.mean([s.loss_cls for s in window])),
                            loss_dis=float(np.mean([s.loss_dis for s in window])),
                            lr=stats.lr,
                            grad_norm=float(np.mean([s.grad_norm for s in window])),
                            images_per_s=postfix["img/s"],
                        )
                        window, window_start = [], time.monotonic()
                    if self.global_step >= self.total_steps:
                        break
                    epoch_end = self.global_step % self.steps_per_epoch == 0
                    every = cfg.eval.every_steps
                    improved = False
                    if self.has_eval and ((every and self.global_step % every == 0) or (epoch_end and cfg.eval.every_epoch)):
                        improved = self._after_eval(self.evaluate(), logger, progress)
                        improved = broadcast_object(env, improved)
                    every_ckpt = cfg.train.checkpoint_every_steps
                    if improved or epoch_end or (every_ckpt and self.global_step % every_ckpt == 0):
                        self.elapsed_s += time.monotonic() - start
                        start = time.monotonic()
                        self.save()
                    if improved:
                        self._mark_best()
                del batches
            # ---- the end: checkpoint, final verification, export
            self.elapsed_s += time.monotonic() - start
            start = time.monotonic()
            if stopped == "completed":
                self.finished = True
            if self.has_eval and not already:
                final_metrics = self.evaluate()
                improved = broadcast_object(env, self._after_eval(final_metrics, logger, progress))
            else:
                improved = False
            if self.last_saved_step != self.global_step or improved or (self.finished and not already):
                self.save()
            if improved:
                self._mark_best()
            weights, deploy = self.export()
        except NonFiniteLossError as exc:
            logger.log("error", self.global_step, message=str(exc))
            logger.close()
            raise
        finally:
            progress.close()
        self.elapsed_s += time.monotonic() - start
        last = self.ckpt.resolve()
        result = TrainResult(
            output_dir=self.out,
            weights=weights,
            deploy_weights=deploy,
            best_weights=(self.out / "best.safetensors") if self.best is not None else None,
            last_checkpoint=last,
            metrics=final_metrics,
            best=self.best,
            loss_history=list(self.loss_history),
            steps=self.global_step,
            total_steps=self.total_steps,
            stopped=stopped,
            elapsed_s=self.elapsed_s,
            num_classes=self.view.num_classes,
        )
        logger.log("end", self.global_step, stopped=stopped, elapsed_s=self.elapsed_s, metrics=final_metrics, best=self.best)
        if env.is_main:
            summary = {
                "stopped": stopped,
                "steps": self.global_step,
                "total_steps": self.total_steps,
                "elapsed_s": round(self.elapsed_s, 2),
                "final_loss": self.loss_history[-1] if self.loss_history else None,
                "metrics": final_metrics,
                "best": self.best,
                "weights": str(weights),
                "deploy_weights": str(deploy),
            }
            atomic_write_text(self.out / "result.json", json.dumps(summary, indent=1, default=str))
        logger.close()
        if self.runner.targets is not None and self.runner.targets.cache is not None:
            self.runner.targets.cache.flush()
        return result


def train(
    config: Config,
    *,
    dataset: Dataset | None = None,
    model: nn.Module | None = None,
    teacher: nn.Module | None = None,
    progress: bool | None = None,
) -> TrainResult:
    """Train as ``config`` says and return a :class:`TrainResult`.

    ``dataset`` replaces ``config.data``'s data set (identity split and flips still follow
    ``config.data``); ``model`` replaces ``config.model``'s backbone (trained in place);
    ``teacher`` (with ``config.distill.enabled``) replaces the configured teacher. Under torchrun every process
    calls this; the process group is created here (and destroyed after) unless one exists.
    """
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    env = init_distributed(config.train.device)
    try:
        trainer = Trainer(config, env, dataset=dataset, model=model, teacher=teacher, progress=progress)
        return trainer.run()
    finally:
        cleanup(env)
        # process-wide torch settings the config may have changed go back to what they were
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic[0], warn_only=deterministic[1])
