"""The quickstart pipeline: data -> plan -> teacher -> distilled and plain students -> held-out
verification -> reparameterization -> ONNX -> benchmark -> report. Each step is timed; every number of
the report is measured in the run and kept in ``results.json`` (:class:`facelivt.quickstart.results.RunSummary`)."""
from __future__ import annotations

import logging
import os
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from facelivt.data import FaceArray
from facelivt.deploy.benchmark import environment
from facelivt.deploy.onnx_export import export_onnx
from facelivt.deploy.optimize import optimize_for_inference
from facelivt.errors import InvalidInputError
from facelivt.files import write_json
from facelivt.models import create_model, reparameterize_model
from facelivt.precision import resolve_channels_last
from facelivt.training import HeldoutPairs

from .checks import Candidate, DeployCheck, LatencyRow, OnnxCheck, Verification, benchmark, deploy_verification, export_and_check, reparameterize_and_check, verify
from .config import QuickstartConfig, load_quickstart_config
from .content import build_report
from .data import feasible_pairs, limit_per_identity, load_faces, make_pairs, split_faces
from .plan import MODEL_KEYS, Plan, base_plan, plan_steps, run_config, time_train_step
from .plots import plot_loss_curves, plot_rocs, save_samples
from .report import write_report
from .results import DataSummary, FileEntry, Machine, ModelSummary, PeerInfo, RunSummary
from .runs import TrainedModel, train_model
from .steps import STEPS

log = logging.getLogger(__name__)
REPORT_FILES = ("report.md", "report.html", "results.json", "loss_curves.png", "roc.png", "samples.png")


class StepClock:
    """Reports ``[i/N] title`` through ``say`` as each step starts (the application's progress) and records its wall time."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say, self.seconds, self.titles = say, {}, dict(STEPS)

    @contextmanager
    def step(self, key: str, detail: str = "") -> Iterator[None]:
        index = [k for k, _ in STEPS].index(key) + 1
        self.say(f"[{index}/{len(STEPS)}] {self.titles[key]}" + (f" ({detail})" if detail else ""))
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[key] = time.perf_counter() - start
            self.say(f"      done in {self.seconds[key]:.1f} s")


@dataclass
class QuickstartResult:
    """What a quickstart run produced: ``summary`` holds the numbers of ``results.json``."""

    out: Path
    summary: RunSummary
    files: list[Path] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Every check passed: deploy forms match and carry no BatchNorm, the ONNX model matches."""
        return self.summary.checks_passed

    @property
    def results(self) -> dict[str, Any]:
        """``results.json`` as a dict (read ``summary`` instead)."""
        return self.summary.to_json()


@dataclass
class Run:
    """What the steps of one run hand to each other."""

    config: QuickstartConfig
    plan: Plan
    out: Path
    clock: StepClock
    wall_start: float
    started: str
    machine: Machine
    load_average_start: list[float] | None
    faces: FaceArray | None = None
    held: FaceArray | None = None
    num_train_images: int = 0
    pairs: HeldoutPairs | None = None
    data: DataSummary | None = None
    trained: dict[str, TrainedModel] = field(default_factory=dict)
    verifications: dict[str, Verification] = field(default_factory=dict)
    deploys: dict[str, torch.nn.Module] = field(default_factory=dict)
    checks: dict[str, DeployCheck] = field(default_factory=dict)
    onnx: OnnxCheck | None = None
    bench_rows: list[LatencyRow] = field(default_factory=list)
    peer: PeerInfo | None = None
    summary: RunSummary | None = None

    @property
    def progress(self) -> bool:
        return self.config.quickstart.progress


def run_quickstart(config: QuickstartConfig | None = None, say: Callable[[str], None] | None = None) -> QuickstartResult:
    """Run every step (see :data:`STEPS`) and write the report folder ``config.quickstart.out``.
    ``say`` gets the progress lines (default: logged at INFO); ``quickstart.progress`` shows the progress bars."""
    run = _start(config or load_quickstart_config(), say or log.info)
    for step in (step_data, step_plan, step_train, step_evaluate, step_reparameterize, step_onnx, step_benchmark, step_report):
        step(run)
    return QuickstartResult(run.out, run.summary, [run.out / f for f in REPORT_FILES])


def _start(config: QuickstartConfig, say: Callable[[str], None]) -> Run:
    wall_start = time.perf_counter()
    plan = base_plan(config)
    torch.set_num_threads(plan.threads)
    out = Path(config.quickstart.out)
    out.mkdir(parents=True, exist_ok=True)
    env = environment(plan.threads, "cpu")
    started, load = env.pop("date"), env.pop("load_average_start")
    return Run(config, plan, out, StepClock(say), wall_start, started, Machine(env, plan.threads_auto),
               [round(v, 2) for v in load] if load else None)


