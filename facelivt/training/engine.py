"""The optimisation step: backbone + Partial FC (+ distillation), mixed precision, gradient
accumulation, clipping, AdamW and the per-step schedule. Used by the trainer and the
throughput benchmark alike."""
from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from facelivt.errors import FaceLiVTError, InvalidInputError
from facelivt.losses import DistillationLoss, PartialFC, margin_loss
from facelivt.models import create_model, load_model
from facelivt.models.embed import embedding_dim
from facelivt.models.layers import set_linear_1x1
from facelivt.models.registry import model_config
from facelivt.precision import autocast_factory, resolve_amp, resolve_channels_last

from .config import Config
from .distributed import DistEnv, any_true
from .resume import check_fits
from .schedule import PolyWarmupScheduler
from .teacher import TeacherTargets, build_teacher


class NonFiniteLossError(FaceLiVTError, RuntimeError):
    """The loss became NaN or infinite; the run stops without touching the last checkpoint."""


class DivergedError(NonFiniteLossError):
    """The state to be checkpointed is not finite (weights, optimizer state, or the loss they give)."""


@dataclass
class StepStats:
    loss: float
    loss_cls: float
    loss_dis: float
    lr: float
    grad_norm: float
    images: int  # images of this process in the step


def build_model(cfg: Config) -> nn.Module:
    """The student in train form (``model.weights`` loaded when set, or the published weights of
    ``model.name`` with ``model.pretrained``)."""
    overrides: dict[str, Any] = {"embedding_size": cfg.model.embedding_size}
    if model_config(cfg.model.name) is not None:  # a FaceLiVT variant
        overrides["head"] = cfg.model.head
        if cfg.model.num_heads is not None:
            overrides["num_heads"] = cfg.model.num_heads
    elif cfg.model.head != "gap" or cfg.model.num_heads is not None:
        raise InvalidInputError(
            f"model.head and model.num_heads apply to FaceLiVT variants only; {cfg.model.name} has its own head "
            "(leave model.head at gap and model.num_heads unset)"
        )
    if cfg.model.weights:
        return load_model(cfg.model.name, cfg.model.weights, deploy=False, **overrides).train()
    return create_model(cfg.model.name, pretrained=cfg.model.pretrained, **overrides)


def build_adamw(param_groups: list[dict[str, Any]], **hyper: Any) -> torch.optim.AdamW:
    """AdamW with its fused kernel where this torch has one for the parameters' device (CPU since
    torch 2.4, CUDA): one pass over the parameters instead of a Python loop; on the 2-core reference
    CPU a FaceLiVT-S step of AdamW took 5.6 ms fused against 20 ms looped. Elsewhere the foreach or
    loop implementation torch picks by default."""
    try:
        return torch.optim.AdamW(param_groups, fused=True, **hyper)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(param_groups, **hyper)


def build_partial_fc(cfg: Config, num_classes: int, env: DistEnv, embedding_size: int) -> PartialFC:
    margins = {k: getattr(cfg.loss, k) for k in ("m1", "m2", "m3") if getattr(cfg.loss, k) is not None}
    head = margin_loss(cfg.loss.margin, s=cfg.loss.s, **margins)
    return PartialFC(
        embedding_size,
        num_classes,
        head,
        cfg.loss.sample_rate,
        seed=cfg.train.seed,
        embedding_grad_scale=float(env.world_size),
    )


