"""The quickstart pipeline: data -> teacher -> distilled and plain students -> held-out verification
-> reparameterization -> ONNX -> benchmark -> report. Each step is timed; every number of the
report is measured in the run and kept in ``results.json``."""
from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

import facelivt
import facelivt.models.peers  # noqa: F401  (registers the peer models)
from facelivt.cpu import cpu_capability
from facelivt.deploy.benchmark import cpu_model
from facelivt.deploy.onnx_export import export_onnx
from facelivt.files import write_text
from facelivt.losses import margin_loss
from facelivt.models import create_model, reparameterize_model
from facelivt.models.config import VARIANTS
from facelivt.training import DistillConfig

from .checks import (
    DeployCheck,
    OnnxCheck,
    Verification,
    benchmark,
    deploy_verification,
    export_and_check,
    reparameterize_and_check,
    verify,
)
from .content import build_report
from .data import (
    FaceArray,
    FolderInfo,
    VerificationPairs,
    folder_faces,
    limit_per_identity,
    make_pairs,
    split_faces,
    synthetic_faces,
)
from .plan import Plan, QuickstartOptions, auto_threads, base_plan, plan_steps, time_train_step
from .plots import plot_loss_curves, plot_rocs, save_samples
from .report import write_report
from .steps import STEPS
from .train_step import TrainedModel, TrainSettings, train_model

MODEL_KEYS = ("teacher", "student_kd", "student_plain")
REPORT_FILES = ("report.md", "report.html", "results.json", "loss_curves.png", "roc.png", "samples.png")


class StepClock:
    """Prints ``[i/N] title`` as each step starts and records its wall time."""

    def __init__(self, progress: bool = True) -> None:
        self.progress = progress
        self.seconds: dict[str, float] = {}
        self.titles = dict(STEPS)

    @contextmanager
    def step(self, key: str, detail: str = "") -> Iterator[None]:
        index = [k for k, _ in STEPS].index(key) + 1
        if self.progress:
            extra = f" ({detail})" if detail else ""
            print(f"[{index}/{len(STEPS)}] {self.titles[key]}{extra}", file=sys.stderr, flush=True)
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[key] = time.perf_counter() - start
            if self.progress:
                print(f"      done in {self.seconds[key]:.1f} s", file=sys.stderr, flush=True)


@dataclass
class QuickstartResult:
    """What a quickstart run produced (the same numbers are in ``results.json``)."""

    out: Path
    results: dict[str, Any]
    files: list[Path] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Every check passed: deploy forms match and carry no BatchNorm, the ONNX model matches."""
        return bool(self.results["checks_passed"])


def _load_average() -> list[float] | None:
    return [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None


def _machine(options: QuickstartOptions) -> dict[str, Any]:
    return {
        "cpu": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "device": "cpu",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "facelivt": facelivt.__version__,
        "platform": platform.platform(),
        "cpu_capability": cpu_capability().summary(),
    }


def _prepare_data(options: QuickstartOptions, plan: Plan, out: Path) -> tuple[FaceArray, FolderInfo | None]:
    if options.data is None:
        faces = synthetic_faces(plan.synthetic_identities, plan.synthetic_images_per_identity, options.seed, options.progress)
        return faces, None
    return folder_faces(
        options.data,
        max_images=plan.max_images,
        max_align_images=plan.max_align_images,
        seed=options.seed,
        align_dir=out / "aligned",
        mtcnn_weights=options.mtcnn_weights,
        progress=options.progress,
    )


def _feasible_pairs(held: FaceArray, wanted: int) -> int:
    """At most ``wanted`` pairs, and no more than the held-out images allow (a multiple of 20)."""
    counts = np.bincount(held.labels)
    positives = int(sum(c * (c - 1) // 2 for c in counts))
    n = min(wanted, 2 * positives)
    n -= n % 20
    if n < 20:
        raise ValueError(
            f"the held-out identities ({held.num_identities}, {len(held)} images) allow too few verification pairs; "
            "use more images per identity"
        )
    return n


def _train_settings(options: QuickstartOptions, plan: Plan) -> TrainSettings:
    return TrainSettings(
        model=options.student,
        steps=plan.student_steps,
        batch_size=plan.batch_size,
        lr=plan.lr,
        head=options.head,
        warmup_steps=plan.warmup_steps,
        scale=plan.margin_scale,
        margin_m=plan.margin_m,
        distill_kind=plan.distill_kind,
        distill_alpha=plan.distill_alpha,
        seed=options.seed,
        device="cpu",
        threads=options.threads,
        progress=options.progress,
    )


def _hard_stop(share_s: float, tiny: bool) -> float | None:
    """A training run's time limit: twice its share of the budget (a slower machine still finishes)."""
    return None if tiny else max(0.5, 2.0 * share_s / 60.0)