def step_data(run: Run) -> None:
    """Faces in memory, the identity split, the held-out pairs and a picture of training faces."""
    cfg, qs, plan = run.config.training, run.config.quickstart, run.plan
    with run.clock.step("data", cfg.data.root if cfg.data.type == "folder" else "synthetic identities"):
        run.faces, folder = load_faces(run.config, plan.num_identities, plan.max_images, plan.max_align_images, run.out)
        if run.faces.num_identities < 4:
            raise InvalidInputError(f"{run.faces.source}: {run.faces.num_identities} usable identities; the quickstart needs at "
                             "least 4 (2 to train on, 2 held out for verification)")
        plan.held_out_fraction = max(plan.held_out_fraction, 2.0 / run.faces.num_identities)  # mismatched pairs need 2
        train, run.held = split_faces(run.faces, plan.held_out_fraction, cfg.data.split_seed)
        held_eval = limit_per_identity(run.held, qs.pair_images_per_identity)
        plan.num_pairs = feasible_pairs(held_eval, plan.num_pairs)
        run.pairs = make_pairs(held_eval, plan.num_pairs, cfg.data.split_seed)
        run.num_train_images = len(train)
        save_samples(train.images, train.labels, run.out / "samples.png")
    run.data = DataSummary.of(run.faces, train, run.held, run.pairs, cfg.data.type, cfg.data.images_per_identity, folder)


def step_plan(run: Run) -> None:
    """Time a training step of the student and of the teacher, then size the runs to the budget."""
    cfg, plan = run.config.training, run.plan
    with run.clock.step("plan", f"budget {run.config.quickstart.budget_minutes:g} min"):
        student_s = teacher_s = 0.0  # the CI-sized run has fixed step counts: nothing to calibrate
        if not plan.tiny:
            cl = resolve_channels_last(cfg.model.channels_last, torch.device("cpu"))  # the trainer's layout on a CPU
            student_s = time_train_step(cfg.model.name, cfg.model.head, plan.batch_size, channels_last=cl)
            teacher_s = time_train_step(cfg.distill.teacher, cfg.model.head, plan.teacher_batch_size, channels_last=cl)
        plan_steps(plan, student_s, teacher_s, run.num_train_images)


def step_train(run: Run) -> None:
    """The teacher, then the student with distillation from it, then the student without."""
    plan, cfg = run.plan, run.config.training
    details = {
        "teacher": f"{cfg.distill.teacher}, {plan.teacher_steps} steps of {plan.teacher_batch_size}",
        "student_kd": f"{cfg.model.name}, {plan.student_steps} steps of {plan.batch_size}, distilled from {cfg.distill.teacher}",
        "student_plain": f"{cfg.model.name}, {plan.student_steps} steps of {plan.batch_size}, no teacher",
    }
    for key in MODEL_KEYS:
        with run.clock.step(key, details[key]):
            run.trained[key] = train_model(key, run_config(plan, key, run.out), run.faces, run.num_train_images,
                                           run.out / "weights", run.trained.get("teacher"))


def step_evaluate(run: Run) -> None:
    """Held-out verification of the three models, their ROC curves and the training-loss curves."""
    pairs, trained = run.pairs, run.trained
    with run.clock.step("evaluate", f"{pairs.num_pairs} pairs of {run.held.num_identities} held-out identities"):
        curves = {}
        for key in MODEL_KEYS:
            v = verify(trained[key].model, pairs, batch_size=run.config.training.eval.batch_size, progress=run.progress)
            run.verifications[key] = v
            curves[f"{_label(key, trained[key].name)}: acc {100 * v.accuracy:.1f}%, AUC {v.auc:.3f}"] = (v.fpr, v.tpr)
        plot_rocs(curves, run.out / "roc.png", int((~pairs.issame).sum()), f"Held-out verification ({pairs.num_pairs} pairs)")
        t, kd, plain = trained["teacher"], trained["student_kd"], trained["student_plain"]
        losses = {f"teacher {t.name} (CosFace)": t.loss_cls, f"student {kd.name} + KD: CosFace part": kd.loss_cls,
                  f"student {plain.name}, no KD (CosFace)": plain.loss_cls}
        if kd.loss_dis:
            d = kd.config.distill
            losses[f"student + KD: distillation part ({d.alpha:g} x ({'1 - cos' if d.kind == 'cosine' else d.kind.upper()}))"] = kd.loss_dis
        plot_loss_curves(losses, run.out / "loss_curves.png", "Training loss per step")


def _label(key: str, name: str) -> str:
    return {"teacher": f"teacher {name}", "student_kd": f"{name} + KD", "student_plain": f"{name} plain"}[key]


