"""How a run continues from a checkpoint: pure functions on a saved state dict.

:mod:`.checkpoint` stores checkpoints (atomic per-rank files, ``last`` / ``best`` pointers,
re-splitting for another process count); the objects that own the state write and read it
(:meth:`facelivt.training.engine.StepRunner.state_dict`: model, Partial FC, AdamW, schedule, scaler;
:meth:`facelivt.training.trainer.Trainer.state_dict`: the loop's :class:`~facelivt.training.trainer.RunState`,
RNG states, config). This module holds the checks that refuse a checkpoint of another model, data
set or epoch length (:func:`check_resume`, :func:`check_epoch_length`, :func:`check_fits`) and where in
its epoch a continued run picks up the sampler (:func:`seek`). It imports neither of those owners.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from facelivt.errors import FaceLiVTError

from .batches import FlipSampler
from .config import STATE_KEYS, config_changes


class ResumeMismatchError(FaceLiVTError, ValueError):
    """A checkpoint does not fit the run that tries to resume from it."""


def check_resume(state: dict[str, Any], config: dict[str, Any], num_classes: int, train_images: int,
                 folder: Path) -> dict[str, tuple[Any, Any]]:
    """Refuse the checkpoint ``state`` (read from ``folder``) when this run (its ``config`` as a dict,
    its number of classes and training images) has another model or data set, naming the settings
    that differ; return the settings that changed harmlessly (``{key: (checkpoint's, this run's)}``)."""
    changes = config_changes(state.get("config") or {}, config)
    fatal = {k: v for k, v in changes.items() if k in STATE_KEYS}
    saved_classes = state.get("num_classes")
    if saved_classes is not None and int(saved_classes) != num_classes:
        fatal["classes in the training data"] = (int(saved_classes), num_classes)
    saved_images = state.get("train_images")
    if saved_images is not None and int(saved_images) != train_images:
        fatal["training images"] = (int(saved_images), train_images)
    if fatal:
        listed = "; ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in fatal.items())
        raise ResumeMismatchError(
            f"cannot resume from {folder}: this run differs from the checkpoint's ({listed}). "
            "Use the checkpoint's settings, another output folder, or train.resume=never to start afresh"
        )
    return changes


def check_epoch_length(state: dict[str, Any], steps_per_epoch: int) -> None:
    """Refuse a checkpoint whose epochs have another number of optimiser steps than this run's."""
    if int(state["steps_per_epoch"]) != steps_per_epoch:
        raise ResumeMismatchError(
            f"the checkpoint's epochs have {state['steps_per_epoch']} steps but this run's have {steps_per_epoch}: "
            "the data set, batch size or accumulation changed; resume with the same settings"
        )


def check_fits(own: dict[str, Any], saved: dict[str, Any], what: str) -> None:
    """Refuse a saved state dict of a module (``what``: "model", "Partial FC") whose tensors differ
    from this run's ``own`` in names or shapes, with a short message instead of torch's list of
    every mismatch."""
    missing = sorted(set(own) - set(saved))
    extra = sorted(set(saved) - set(own))
    shapes = [k for k in own if k in saved and tuple(own[k].shape) != tuple(saved[k].shape)]
    if not (missing or extra or shapes):
        return
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


def seek(sampler: FlipSampler, global_step: int, steps_per_epoch: int, batch_size: int) -> int:
    """Point ``sampler`` at optimiser step ``global_step``: its epoch's order, from the sample the
    step starts at (counted over all ranks, so any process count continues the same order).
    Returns the step's index within its epoch."""
    epoch, in_epoch = divmod(global_step, steps_per_epoch)
    sampler.set_epoch(epoch)
    sampler.set_global_start(in_epoch * batch_size)
    return in_epoch
