"""Per-step learning rate: optional linear warm-up, then polynomial decay to a floor (the FaceLiVT recipe: power 1 to 1e-5, no warm-up; seed supplementary, section B)."""
from __future__ import annotations

from typing import Any

from torch.optim import Optimizer

from facelivt.errors import InvalidInputError


# The FaceLiVT recipe trains with AdamW at 6e-3 (seed supplementary, section B); a learning rate above
# 1e-2 is past what AdamW tolerates on these networks, so advice never suggests more.
MAX_SUGGESTED_LR = 1e-2


def lower_lr(lr: float, checkpoint_lr: float | None = None) -> float:
    """The learning rate to suggest after training at ``lr`` diverged: a tenth of ``lr``, or of
    ``checkpoint_lr`` (the config's lr of the run that wrote the last good checkpoint) when that is
    lower, and never above :data:`MAX_SUGGESTED_LR` (a tenth of 1e6 is 1e5, which diverges again)."""
    base = lr if checkpoint_lr is None else min(lr, checkpoint_lr)
    return min(base / 10, MAX_SUGGESTED_LR)


def poly_lr(step: int, base_lr: float, total_steps: int, min_lr: float = 1e-5, power: float = 1.0, warmup_steps: int = 0) -> float:
    """Learning rate of optimiser step ``step`` (0-based).

    Warm-up: ``base_lr * (step + 1) / warmup_steps`` for ``step < warmup_steps`` (the last warm-up
    step reaches ``base_lr``). Then ``min_lr + (base_lr - min_lr) * (1 - t) ** power`` with
    ``t = (step - warmup_steps) / (total_steps - warmup_steps)``: ``base_lr`` at the first step after
    warm-up, ``min_lr`` at ``step == total_steps`` (and after).
    """
    if total_steps < 1:
        raise InvalidInputError(f"total_steps must be >= 1, got {total_steps}")
    if not 0 <= warmup_steps < total_steps:
        raise InvalidInputError(f"warmup_steps must be in [0, total_steps={total_steps}), got {warmup_steps}")
    if step < 0:
        raise InvalidInputError(f"step must be >= 0, got {step}")
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    t = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
    return min_lr + (base_lr - min_lr) * (1.0 - t) ** power


class PolyWarmupScheduler:
    """Sets every param group's ``lr`` from :func:`poly_lr` once per optimiser step.

    Use like a torch scheduler: the lr for step 0 is set at construction; call :meth:`step`
    after each ``optimizer.step()``. Its state is one integer, so resuming is exact.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        total_steps: int,
        min_lr: float = 1e-5,
        power: float = 1.0,
        warmup_steps: int = 0,
    ) -> None:
        self.optimizer = optimizer
        self.base_lrs = [float(g.get("initial_lr", g["lr"])) for g in optimizer.param_groups]
        for g, lr in zip(optimizer.param_groups, self.base_lrs):
            g["initial_lr"] = lr
        self.total_steps = int(total_steps)
        self.min_lr = float(min_lr)
        self.power = float(power)
        self.warmup_steps = int(warmup_steps)
        poly_lr(0, 1.0, self.total_steps, 0.0, self.power, self.warmup_steps)  # validates the arguments
        self.last_step = 0
        self._apply()

    def lr_at(self, step: int) -> list[float]:
        return [poly_lr(step, b, self.total_steps, min(self.min_lr, b), self.power, self.warmup_steps) for b in self.base_lrs]

    def _apply(self) -> None:
        for g, lr in zip(self.optimizer.param_groups, self.lr_at(self.last_step)):
            g["lr"] = lr

    def step(self) -> None:
        self.last_step += 1
        self._apply()

    def get_last_lr(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        return {"last_step": self.last_step, "total_steps": self.total_steps, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.last_step = int(state["last_step"])
        self._apply()
