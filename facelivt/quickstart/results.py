"""The numbers of one quickstart run, one small dataclass per section of ``results.json``
(:meth:`RunSummary.to_json` writes it; the report reads only these)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Optional

import numpy as np

from facelivt.data import FaceArray
from facelivt.losses import margin_loss
from facelivt.models.config import VARIANTS
from facelivt.training import Config, DistillConfig, HeldoutPairs

from .checks import DeployCheck, LatencyRow, OnnxCheck, Verification
from .config import QuickstartConfig
from .data import FolderInfo
from .plan import Plan
from .runs import TrainedModel


@dataclass
class Machine:
    """Where the run ran: :func:`facelivt.deploy.benchmark.environment` (less date and start load)."""

    environment: dict[str, Any]
    threads_auto: bool  # the threads were chosen from the idle cores

    cpu = property(lambda self: self.environment["cpu"])
    cpu_cores = property(lambda self: self.environment["cpu_cores"])
    threads = property(lambda self: self.environment["threads"])
    device = property(lambda self: self.environment["device"])
    torch = property(lambda self: self.environment["torch"])
    # facelivt.cpu's one-line summary: which ISA torch, oneDNN, MKL and ORT ran with
    cpu_capability = property(lambda self: self.environment.get("cpu_capability", {}).get("summary", ""))

    def to_json(self) -> dict[str, Any]:
        return {**self.environment, "threads_auto": self.threads_auto}


@dataclass
class DataSummary:
    """The faces, the identity split and the held-out pairs."""

    source: str
    kind: str  # synthetic | folder
    identities: int
    images: int
    images_per_identity: int
    train_identities: int
    train_images: int
    heldout_identities: int
    heldout_images: int
    pairs: int
    pair_images: int
    positive_pairs: int
    negative_pairs: int
    folder: Optional[FolderInfo]

    @classmethod
    def of(cls, faces: FaceArray, train: FaceArray, held: FaceArray, pairs: HeldoutPairs, kind: str, per_identity: int,
           folder: FolderInfo | None) -> "DataSummary":
        return cls(faces.source, kind, faces.num_identities, len(faces), per_identity, train.num_identities, len(train),
                   held.num_identities, len(held), pairs.num_pairs, int(len(pairs.images)), int(pairs.issame.sum()),
                   int((~pairs.issame).sum()), folder)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _tail_mean(values: list[float]) -> float | None:
    """Mean of the last 10 % of a loss curve (None when empty)."""
    return float(np.mean(values[-max(1, len(values) // 10):])) if values else None


@dataclass
class ModelSummary:
    """One training run: its steps, time and losses, and its config."""

    name: str
    role: str  # teacher | student_kd | student_plain
    steps: int
    planned_steps: int
    stopped: str
    batch_size: int
    images_seen: int
    epochs: float
    num_classes: int
    train_images: int
    seconds: float
    seconds_per_step: float
    first_loss: Optional[float]
    final_loss: Optional[float]
    final_loss_cls: Optional[float]
    final_loss_dis: Optional[float]
    config: Config
    loss: list[float]
    loss_cls: list[float]
    loss_dis: list[float]

    @classmethod
    def of(cls, t: TrainedModel) -> "ModelSummary":
        r, loss = t.result, list(t.result.loss_history)
        return cls(t.name, t.key, r.steps, r.total_steps, r.stopped, t.config.train.batch_size, t.images_seen,
                   t.images_seen / max(t.num_train_images, 1), r.num_classes, t.num_train_images, t.seconds,
                   t.seconds / max(r.steps, 1), loss[0] if loss else None, _tail_mean(loss), _tail_mean(t.loss_cls),
                   _tail_mean(t.loss_dis), t.config, loss, t.loss_cls, t.loss_dis)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "config": self.config.to_dict()}


@dataclass
class PeerInfo:
    """The peer network of the latency table and what failed for it."""

    name: str
    weights: str = "random weights (latency does not depend on them)"
    onnx_error: Optional[str] = None
    torchscript_error: Optional[str] = None  # the student's optimize_for_inference row


@dataclass
class PaperRecipe:
    """The paper's recipe as the library holds it (published counts of its teacher, the released
    margin and distillation defaults), for the report's comparisons."""

    teacher: str
    teacher_params_m: Optional[float]
    teacher_macs_m: Optional[float]
    cosface_s: float
    cosface_m: float
    distill_kind: str
    distill_alpha: float

    @classmethod
    def of_library(cls) -> "PaperRecipe":
        counts = VARIANTS["facelivt_l_mhsa"].reference_counts or (None, None)
        cosface, distill = margin_loss("cosface"), DistillConfig()
        return cls("facelivt_l_mhsa", counts[0], counts[1], cosface.s, cosface.m3, distill.kind, distill.alpha)