@dataclass
class _Run:
    """What the steps of one run hand to each other."""

    options: QuickstartOptions
    plan: Plan
    out: Path
    clock: StepClock
    results: dict[str, Any]
    wall_start: float
    train_set: FaceArray | None = None
    held: FaceArray | None = None
    pairs: VerificationPairs | None = None
    trained: dict[str, TrainedModel] = field(default_factory=dict)
    verifications: dict[str, Verification] = field(default_factory=dict)
    deploys: dict[str, torch.nn.Module] = field(default_factory=dict)
    checks: dict[str, DeployCheck] = field(default_factory=dict)
    onnx: OnnxCheck | None = None
    bench_rows: list = field(default_factory=list)
    peer_info: dict[str, Any] = field(default_factory=dict)


def run_quickstart(options: QuickstartOptions) -> QuickstartResult:
    """Run every step (see :data:`STEPS`) and write the report folder ``options.out``."""
    run = _start(options)
    for step in (step_data, step_plan, step_train, step_evaluate, step_reparameterize, step_onnx, step_benchmark, step_report):
        step(run)
    return QuickstartResult(run.out, run.results, [run.out / f for f in REPORT_FILES])


def _start(options: QuickstartOptions) -> _Run:
    wall_start = time.perf_counter()
    options.validate()
    threads_auto = options.threads is None
    if threads_auto:
        options = replace(options, threads=auto_threads())
    torch.set_num_threads(options.threads)
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "options": vars(options).copy(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {**_machine(options), "threads_auto": threads_auto},
        "load_average_start": _load_average(),
    }
    return _Run(options, base_plan(options), out, StepClock(options.progress), results, wall_start)


def step_data(run: _Run) -> None:
    """Faces in memory, the identity split, the held-out pairs and a picture of training faces."""
    o, plan = run.options, run.plan
    with run.clock.step("data", o.data or "synthetic identities"):
        faces, folder_info = _prepare_data(o, plan, run.out)
        if faces.num_identities < 4:
            raise ValueError(f"{faces.source}: {faces.num_identities} usable identities; the quickstart needs at least 4 "
                             "(2 to train on, 2 held out for verification)")
        # at least 2 held-out identities (mismatched pairs need them), whatever the data size
        held_fraction = max(plan.held_out_fraction, 2.0 / faces.num_identities)
        run.train_set, run.held = split_faces(faces, held_fraction, o.seed)
        held_eval = limit_per_identity(run.held, plan.pair_images_per_identity)
        plan.num_pairs = _feasible_pairs(held_eval, plan.num_pairs)
        run.pairs = make_pairs(held_eval, plan.num_pairs, o.seed)
        save_samples(run.train_set.images, run.train_set.labels, run.out / "samples.png")
    pairs = run.pairs
    run.results["data"] = {
        "source": faces.source,
        "kind": "folder" if o.data else "synthetic",
        "identities": faces.num_identities,
        "images": len(faces),
        "train_identities": run.train_set.num_identities,
        "train_images": len(run.train_set),
        "heldout_identities": run.held.num_identities,
        "heldout_images": len(run.held),
        "pairs": pairs.num_pairs,
        "pair_images": int(len(pairs.images)),
        "positive_pairs": int(pairs.issame.sum()),
        "negative_pairs": int((~pairs.issame).sum()),
        "folder": folder_info.to_dict() if folder_info is not None else None,
    }


