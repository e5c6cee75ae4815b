"""What a training checkpoint holds and how a run continues from it.

:mod:`.checkpoint` stores checkpoints (atomic per-rank files, ``last`` / ``best`` pointers,
re-splitting for another process count); this module owns their *contents*: the trainable state
of a :class:`~facelivt.training.engine.StepRunner` (:func:`trainable_state`), the loop's counters,
history and RNG states (:func:`run_state`), the checks that refuse a checkpoint of another model
or data set (:func:`check_resume`), restoring both (:func:`restore_run`), and where in its epoch
a continued run picks up the sampler (:func:`seek`).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import torch
from torch import nn

from facelivt.errors import FaceLiVTError

from .checkpoint import rng_state, set_rng_state
from .config import STATE_KEYS, config_changes

if TYPE_CHECKING:  # annotations only: the trainer and the step runner import this module
    from .batches import FlipSampler
    from .engine import StepRunner
    from .trainer import Trainer

log = logging.getLogger(__name__)


class ResumeMismatchError(FaceLiVTError, ValueError):
    """A checkpoint does not fit the run that tries to resume from it."""


# ----------------------------------------------------------------------------- the step runner's part
def trainable_state(runner: "StepRunner") -> dict[str, Any]:
    """Model, Partial FC shard, AdamW, schedule and loss scaler of ``runner``."""
    return {
        "model": runner.model.state_dict(),
        "partial_fc": runner.partial_fc.state_dict(),
        "optimizer": runner.optimizer.state_dict(),
        "scheduler": runner.scheduler.state_dict(),
        "scaler": runner.scaler.state_dict() if runner.scaler.is_enabled() else {},
    }


def load_trainable_state(runner: "StepRunner", state: dict[str, Any]) -> None:
    """Restore :func:`trainable_state`; the optimizer keeps this run's settings (lr schedule, weight
    decay, betas, eps), the checkpoint gives its moments and step counts."""
    _load_module(runner.model, state["model"], "model")
    _load_module(runner.partial_fc, state["partial_fc"], "Partial FC")
    runner.optimizer.load_state_dict(state["optimizer"])
    for group, lr in zip(runner.optimizer.param_groups, runner.scheduler.base_lrs):
        group["initial_lr"] = lr
        group.update(runner.hyper)
    runner.scheduler.load_state_dict(state["scheduler"])
    if runner.scaler.is_enabled() and state.get("scaler"):
        runner.scaler.load_state_dict(state["scaler"])


def _load_module(module: nn.Module, saved: dict[str, Any], what: str) -> None:
    """``module.load_state_dict(saved)`` with a short message instead of torch's list of every mismatch."""
    own = module.state_dict()
    missing = sorted(set(own) - set(saved))
    extra = sorted(set(saved) - set(own))
    shapes = [k for k in own if k in saved and tuple(own[k].shape) != tuple(saved[k].shape)]
    if missing or extra or shapes:
        parts = []
        if shapes:
            k = shapes[0]
            parts.append(f"{len(shapes)} tensors differ in shape (e.g. {k}: checkpoint {tuple(saved[k].shape)}, "
                         f"this run {tuple(own[k].shape)})")
        if missing:
            parts.append(f"{len(missing)} tensors are missing from the checkpoint (e.g. {missing[0]})")
        if extra:
            parts.append(f"{len(extra)} tensors of the checkpoint are unknown here (e.g. {extra[0]})")
        raise ResumeMismatchError(f"the checkpoint's {what} does not fit this run's: {'; '.join(parts)}")
    module.load_state_dict(saved)


# ----------------------------------------------------------------------------- the run's part
def run_state(trainer: "Trainer") -> dict[str, Any]:
    """Everything this rank's checkpoint holds: :func:`trainable_state` plus the loop's position,
    history, best result, clock, RNG states and config."""
    state = trainable_state(trainer.runner)
    trainer.bad_records()
    step, per_epoch = trainer.global_step, trainer.steps_per_epoch
    state.update(
        {
            "global_step": step,
            "epoch": step // per_epoch,
            "step_in_epoch": step % per_epoch,
            "steps_per_epoch": per_epoch,
            # position in the epoch's order over all ranks (the same for any number of processes)
            "samples_in_epoch": (step % per_epoch) * trainer.cfg.train.batch_size,
            "num_classes": trainer.view.num_classes,
            "train_images": len(trainer.view),
            "bad_records": torch.tensor(sorted(trainer._bad), dtype=torch.int64),
            "loss_history": torch.tensor(trainer.loss_history, dtype=torch.float64),
            "best": trainer.best,
            "elapsed_s": trainer.elapsed_s,
            "finished": trainer.finished,
            "rng": rng_state(),
            "config": trainer.cfg.to_dict(),
        }
    )
    return state


