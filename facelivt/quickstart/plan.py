"""Quickstart options and the plan derived from the time budget.

The budget (minutes of wall time for the whole run) is turned into data sizes and step counts:
a short calibration times one training step of the student and of the teacher on this machine,
and the training phases get a fixed share of the budget. A budget under one minute is the
CI-sized run (a few steps per model, a tiny data set): every step of the pipeline runs, the
numbers are not meaningful.
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch

import facelivt
from facelivt.models.config import HEADS

from .checks import BenchSettings

DEFAULT_BUDGET_MINUTES = 6.5
QUICK_BUDGET_MINUTES = 0.5
TINY_BUDGET_MINUTES = 1.0  # below this: the CI-sized run

# Share of the budget for the three training runs (the rest: data, calibration, evaluation,
# reparameterization, export, benchmark and the report).
TRAIN_SHARE = 0.8
# The teacher is trained first and for longer: steps(teacher) = ratio x steps(student), at twice the
# students' batch, i.e. 4x the images. FaceLiVT-S-MHSA needs about 3-4x the images of FaceLiVT-S
# to reach the same held-out accuracy on the synthetic identities (measured while tuning), and
# distillation helps only when the teacher is ahead of the student.
TEACHER_STEP_RATIO = 2.0
# Below about 60 steps of 16 the students barely start to separate identities: at the default
# budget the plan never goes lower (a slow or busy machine then takes longer than the budget).
MIN_STUDENT_STEPS = 60


def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def auto_threads() -> int:
    """Torch threads for this machine now: the cores not already kept busy by other processes
    (1-minute load average), at least 1. On a shared machine, more threads than idle cores make
    every operator wait for descheduled threads: a CI-sized run measured ~7x slower with 2 threads
    than with 1 on a 2-core machine at load 6."""
    cores = available_cores()
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return cores
    return int(max(1, min(cores, round(cores - load))))


@dataclass
class QuickstartOptions:
    """What the user chooses (``facelivt quickstart`` flags)."""

    out: str = "quickstart_out"
    budget_minutes: float = DEFAULT_BUDGET_MINUTES
    data: Optional[str] = None  # image folder root/<identity>/<image>; None: synthetic identities
    max_images: Optional[int] = None  # cap on the images read from --data (whole identities); None: by budget
    seed: int = 0
    threads: Optional[int] = None  # torch CPU threads (default: auto_threads(), the idle cores)
    progress: bool = True
    mtcnn_weights: Optional[str] = None
    student: str = "facelivt_s"
    teacher: str = "facelivt_s_mhsa"
    peer: str = "edgeface_xs"
    head: str = "gdc"

    def validate(self) -> None:
        if not self.budget_minutes > 0:
            raise ValueError(f"the budget must be a positive number of minutes, got {self.budget_minutes}")
        if self.budget_minutes > 24 * 60:
            raise ValueError(f"a budget of {self.budget_minutes} minutes is more than a day: the quickstart is a demo")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")
        if self.max_images is not None and self.max_images < 40:
            raise ValueError(f"max_images must be at least 40, got {self.max_images}")
        if self.head not in HEADS:
            raise ValueError(f"head must be 'gap' or 'gdc', got {self.head!r}")
        known = set(facelivt.list_models())
        for role, name in (("student", self.student), ("teacher", self.teacher)):
            if name not in known:
                raise ValueError(f"unknown {role} model {name!r}; available: {', '.join(sorted(known))}")
        if self.data is not None and not Path(self.data).is_dir():
            raise FileNotFoundError(f"data folder not found: {self.data}")
        if not self.out:
            raise ValueError("the report folder (out) must be set")
        if Path(self.out).exists() and not Path(self.out).is_dir():
            raise ValueError(f"the report folder {self.out} exists and is not a folder")

    @property
    def tiny(self) -> bool:
        return self.budget_minutes < TINY_BUDGET_MINUTES


@dataclass
class Plan:
    """Sizes and step counts of one quickstart run."""

    budget_s: float
    tiny: bool
    synthetic_identities: int
    synthetic_images_per_identity: int
    held_out_fraction: float
    num_pairs: int
    pair_images_per_identity: int  # held-out images per identity that the pairs draw from (embedding cost)
    batch_size: int  # students
    teacher_batch_size: int
    lr: float
    warmup_steps: int
    distill_kind: str = "cosine"
    distill_alpha: float = 20.0
    margin_scale: float = 32.0  # CosFace s (the paper: 64 with m = 0.4 on Glint360K)
    margin_m: float = 0.2  # CosFace m
    teacher_steps: int = 0
    student_steps: int = 0
    parity_images: int = 32
    eval_batch: int = 64
    deploy_verification: bool = True  # recompute the held-out verification with the student's deploy form
    bench: BenchSettings = field(default_factory=BenchSettings)
    max_images: int = 4000  # images read from an image folder of 112x112 crops
    max_align_images: int = 720  # images read from a folder that must be detected and aligned first
    min_student_steps: int = 0  # the floor on the students' steps
    floor_applied: bool = False  # the budget allowed fewer steps than the floor on this machine
    teacher_cache: bool = False
    calibration: dict[str, float] = field(default_factory=dict)  # seconds per training step, measured
    shares_s: dict[str, float] = field(default_factory=dict)  # seconds allotted to each training run

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def base_plan(options: QuickstartOptions) -> Plan:
    """Data sizes and optimiser settings for the budget (step counts come from :func:`plan_steps`)."""
    plan = _base_plan(options)
    if options.max_images is not None:
        plan.max_images = plan.max_align_images = options.max_images
    return plan


def _base_plan(options: QuickstartOptions) -> Plan:
    budget_s = options.budget_minutes * 60.0
    threads = options.threads or torch.get_num_threads()
    if options.tiny:
        return Plan(
            budget_s=budget_s,
            tiny=True,
            synthetic_identities=16,
            synthetic_images_per_identity=6,
            held_out_fraction=0.25,
            num_pairs=40,
            pair_images_per_identity=6,
            batch_size=8,
            teacher_batch_size=8,
            lr=2e-3,
            warmup_steps=0,
            parity_images=8,
            eval_batch=32,
            max_images=96,
            max_align_images=48,
            deploy_verification=False,
            bench=BenchSettings(batch_sizes=(1,), warmup=1, runs=3, rounds=1, threads=threads),
        )
    scale = min(1.0, options.budget_minutes / DEFAULT_BUDGET_MINUTES)
    return Plan(
        budget_s=budget_s,
        tiny=False,
        synthetic_identities=max(48, int(round(160 * scale))),
        synthetic_images_per_identity=16,
        held_out_fraction=0.25,
        num_pairs=2000 if scale >= 0.5 else 1000,  # pairs reuse the held-out images: more pairs cost no embedding
        pair_images_per_identity=8,
        batch_size=16,  # small batches: more updates from the few images a CPU budget allows
        teacher_batch_size=32,
        lr=2e-3,
        warmup_steps=20,
        parity_images=32,
        eval_batch=64,
        deploy_verification=True,
        max_images=4000,
        max_align_images=max(100, int(2 * budget_s)),  # MTCNN: ~0.1 s per photo on one core
        bench=BenchSettings(batch_sizes=(1, 16), warmup=5, runs=30, rounds=3, threads=threads),
    )


def time_train_step(name: str, head: str, batch: int, repeats: int = 2, seed: int = 0) -> float:
    """Fastest of ``repeats`` timed forward + backward + AdamW steps of ``name`` at ``batch`` on random
    images (after one untimed step), on the CPU with the current thread setting. The first steps
    are still slower than the steady state, so the fastest is the better estimate."""
    torch.manual_seed(seed)
    model = facelivt.create_model(name, head=head).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(batch, 3, 112, 112)
    times = []
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        loss = model(x).float().pow(2).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i:
            times.append(time.perf_counter() - t0)
    return float(min(times))


def plan_steps(plan: Plan, student_step_s: float, teacher_step_s: float, num_train_images: int) -> Plan:
    """Fill the step counts from measured step times (student at ``batch_size``, teacher at
    ``teacher_batch_size``): the training share of the budget pays for the teacher
    (``TEACHER_STEP_RATIO`` x the students' steps), the distilled student (plus the teacher's
    forward passes) and the plain student, with the same steps and batches for both students."""
    plan.calibration = {"student_step_s": student_step_s, "teacher_step_s": teacher_step_s}
    if plan.tiny:
        plan.teacher_steps, plan.student_steps = 4, 3
    else:
        train_s = TRAIN_SHARE * plan.budget_s
        steps = 1
        while _train_cost(plan, steps + 1, num_train_images, student_step_s, teacher_step_s) <= train_s:
            steps += 1
        floor = max(10, int(round(MIN_STUDENT_STEPS * min(1.0, plan.budget_s / (60.0 * DEFAULT_BUDGET_MINUTES)))))
        plan.min_student_steps = floor
        plan.floor_applied = steps < floor
        plan.student_steps = max(steps, floor)
        plan.teacher_steps = int(round(TEACHER_STEP_RATIO * plan.student_steps))
        plan.warmup_steps = min(plan.warmup_steps, plan.student_steps // 5)
    s, b = plan.student_steps, plan.batch_size
    plan.teacher_cache = s * b > 2 * num_train_images
    plan.shares_s = {
        "teacher": plan.teacher_steps * teacher_step_s,
        "student_kd": s * student_step_s + _teacher_images(s, b, num_train_images) * _embed_s(plan, teacher_step_s),
        "student_plain": s * student_step_s,
    }
    return plan


def _embed_s(plan: Plan, teacher_step_s: float) -> float:
    """Seconds of one teacher forward pass per image (a forward is about a third of a training step)."""
    return teacher_step_s / 3.0 / plan.teacher_batch_size


def _teacher_images(steps: int, batch: int, num_train_images: int) -> int:
    """Teacher forward passes of a distilled run: one per image seen, or with the cache (beyond two
    epochs) two per training image (image and flip) once."""
    seen = steps * batch
    return 2 * num_train_images if seen > 2 * num_train_images else seen


def _train_cost(plan: Plan, steps: int, num_train_images: int, student_step_s: float, teacher_step_s: float) -> float:
    """Seconds of the three training runs for ``steps`` student steps."""
    embed = _teacher_images(steps, plan.batch_size, num_train_images) * _embed_s(plan, teacher_step_s)
    return TEACHER_STEP_RATIO * steps * teacher_step_s + 2 * steps * student_step_s + embed