@dataclass
class Distillation:
    """Distilled minus plain student, with a verdict against the 10-fold standard error."""

    accuracy_kd_minus_plain: float
    auc_kd_minus_plain: float
    eer_kd_minus_plain: float
    teacher_minus_plain: float
    standard_error: float
    verdict: str  # helped | hurt | no clear difference


def distillation_summary(v: Mapping[str, Verification]) -> Distillation:
    kd, plain, teacher = v["student_kd"], v["student_plain"], v["teacher"]
    diff = kd.accuracy - plain.accuracy
    noise = float(np.hypot(kd.accuracy_std, plain.accuracy_std) / np.sqrt(10))
    verdict = "helped" if diff > 2 * noise else "hurt" if diff < -2 * noise else "no clear difference"
    return Distillation(diff, (kd.auc or 0.0) - (plain.auc or 0.0), (kd.eer or 0.0) - (plain.eer or 0.0),
                        teacher.accuracy - plain.accuracy, noise, verdict)


@dataclass
class FileEntry:
    path: str  # relative to the report folder
    bytes: int


@dataclass
class RunSummary:
    """Everything the report shows; :meth:`to_json` is ``results.json``."""

    config: QuickstartConfig
    started: str
    machine: Machine
    load_average_start: Optional[list[float]]
    data: DataSummary
    plan: Plan
    models: dict[str, ModelSummary]
    verification: dict[str, Verification]
    deploy: dict[str, DeployCheck]
    onnx: OnnxCheck
    benchmark: list[LatencyRow]
    peer: PeerInfo
    paper: PaperRecipe = field(default_factory=PaperRecipe.of_library)
    step_seconds: dict[str, float] = field(default_factory=dict)
    load_average_end: Optional[list[float]] = None
    wall_seconds: float = 0.0
    files: list[FileEntry] = field(default_factory=list)

    @property
    def distillation(self) -> Distillation:
        return distillation_summary(self.verification)

    @property
    def checks_passed(self) -> bool:
        """Every check passed: deploy forms match and carry no BatchNorm, the ONNX model matches."""
        return all(c.passed() for c in self.deploy.values()) and self.onnx.passed()

    def to_json(self) -> dict[str, Any]:
        each = lambda d: {k: v.to_json() for k, v in d.items()}  # noqa: E731
        return {
            "config": self.config.to_dict(), "started": self.started, "machine": self.machine.to_json(),
            "load_average_start": self.load_average_start, "data": self.data.to_json(), "plan": self.plan.to_json(),
            "models": each(self.models), "verification": each(self.verification), "deploy": each(self.deploy),
            "onnx": self.onnx.to_json(), "benchmark": [asdict(b) for b in self.benchmark], "peer": asdict(self.peer),
            "paper": asdict(self.paper), "distillation": asdict(self.distillation), "checks_passed": self.checks_passed,
            "step_seconds": dict(self.step_seconds), "load_average_end": self.load_average_end,
            "wall_seconds": self.wall_seconds, "files": [asdict(f) for f in self.files],
        }