def step_reparameterize(run: Run) -> None:
    """Deploy forms, their parity with the train forms and with the deploy weights the trainer exported."""
    qs = run.config.quickstart
    images = run.pairs.images[: qs.parity_images]
    with run.clock.step("reparameterize", "fold BatchNorm, 1x1 branches and residuals"):
        for key in MODEL_KEYS:
            t = run.trained[key]
            run.deploys[key], run.checks[key] = reparameterize_and_check(t.name, t.model, images, t.weights, t.deploy_weights)
        if qs.deploy_verification:
            deploy_verification(run.deploys["student_kd"], run.pairs, run.verifications["student_kd"], run.checks["student_kd"],
                                batch_size=run.config.training.eval.batch_size, progress=run.progress)


def step_onnx(run: Run) -> None:
    """The distilled student's deploy form to ONNX, checked in ONNX Runtime."""
    path = run.out / f"{run.config.training.model.name}_kd.onnx"
    with run.clock.step("onnx", path.name):
        images = run.pairs.images[: run.config.quickstart.parity_images]
        run.onnx = export_and_check(run.deploys["student_kd"], path, images, threads=run.plan.threads)


def step_benchmark(run: Run) -> None:
    """Latency of train form, deploy form, TorchScript, ONNX Runtime, the teacher and the peer."""
    qs, threads = run.config.quickstart, run.plan.threads
    with run.clock.step("benchmark", f"batch {', '.join(map(str, qs.bench_batch_sizes))}, {threads} thread" + ("" if threads == 1 else "s")):
        torch.manual_seed(run.config.training.train.seed)
        peer = reparameterize_model(create_model(qs.peer).eval())
        run.peer = PeerInfo(qs.peer)
        with tempfile.TemporaryDirectory() as tmp:
            candidates = _candidates(run, peer, Path(tmp) / f"{qs.peer}.onnx")
            run.bench_rows = benchmark(candidates, qs.bench_batch_sizes, threads, qs.bench_warmup, qs.bench_runs,
                                       qs.bench_rounds, run.progress)


def _candidates(run: Run, peer: torch.nn.Module, peer_onnx: Path) -> dict[str, Candidate]:
    s, t, p = run.config.training.model.name, run.config.training.distill.teacher, run.config.quickstart.peer
    train, deploy = run.trained["student_kd"].model, run.deploys["student_kd"]
    cand = {f"{s} train form": Candidate(s, "train", "PyTorch eager", train, train),
            f"{s} deploy form": Candidate(s, "deploy", "PyTorch eager", deploy, deploy)}
    try:
        cand[f"{s} deploy form, TorchScript (optimize_for_inference)"] = Candidate(
            s, "deploy", "TorchScript", optimize_for_inference(deploy, "torchscript"), deploy)
    except RuntimeError as exc:  # an optional row: report it and go on
        run.peer.torchscript_error = str(exc)
    if run.onnx.passed():
        cand[f"{s} deploy form, ONNX Runtime"] = Candidate(s, "deploy", "ONNX Runtime", Path(run.onnx.path), deploy)
    cand[f"{t} (teacher) deploy form"] = Candidate(t, "deploy", "PyTorch eager", run.deploys["teacher"], run.deploys["teacher"])
    cand[f"{p} deploy form"] = Candidate(p, "deploy", "PyTorch eager", peer, peer)
    try:
        export_onnx(peer, peer_onnx)
        cand[f"{p} deploy form, ONNX Runtime"] = Candidate(p, "deploy", "ONNX Runtime", peer_onnx, peer)
    except (RuntimeError, ValueError, ImportError) as exc:  # the peer's export is not this run's check
        run.peer.onnx_error = f"{type(exc).__name__}: {exc}"
    return cand


def step_report(run: Run) -> None:
    """results.json, report.md and report.html (written again after the step, with its own time)."""
    with run.clock.step("report", str(run.out)):
        run.summary = RunSummary(
            run.config, run.started, run.machine, run.load_average_start, run.data, run.plan,
            {k: ModelSummary.of(run.trained[k]) for k in MODEL_KEYS}, {k: run.verifications[k] for k in MODEL_KEYS},
            {k: run.checks[k] for k in MODEL_KEYS}, run.onnx, run.bench_rows, run.peer)
        _finish(run)
    _finish(run)


def _finish(run: Run) -> None:
    s = run.summary
    s.step_seconds = dict(run.clock.seconds)
    s.load_average_end = [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None
    s.wall_seconds = time.perf_counter() - run.wall_start
    s.files = [FileEntry(str(p.relative_to(run.out)), p.stat().st_size) for p in sorted(run.out.rglob("*"))
               if p.is_file() and "aligned" not in p.relative_to(run.out).parts]
    write_json(run.out / "results.json", s.to_json(), allow_nan=True, default=_plain)
    write_report(build_report(s), run.out)


def _plain(o: Any) -> Any:
    """JSON for numpy numbers and arrays (a metric or a count can be one)."""
    return o.item() if isinstance(o, np.generic) else o.tolist() if isinstance(o, np.ndarray) else str(o)