def step_plan(run: _Run) -> None:
    """Time a training step of the student and of the teacher, then size the runs to the budget."""
    o, plan = run.options, run.plan
    with run.clock.step("plan", f"budget {o.budget_minutes:g} min"):
        if plan.tiny:
            student_s = teacher_s = 0.0  # CI-sized run: fixed tiny step counts, nothing to calibrate
        else:
            student_s = time_train_step(o.student, o.head, plan.batch_size)
            teacher_s = time_train_step(o.teacher, o.head, plan.teacher_batch_size)
        plan_steps(plan, student_s, teacher_s, len(run.train_set))


def step_train(run: _Run) -> None:
    """The teacher, then the student with distillation from it, then the student without."""
    o, plan = run.options, run.plan
    base = _train_settings(o, plan)
    runs = run.out / "train"
    with run.clock.step("teacher", f"{o.teacher}, {plan.teacher_steps} steps of {plan.teacher_batch_size}"):
        s = replace(base, model=o.teacher, steps=plan.teacher_steps, batch_size=plan.teacher_batch_size,
                    max_minutes=_hard_stop(plan.shares_s["teacher"], plan.tiny))
        run.trained["teacher"] = train_model("teacher", s, run.train_set, runs / "teacher")
    with run.clock.step("student_kd", f"{o.student}, {plan.student_steps} steps of {plan.batch_size}, distilled from {o.teacher}"):
        s = replace(base, distill=True, teacher_cache=plan.teacher_cache, max_minutes=_hard_stop(plan.shares_s["student_kd"], plan.tiny))
        run.trained["student_kd"] = train_model("student_kd", s, run.train_set, runs / "student_kd", teacher=run.trained["teacher"])
    with run.clock.step("student_plain", f"{o.student}, {plan.student_steps} steps of {plan.batch_size}, no teacher"):
        s = replace(base, max_minutes=_hard_stop(plan.shares_s["student_plain"], plan.tiny))
        run.trained["student_plain"] = train_model("student_plain", s, run.train_set, runs / "student_plain")


def step_evaluate(run: _Run) -> None:
    """Held-out verification of the three models, their ROC curves and the training-loss curves."""
    pairs, trained = run.pairs, run.trained
    with run.clock.step("evaluate", f"{pairs.num_pairs} pairs of {run.held.num_identities} held-out identities"):
        for key in MODEL_KEYS:
            run.verifications[key] = verify(trained[key].model, pairs, device="cpu", batch_size=run.plan.eval_batch,
                                            progress=run.options.progress)
        curves = {}
        for key in MODEL_KEYS:
            v = run.verifications[key]
            curves[f"{_label(key, trained[key].name)}: acc {100 * v.metrics['accuracy']:.1f}%, AUC {v.metrics['auc']:.3f}"] = (v.fpr, v.tpr)
        plot_rocs(curves, run.out / "roc.png", int((~pairs.issame).sum()), f"Held-out verification ({pairs.num_pairs} pairs)")
        t, kd, plain = trained["teacher"], trained["student_kd"], trained["student_plain"]
        loss_curves = {
            f"teacher {t.name} (CosFace)": t.loss_cls,
            f"student {kd.name} + KD: CosFace part": kd.loss_cls,
            f"student {plain.name}, no KD (CosFace)": plain.loss_cls,
        }
        if kd.loss_dis:
            what = "1 - cos" if kd.settings.distill_kind == "cosine" else kd.settings.distill_kind.upper()
            loss_curves[f"student + KD: distillation part ({kd.settings.distill_alpha:g} x ({what}))"] = kd.loss_dis
        plot_loss_curves(loss_curves, run.out / "loss_curves.png", "Training loss per step")


def step_reparameterize(run: _Run) -> None:
    """Deploy forms, their parity with the train forms, the weight files (both forms of every model)."""
    images = run.pairs.images[: run.plan.parity_images]
    with run.clock.step("reparameterize", "fold BatchNorm, 1x1 branches and residuals"):
        for key in MODEL_KEYS:
            t = run.trained[key]
            run.deploys[key], run.checks[key] = reparameterize_and_check(key, t.name, t.model, images, run.out / "weights")
        if run.plan.deploy_verification:
            deploy_verification(run.deploys["student_kd"], run.pairs, run.verifications["student_kd"], run.checks["student_kd"],
                                batch_size=run.plan.eval_batch, progress=run.options.progress)