class StepRunner:
    """Owns the trainable state and performs one optimiser step over ``accumulate`` micro-batches.

    ``model`` is the raw backbone (what gets saved); ``forward`` is what is called (DDP and/or
    compiled wrapper of ``model``, or ``model`` itself).
    """

    def __init__(
        self,
        model: nn.Module,
        forward: nn.Module,
        partial_fc: PartialFC,
        optimizer: torch.optim.Optimizer,
        scheduler: PolyWarmupScheduler,
        env: DistEnv,
        *,
        amp_dtype: Optional[torch.dtype] = None,
        accumulate: int = 1,
        clip_grad_norm: float = 5.0,
        distill: DistillationLoss | None = None,
        targets: TeacherTargets | None = None,
        channels_last: bool = False,
        hyper: dict[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.forward = forward
        self.partial_fc = partial_fc
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.env = env
        self.amp_dtype = amp_dtype
        self.autocast = autocast_factory(env.device, amp_dtype)
        self.scaler = torch.amp.GradScaler(env.device.type, enabled=amp_dtype == torch.float16)
        self.accumulate = int(accumulate)
        self.clip_grad_norm = float(clip_grad_norm)
        self.distill = distill
        self.targets = targets
        self.channels_last = channels_last
        self.hyper = dict(hyper or {})  # AdamW settings of this run (re-applied over a checkpoint's)
        self._last_batch: Optional[tuple[torch.Tensor, torch.Tensor]] = None
        # foreach norms run as one kernel per dtype/device group: faster on CPU and CUDA, absent elsewhere
        self._foreach_norm = True if env.device.type in ("cpu", "cuda") else None
        if (distill is None) != (targets is None):
            raise ValueError("distillation needs both a loss and teacher targets")

    def _to_device(self, batch: Sequence[Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        dev = self.env.device
        x = batch[0].to(dev, non_blocking=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = torch.as_tensor(batch[1]).to(dev, non_blocking=True)
        idx = torch.as_tensor(batch[2]) if len(batch) > 2 else None
        flip = torch.as_tensor(batch[3]) if len(batch) > 3 else None
        return x, y, idx, flip

    def step(self, micro_batches: Sequence[Sequence[Any]], step_index: int) -> StepStats:
        """Forward / backward every micro-batch, then clip, step AdamW and the schedule.

        Raises :class:`NonFiniteLossError` (on every rank) before any parameter changes when
        a loss or (without a loss scaler) the gradient norm is NaN or infinite. A finite loss does
        not make the *updated* weights good: :meth:`state_problem` checks those before a checkpoint."""
        if len(micro_batches) != self.accumulate:
            raise ValueError(f"expected {self.accumulate} micro-batches, got {len(micro_batches)}")
        self.model.train()
        self.partial_fc.train()
        lr = self.optimizer.param_groups[0]["lr"]
        sums = [0.0, 0.0, 0.0]  # loss, classification, distillation
        images = 0
        for k, batch in enumerate(micro_batches):
            parts, n = self._micro_step(batch, k == self.accumulate - 1, step_index, lr)
            sums = [a + b for a, b in zip(sums, parts)]
            images += n
        norm = self._clipped_grad_norm()
        self._check_grad_norm(norm, sums[0] / self.accumulate, step_index)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        n = self.accumulate
        return StepStats(sums[0] / n, sums[1] / n, sums[2] / n, lr, norm, images)

    def losses(self, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor | None, flip: torch.Tensor | None,
               step_index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(total, classification, distillation or None) loss of one micro-batch (tests patch this
        to inject faults, e.g. :func:`tests.training.train_helpers.nan_at_step`)."""
        with self.autocast():
            emb = self.forward(x)
        loss_cls = self.partial_fc(emb.float(), y)
        if self.distill is None:
            return loss_cls, loss_cls, None
        loss_dis = self.distill(emb.float(), self.targets(x, idx, flip))
        return loss_cls + loss_dis, loss_cls, loss_dis

    def _micro_step(self, batch: Sequence[Any], last: bool, step_index: int, lr: float) -> tuple[tuple[float, float, float], int]:
        """Forward / backward of one micro-batch (gradients synchronised on the last one):
        ((loss, classification, distillation), images)."""
        x, y, idx, flip = self._to_device(batch)
        sync = nullcontext() if last or not hasattr(self.forward, "no_sync") else self.forward.no_sync()
        with sync:
            loss, loss_cls, loss_dis = self.losses(x, y, idx, flip, step_index)
            value = float(loss.detach())
            self._check_loss(value, loss_cls, loss_dis, step_index, lr)
            self.scaler.scale(loss / self.accumulate).backward()
        self._last_batch = (x, y)
        dis = float(loss_dis.detach()) if loss_dis is not None else 0.0
        return (value, float(loss_cls.detach()), dis), int(x.shape[0])

    def _check_loss(self, value: float, loss_cls: torch.Tensor, loss_dis: torch.Tensor | None, step_index: int, lr: float) -> None:
        """Raise :class:`NonFiniteLossError` on every rank when any rank's loss is not finite."""
        if not any_true(self.env, not math.isfinite(value)):
            return
        self.optimizer.zero_grad(set_to_none=True)
        parts = f"classification {float(loss_cls.detach()):.4g}"
        if loss_dis is not None:
            parts += f", distillation {float(loss_dis.detach()):.4g}"
        raise NonFiniteLossError(
            f"the loss became {value} at optimiser step {step_index} ({parts}; lr {lr:.3g}); "
            "the update was not applied - lower optim.lr, check the data, or use train.amp=none"
        )

    def _clipped_grad_norm(self) -> float:
        """Unscale the gradients, clip them to ``clip_grad_norm`` (when > 0) and return their norm."""
        self.scaler.unscale_(self.optimizer)
        if self.clip_grad_norm > 0:
            return float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip_grad_norm, foreach=self._foreach_norm))
        norms = [p.grad.detach().norm() for p in self.model.parameters() if p.grad is not None]
        return float(torch.linalg.vector_norm(torch.stack(norms)))

    def _check_grad_norm(self, norm: float, loss: float, step_index: int) -> None:
        if self.scaler.is_enabled() or math.isfinite(norm):
            return
        # without a loss scaler nothing would skip this update: refuse it before it reaches the weights
        self.optimizer.zero_grad(set_to_none=True)
        raise NonFiniteLossError(
            f"the gradients became non-finite (norm {norm}) at optimiser step {step_index} with a finite loss "
            f"{loss:.4g}; the update was not applied - lower optim.lr or check the data"
        )

    # -- checks before a checkpoint
    def _tensors(self) -> list[torch.Tensor]:
        tensors = [t for t in self.model.state_dict().values() if torch.is_tensor(t) and t.is_floating_point()]
        tensors += [t for t in self.partial_fc.state_dict().values() if torch.is_tensor(t) and t.is_floating_point()]
        for entry in self.optimizer.state.values():
            tensors += [t for t in entry.values() if torch.is_tensor(t) and t.is_floating_point()]
        return tensors

    @torch.no_grad()
    def probe_loss(self) -> Optional[float]:
        """Classification loss of the *current* weights on the last micro-batch, in eval mode and
        float32 (no statistics, RNG or sampling state changes); None before the first step.
        Collective under torch.distributed (Partial FC): call on every rank."""
        if self._last_batch is None:
            return None
        x, y = self._last_batch
        was = self.model.training, self.partial_fc.training
        self.model.eval()
        self.partial_fc.eval()
        try:
            emb = self.model(x.float())
            loss = self.partial_fc(emb.float(), y)
        finally:
            self.model.train(was[0])
            self.partial_fc.train(was[1])
        return float(loss)

    def state_problem(self) -> Optional[str]:
        """Why this state must not be checkpointed, or None: a NaN / infinite weight, buffer or
        optimizer moment, or weights whose loss (:meth:`probe_loss`) is not finite - an update can
        leave finite but useless weights (lr 1e6 gives |w| ~ 1e6, whose activations overflow).
        Collective (see :meth:`probe_loss`)."""
        tensors = self._tensors()
        bad = 0
        if tensors:
            finite = torch.stack([t.isfinite().all() for t in tensors])
            bad = int((~finite).sum())
        loss = self.probe_loss()
        if bad:
            return f"{bad} of {len(tensors)} weight / optimizer-state tensors hold NaN or infinite values"
        if loss is not None and not math.isfinite(loss):
            largest = max(float(p.detach().abs().max()) for p in self.model.parameters())
            return f"the updated weights (largest |w| {largest:.3g}) give a {loss} loss"
        return None

    # -- state: this object's part of a checkpoint
    def state_dict(self) -> dict[str, Any]:
        """Model, Partial FC shard, AdamW, schedule and loss scaler."""
        return {
            "model": self.model.state_dict(),
            "partial_fc": self.partial_fc.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (:class:`~facelivt.training.resume.ResumeMismatchError` when the
        model or Partial FC does not fit); the optimizer keeps this run's settings (lr schedule, weight
        decay, betas, eps), the checkpoint gives its moments and step counts."""
        for module, key, what in ((self.model, "model", "model"), (self.partial_fc, "partial_fc", "Partial FC")):
            check_fits(module.state_dict(), state[key], what)
            module.load_state_dict(state[key])
        self.optimizer.load_state_dict(state["optimizer"])
        for group, lr in zip(self.optimizer.param_groups, self.scheduler.base_lrs):
            group["initial_lr"] = lr
            group.update(self.hyper)
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler.is_enabled() and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])


def build_step_runner(
    cfg: Config,
    env: DistEnv,
    num_classes: int,
    total_steps: int,
    warmup_steps: int = 0,
    *,
    model: nn.Module | None = None,
    teacher: nn.Module | None = None,
    num_samples: int | None = None,
    cache_dir: str | None = None,
    cache_key: str = "",
) -> StepRunner:
    """Everything trainable, on ``env.device``: model (DDP-wrapped when distributed, compiled when
    asked), Partial FC shard, AdamW, schedule, scaler and (with distillation) the teacher.

    ``teacher`` replaces the teacher built from ``distill.teacher`` / ``distill.teacher_weights`` (it
    is put in eval mode and frozen). ``num_samples`` sizes the teacher cache (needed unless ``distill.cache`` is none); a disk cache
    lives in ``cache_dir``."""
    channels_last = resolve_channels_last(cfg.model.channels_last, env.device)
    model = _placed_model(cfg, env.device, model, channels_last)
    embedding_size = embedding_dim(model, env.device)
    pfc = build_partial_fc(cfg, num_classes, env, embedding_size).to(env.device)
    o = cfg.optim
    hyper = {"weight_decay": o.weight_decay, "betas": (o.betas[0], o.betas[1]), "eps": o.eps}
    optimizer = build_adamw([{"params": list(model.parameters())}, {"params": list(pfc.parameters())}], lr=o.lr, **hyper)
    scheduler = PolyWarmupScheduler(optimizer, total_steps, o.min_lr, o.power, warmup_steps)
    amp_dtype = resolve_amp(cfg.train.amp, env.device)
    distill = targets = None
    if cfg.distill.enabled:
        teacher = _frozen_teacher(cfg, env.device, teacher, embedding_size, channels_last)
        autocast = autocast_factory(env.device, amp_dtype)
        targets = TeacherTargets.build(teacher, cfg.distill, env, embedding_size, num_samples, cache_dir, cache_key,
                                       autocast=autocast, channels_last=channels_last, both_views=cfg.data.flip)
        distill = DistillationLoss(cfg.distill.kind, cfg.distill.alpha, cfg.distill.normalize)
    return StepRunner(
        model, _forward_module(cfg, env, model), pfc, optimizer, scheduler, env,
        amp_dtype=amp_dtype, accumulate=cfg.train.accumulate, clip_grad_norm=o.clip_grad_norm,
        distill=distill, targets=targets, channels_last=channels_last, hyper=hyper,
    )


def _placed_model(cfg: Config, device: torch.device, model: nn.Module | None, channels_last: bool) -> nn.Module:
    """The student (``model`` or :func:`build_model`) on ``device``, channels-last when asked, its 1x1
    ConvBNs as ``model.linear_1x1`` says (when set)."""
    model = (model if model is not None else build_model(cfg)).to(device)
    if cfg.model.linear_1x1 is not None:
        set_linear_1x1(model, cfg.model.linear_1x1)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def _forward_module(cfg: Config, env: DistEnv, model: nn.Module) -> nn.Module:
    """What the step calls: ``model``, compiled when asked, DDP-wrapped when distributed."""
    forward: nn.Module = torch.compile(model) if cfg.model.compile else model
    if env.distributed:
        device = env.device
        forward = DistributedDataParallel(forward, device_ids=[device.index] if device.type == "cuda" else None)
    return forward


def _frozen_teacher(cfg: Config, device: torch.device, teacher: nn.Module | None, embedding_size: int,
                    channels_last: bool) -> nn.Module:
    """The distillation teacher (given or built from ``distill.*``), frozen, of the student's width."""
    d = cfg.distill
    if teacher is None:
        teacher = build_teacher(d.teacher, d.teacher_weights, device, d.allow_random_teacher, channels_last)
    else:
        teacher = teacher.to(device).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
    teacher_dim = embedding_dim(teacher, device)
    if teacher_dim != embedding_size:
        raise InvalidInputError(
            f"the teacher {d.teacher} gives {teacher_dim}-d embeddings but the student {embedding_size}-d; "
            "distillation needs the same size"
        )
    return teacher