def restore_run(trainer: "Trainer", state: dict[str, Any]) -> None:
    """Continue ``trainer`` from :func:`run_state`'s ``state`` (same epoch length required)."""
    if int(state["steps_per_epoch"]) != trainer.steps_per_epoch:
        raise ResumeMismatchError(
            f"the checkpoint's epochs have {state['steps_per_epoch']} steps but this run's have {trainer.steps_per_epoch}: "
            "the data set, batch size or accumulation changed; resume with the same settings"
        )
    load_trainable_state(trainer.runner, state)
    trainer.global_step = int(state["global_step"])
    trainer.loss_history = [float(v) for v in state["loss_history"].tolist()]
    trainer.best = state.get("best")
    trainer.elapsed_s = float(state.get("elapsed_s", 0.0))
    # a finished run whose train.epochs / max_steps were raised goes on to the new end
    trainer.finished = bool(state.get("finished", False)) and trainer.global_step >= trainer.total_steps
    if torch.is_tensor(state.get("bad_records")):
        trainer._bad.update(int(i) for i in state["bad_records"].tolist())
    set_rng_state(state["rng"])


def check_resume(trainer: "Trainer", state: dict[str, Any], folder: Path) -> dict[str, tuple[Any, Any]]:
    """Refuse a checkpoint of another model or data set, naming the settings that differ; return
    the settings that changed harmlessly (``{key: (checkpoint's, this run's)}``)."""
    changes = config_changes(state.get("config") or {}, trainer.cfg.to_dict())
    fatal = {k: v for k, v in changes.items() if k in STATE_KEYS}
    saved_classes = state.get("num_classes")
    if saved_classes is not None and int(saved_classes) != trainer.view.num_classes:
        fatal["classes in the training data"] = (int(saved_classes), trainer.view.num_classes)
    saved_images = state.get("train_images")
    if saved_images is not None and int(saved_images) != len(trainer.view):
        fatal["training images"] = (int(saved_images), len(trainer.view))
    if fatal:
        listed = "; ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in fatal.items())
        raise ResumeMismatchError(
            f"cannot resume from {folder}: this run differs from the checkpoint's ({listed}). "
            "Use the checkpoint's settings, another output folder, or train.resume=never to start afresh"
        )
    if changes and trainer.env.is_main:
        log.info("resuming %s with changed settings: %s", folder, ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changes.items()))
    return changes


def resume(trainer: "Trainer") -> Optional[Path]:
    """Continue ``trainer`` from the checkpoint ``train.resume`` names (``auto``: the last one, if
    any); the folder resumed from, or None for a fresh start."""
    mode = trainer.cfg.train.resume
    if mode == "never":
        return None
    folder = trainer.ckpt.resolve(None if mode == "auto" else mode)
    if folder is None:
        return None
    state = trainer.ckpt.load(folder)
    trainer.changed_settings = check_resume(trainer, state, folder)
    restore_run(trainer, state)
    trainer.last_saved_step = trainer.global_step
    trainer.checkpoint_lr = float(state.get("config", {}).get("optim", {}).get("lr", trainer.cfg.optim.lr))
    return folder


def seek(sampler: "FlipSampler", global_step: int, steps_per_epoch: int, batch_size: int) -> int:
    """Point ``sampler`` at optimiser step ``global_step``: its epoch's order, from the sample the
    step starts at (counted over all ranks, so any process count continues the same order).
    Returns the step's index within its epoch."""
    epoch, in_epoch = divmod(global_step, steps_per_epoch)
    sampler.set_epoch(epoch)
    sampler.set_global_start(in_epoch * batch_size)
    return in_epoch