def step_onnx(run: _Run) -> None:
    """The distilled student's deploy form to ONNX, checked in ONNX Runtime."""
    path = run.out / f"{run.options.student}_kd.onnx"
    with run.clock.step("onnx", path.name):
        run.onnx = export_and_check(run.deploys["student_kd"], path, run.pairs.images[: run.plan.parity_images],
                                    threads=run.options.threads)


def step_benchmark(run: _Run) -> None:
    """Latency of train form, deploy form, TorchScript, ONNX Runtime, the teacher and the peer."""
    bench = run.plan.bench
    with run.clock.step("benchmark", f"batch {', '.join(map(str, bench.batch_sizes))}, {_n_threads(bench.threads)}"):
        run.bench_rows, run.peer_info = _benchmark(run.options, run.plan, run.trained, run.deploys, run.onnx)


def step_report(run: _Run) -> None:
    """results.json, report.md and report.html (written again after the step, with its own time)."""
    r = run.results
    with run.clock.step("report", str(run.out)):
        r.update(
            {
                "plan": run.plan.to_dict(),
                "models": {k: _model_summary(run.trained[k]) for k in MODEL_KEYS},
                "verification": {k: _verification_summary(run.verifications[k]) for k in MODEL_KEYS},
                "deploy": {k: run.checks[k].to_dict() for k in MODEL_KEYS},
                "onnx": run.onnx.to_dict(),
                "benchmark": [vars(row) for row in run.bench_rows],
                "peer": run.peer_info,
            }
        )
        r["distillation"] = _distillation_summary(r)
        r["paper"] = _paper_recipe()
        r["checks_passed"] = all(c.passed() for c in run.checks.values()) and run.onnx.passed()
        _finish_results(run)
    _finish_results(run)


def _finish_results(run: _Run) -> None:
    r = run.results
    r["step_seconds"] = dict(run.clock.seconds)
    r["load_average_end"] = _load_average()
    r["wall_seconds"] = time.perf_counter() - run.wall_start
    r["files"] = _list_files(run.out)
    _write_json(r, run.out / "results.json")
    write_report(build_report(r), run.out)


def _n_threads(n: int) -> str:
    return f"{n} thread" + ("" if n == 1 else "s")


def _label(key: str, name: str) -> str:
    return {"teacher": f"teacher {name}", "student_kd": f"{name} + KD", "student_plain": f"{name} plain"}[key]


def _benchmark(options, plan, trained, deploys, onnx_check: OnnxCheck) -> tuple[list, dict[str, Any]]:
    torch.manual_seed(options.seed)
    peer_train = create_model(options.peer).eval()
    peer_deploy = reparameterize_model(peer_train)
    info: dict[str, Any] = {"name": options.peer, "weights": "random weights (latency does not depend on them)",
                            "onnx_error": None, "torchscript_error": None}
    s, t = options.student, options.teacher
    cand: dict[str, tuple] = {
        f"{s} train form": (s, "train", "PyTorch eager", trained["student_kd"].model, trained["student_kd"].model),
        f"{s} deploy form": (s, "deploy", "PyTorch eager", deploys["student_kd"], deploys["student_kd"]),
    }
    try:
        optimized = facelivt.optimize_for_inference(deploys["student_kd"], "torchscript")
        cand[f"{s} deploy form, TorchScript (optimize_for_inference)"] = (s, "deploy", "TorchScript", optimized, deploys["student_kd"])
    except RuntimeError as exc:  # an optional row: report it and go on
        info["torchscript_error"] = str(exc)
    if onnx_check.passed():
        cand[f"{s} deploy form, ONNX Runtime"] = (s, "deploy", "ONNX Runtime", Path(onnx_check.path), deploys["student_kd"])
    cand[f"{t} (teacher) deploy form"] = (t, "deploy", "PyTorch eager", deploys["teacher"], deploys["teacher"])
    cand[f"{options.peer} deploy form"] = (options.peer, "deploy", "PyTorch eager", peer_deploy, peer_deploy)
    with tempfile.TemporaryDirectory() as tmp:
        peer_onnx = Path(tmp) / f"{options.peer}.onnx"
        try:
            export_onnx(peer_deploy, peer_onnx)
            cand[f"{options.peer} deploy form, ONNX Runtime"] = (options.peer, "deploy", "ONNX Runtime", peer_onnx, peer_deploy)
        except (RuntimeError, ValueError, ImportError) as exc:  # the peer's export is not this run's check
            info["onnx_error"] = f"{type(exc).__name__}: {exc}"
        rows = benchmark(cand, plan.bench, progress=options.progress)
    return rows, info


