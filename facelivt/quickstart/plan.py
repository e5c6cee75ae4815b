"""The quickstart's plan: data sizes and step counts from the time budget, and the training config of
each of the three runs.

A short calibration times one training step of the student and of the teacher on this machine; the
training runs get ``quickstart.train_share`` of the budget. A budget under
``quickstart.quick_below_minutes`` is the CI-sized run (the ``quick`` overrides of the config).
"""
from __future__ import annotations

import copy
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch

from facelivt.models import create_model
from facelivt.training import Config

from .config import QuickstartConfig

MODEL_KEYS = ("teacher", "student_kd", "student_plain")


def auto_threads() -> int:
    """Torch threads for this machine now: the cores not kept busy by other processes (1-minute load
    average), at least 1. On a shared machine, more threads than idle cores make every operator wait
    for descheduled threads (a CI-sized run measured ~7x slower with 2 threads than with 1 on a
    2-core machine at load 6)."""
    try:
        cores = max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        cores = max(1, os.cpu_count() or 1)
    try:
        return int(max(1, min(cores, round(cores - os.getloadavg()[0]))))
    except (AttributeError, OSError):
        return cores


@dataclass
class Plan:
    """Sizes and step counts of one quickstart run."""

    budget_s: float
    tiny: bool
    scale: float  # budget / quickstart.sizes_for_minutes, at most 1
    num_identities: int  # synthetic identities
    num_pairs: int
    max_images: int
    max_align_images: int
    batch_size: int  # students
    teacher_batch_size: int
    threads: int
    threads_auto: bool
    held_out_fraction: float = 0.0
    warmup_steps: int = 0
    teacher_steps: int = 0
    student_steps: int = 0
    min_student_steps: int = 0
    floor_applied: bool = False  # the budget allowed fewer steps than the floor on this machine
    teacher_cache: bool = False
    calibration: dict[str, float] = field(default_factory=dict)  # seconds per training step, measured
    shares_s: dict[str, float] = field(default_factory=dict)  # seconds allotted to each training run
    config: Optional[QuickstartConfig] = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "config"}


def base_plan(config: QuickstartConfig) -> Plan:
    """Data sizes for the budget (step counts come from :func:`plan_steps`)."""
    cfg, qs = config.training, config.quickstart
    budget_s = 60.0 * qs.budget_minutes
    scale = 1.0 if qs.tiny else min(1.0, qs.budget_minutes / qs.sizes_for_minutes)
    ids = cfg.data.num_identities
    if not qs.tiny:
        ids = min(ids, max(qs.min_identities, int(round(ids * scale))))
    pairs = cfg.eval.heldout_pairs if scale >= 0.5 else cfg.eval.heldout_pairs // 2
    align = qs.max_align_images or min(qs.max_images, max(100, int(2 * budget_s)))  # MTCNN: ~0.1 s a photo
    threads = cfg.train.num_threads or auto_threads()
    return Plan(budget_s, qs.tiny, scale, ids, pairs, qs.max_images, align, cfg.train.batch_size, qs.teacher_batch_size,
                threads, cfg.train.num_threads is None, cfg.data.held_out_fraction, cfg.optim.warmup_steps, config=config)


def time_train_step(name: str, head: str, batch: int, repeats: int = 2, seed: int = 0, channels_last: bool = False) -> float:
    """Fastest of ``repeats`` timed forward + backward + AdamW steps of ``name`` at ``batch`` on random
    images (after one untimed step): the first steps are slower than the steady state. ``channels_last``:
    in the layout the trainer will use (``facelivt.precision.resolve_channels_last``)."""
    torch.manual_seed(seed)
    model = create_model(name, head=head).train()
    x = torch.randn(batch, 3, 112, 112)
    if channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    times = []
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        model(x).float().pow(2).mean().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    return float(min(times[1:]))


def plan_steps(plan: Plan, student_step_s: float, teacher_step_s: float, num_train_images: int) -> Plan:
    """Fill the step counts: ``train.max_steps`` when the config sets it, else the most steps whose
    three runs fit the training share of the budget (the teacher ``teacher_step_ratio`` x the students'
    steps; the distilled student also pays the teacher's forward passes), never under the floor."""
    cfg, qs = plan.config.training, plan.config.quickstart
    plan.calibration = {"student_step_s": student_step_s, "teacher_step_s": teacher_step_s}
    if cfg.train.max_steps is not None:
        steps = cfg.train.max_steps
    else:
        steps = 1
        while _train_cost(plan, steps + 1, num_train_images) <= qs.train_share * plan.budget_s:
            steps += 1
        plan.min_student_steps = max(10, int(round(qs.min_student_steps * plan.scale)))
        plan.floor_applied = steps < plan.min_student_steps
        steps = max(steps, plan.min_student_steps)
        plan.warmup_steps = min(plan.warmup_steps, steps // 5)
    plan.student_steps = steps
    plan.teacher_steps = qs.teacher_steps or int(round(qs.teacher_step_ratio * steps))
    plan.teacher_cache = steps * plan.batch_size > 2 * num_train_images
    s, b = steps, plan.batch_size
    plan.shares_s = {
        "teacher": plan.teacher_steps * teacher_step_s,
        "student_kd": s * student_step_s + _teacher_images(s, b, num_train_images) * _embed_s(plan),
        "student_plain": s * student_step_s,
    }
    return plan


def _embed_s(plan: Plan) -> float:
    """Seconds of one teacher forward pass per image (a forward is about a third of a training step)."""
    return plan.calibration["teacher_step_s"] / 3.0 / plan.teacher_batch_size


def _teacher_images(steps: int, batch: int, num_train_images: int) -> int:
    """Teacher forward passes of a distilled run: one per image seen, or with the cache (beyond two
    epochs) two per training image (image and flip) once."""
    seen = steps * batch
    return 2 * num_train_images if seen > 2 * num_train_images else seen


def _train_cost(plan: Plan, steps: int, num_train_images: int) -> float:
    """Seconds of the three training runs for ``steps`` student steps."""
    cal, ratio = plan.calibration, plan.config.quickstart.teacher_step_ratio
    embed = _teacher_images(steps, plan.batch_size, num_train_images) * _embed_s(plan)
    return ratio * steps * cal["teacher_step_s"] + 2 * steps * cal["student_step_s"] + embed


def run_config(plan: Plan, key: str, out: Path) -> Config:
    """The training config of run ``key`` (one of :data:`MODEL_KEYS`): the config file's training
    sections with the plan's steps, time limit (twice the run's share), threads and split."""
    cfg = copy.deepcopy(plan.config.training)
    t = cfg.train
    cfg.output = str(out / "train" / key)
    cfg.data.held_out_fraction = plan.held_out_fraction  # the same split as the quickstart's pairs
    cfg.eval.heldout_pairs = 0  # the quickstart verifies the three models on one set of pairs
    cfg.optim.warmup_steps = plan.warmup_steps
    t.num_threads, t.progress = plan.threads, plan.config.quickstart.progress
    t.max_steps = plan.student_steps
    t.max_minutes = None if plan.tiny else max(0.5, 2.0 * plan.shares_s[key] / 60.0)
    cfg.distill.enabled = key == "student_kd"
    if not plan.teacher_cache:
        cfg.distill.cache = "none"
    if key == "teacher":
        cfg.model.name, t.max_steps, t.batch_size = cfg.distill.teacher, plan.teacher_steps, plan.teacher_batch_size
    return cfg
