"""The numbers of one quickstart run as the plain dict of ``results.json`` (the report reads only these)."""
from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np

from facelivt.losses import margin_loss
from facelivt.models.config import VARIANTS
from facelivt.training import DistillConfig

from .plan import MODEL_KEYS
from .runs import TrainedModel


def summarize(run: Any) -> dict[str, Any]:
    """``results.json``'s sections from a finished :class:`facelivt.quickstart.pipeline.Run`."""
    r: dict[str, Any] = {
        "plan": run.plan.to_dict(),
        "models": {k: model_summary(run.trained[k]) for k in MODEL_KEYS},
        "verification": {k: {**run.verifications[k].metrics, "seconds": run.verifications[k].seconds} for k in MODEL_KEYS},
        "deploy": {k: run.checks[k].to_dict() for k in MODEL_KEYS},
        "onnx": run.onnx.to_dict(),
        "benchmark": [asdict(row) for row in run.bench_rows],
        "peer": run.peer_info,
        "paper": paper_recipe(),
    }
    r["distillation"] = distillation_summary(r)
    r["checks_passed"] = all(c.passed() for c in run.checks.values()) and run.onnx.passed()
    return r


def _tail_mean(values: list[float]) -> float | None:
    """Mean of the last 10 % of a loss curve (None when empty)."""
    return float(np.mean(values[-max(1, len(values) // 10):])) if values else None


def model_summary(t: TrainedModel) -> dict[str, Any]:
    r, loss = t.result, list(t.result.loss_history)
    return {
        "name": t.name, "role": t.key, "steps": r.steps, "planned_steps": r.total_steps, "stopped": r.stopped,
        "batch_size": t.config.train.batch_size, "images_seen": t.images_seen,
        "epochs": t.images_seen / max(t.num_train_images, 1), "num_classes": r.num_classes, "train_images": t.num_train_images,
        "seconds": t.seconds, "seconds_per_step": t.seconds / max(r.steps, 1), "first_loss": loss[0] if loss else None,
        "final_loss": _tail_mean(loss), "final_loss_cls": _tail_mean(t.loss_cls), "final_loss_dis": _tail_mean(t.loss_dis),
        "config": t.config.to_dict(), "loss": loss, "loss_cls": t.loss_cls, "loss_dis": t.loss_dis,
    }


def paper_recipe() -> dict[str, Any]:
    """The paper's recipe as the library holds it (published counts of its teacher, the released
    margin and distillation defaults), for the report's comparisons."""
    counts = VARIANTS["facelivt_l_mhsa"].reference_counts or (None, None)
    cosface, distill = margin_loss("cosface"), DistillConfig()
    return {"teacher": "facelivt_l_mhsa", "teacher_params_m": counts[0], "teacher_macs_m": counts[1], "cosface_s": cosface.s,
            "cosface_m": cosface.m3, "distill_kind": distill.kind, "distill_alpha": distill.alpha}


def distillation_summary(results: dict[str, Any]) -> dict[str, Any]:
    """Distilled minus plain student, with a verdict against the 10-fold standard error."""
    v = results["verification"]
    kd, plain, teacher = v["student_kd"], v["student_plain"], v["teacher"]
    diff = kd["accuracy"] - plain["accuracy"]
    noise = float(np.hypot(kd["accuracy_std"], plain["accuracy_std"]) / np.sqrt(10))
    verdict = "helped" if diff > 2 * noise else "hurt" if diff < -2 * noise else "no clear difference"
    return {
        "accuracy_kd_minus_plain": diff,
        "auc_kd_minus_plain": (kd["auc"] or 0.0) - (plain["auc"] or 0.0),
        "eer_kd_minus_plain": (kd["eer"] or 0.0) - (plain["eer"] or 0.0),
        "teacher_minus_plain": teacher["accuracy"] - plain["accuracy"],
        "standard_error": noise,
        "verdict": verdict,
    }