def _paper_recipe() -> dict[str, Any]:
    """The paper's recipe as the library holds it (published counts of its teacher, the released
    margin and distillation defaults), for the report's comparisons."""
    teacher = VARIANTS["facelivt_l_mhsa"]
    cosface, distill = margin_loss("cosface"), DistillConfig()
    return {
        "teacher": "facelivt_l_mhsa",
        "teacher_params_m": teacher.reference_counts[0] if teacher.reference_counts else None,
        "teacher_macs_m": teacher.reference_counts[1] if teacher.reference_counts else None,
        "cosface_s": cosface.s,
        "cosface_m": cosface.m3,
        "distill_kind": distill.kind,
        "distill_alpha": distill.alpha,
    }


def _model_summary(t: TrainedModel) -> dict[str, Any]:
    r = t.result
    s = t.settings
    return {
        "name": t.name,
        "role": t.key,
        "head": s.head,
        "steps": r.steps,
        "planned_steps": r.total_steps,
        "stopped": r.stopped,
        "batch_size": s.batch_size,
        "images_seen": t.images_seen,
        "epochs": t.epochs,
        "num_classes": r.num_classes,
        "train_images": t.num_train_images,
        "seconds": t.seconds,
        "seconds_per_step": t.seconds / max(r.steps, 1),
        "first_loss": t.loss[0] if t.loss else None,
        "final_loss": float(np.mean(t.loss[-max(1, len(t.loss) // 10):])) if t.loss else None,
        "final_loss_cls": float(np.mean(t.loss_cls[-max(1, len(t.loss_cls) // 10):])) if t.loss_cls else None,
        "final_loss_dis": float(np.mean(t.loss_dis[-max(1, len(t.loss_dis) // 10):])) if t.loss_dis else None,
        "settings": vars(s).copy(),
        "loss": t.loss,
        "loss_cls": t.loss_cls,
        "loss_dis": t.loss_dis,
    }


def _verification_summary(v: Verification) -> dict[str, Any]:
    m = dict(v.metrics)
    m["seconds"] = v.seconds
    return m


def _distillation_summary(results: dict[str, Any]) -> dict[str, Any]:
    v = results["verification"]
    kd, plain, teacher = v["student_kd"], v["student_plain"], v["teacher"]
    diff = kd["accuracy"] - plain["accuracy"]
    # the 10-fold standard deviations give a rough scale for what counts as a difference
    noise = float(np.hypot(kd["accuracy_std"], plain["accuracy_std"]) / np.sqrt(10))
    if diff > 2 * noise:
        verdict = "helped"
    elif diff < -2 * noise:
        verdict = "hurt"
    else:
        verdict = "no clear difference"
    return {
        "accuracy_kd_minus_plain": diff,
        "auc_kd_minus_plain": (kd["auc"] or 0.0) - (plain["auc"] or 0.0),
        "eer_kd_minus_plain": (kd["eer"] or 0.0) - (plain["eer"] or 0.0),
        "teacher_minus_plain": teacher["accuracy"] - plain["accuracy"],
        "standard_error": noise,
        "verdict": verdict,
    }


def _list_files(out: Path) -> list[dict[str, Any]]:
    files = []
    for p in sorted(out.rglob("*")):
        if p.is_file() and "aligned" not in p.relative_to(out).parts:
            files.append({"path": str(p.relative_to(out)), "bytes": p.stat().st_size})
    return files


def _write_json(results: dict[str, Any], path: Path) -> None:
    def default(o: Any) -> Any:
        if isinstance(o, (np.integer,)):
            return int(o)
        if isinstance(o, (np.floating,)):
            return float(o)
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, Path):
            return str(o)
        return str(o)

    write_text(path, json.dumps(results, indent=1, default=default))
