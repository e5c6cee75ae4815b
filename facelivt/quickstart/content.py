"""The content of the quickstart report, built only from the numbers of ``results.json``
(:class:`facelivt.quickstart.results.RunSummary`): one function per section."""
from __future__ import annotations

from facelivt.deploy.parity import Parity

from .plan import MODEL_KEYS
from .report import Bullets, Figure, Heading, Para, Report, Table, pct
from .results import RunSummary
from .steps import STEPS

ROLE_LABEL = {"teacher": "teacher", "student_kd": "student, distilled", "student_plain": "student, no distillation"}
R = RunSummary


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _m(x: float, digits: int = 2) -> str:
    return f"{x / 1e6:.{digits}f}"


def _f(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _g(x: float | None) -> str:
    return "-" if x is None else f"{x:.2g}"


def _parity(p: Parity) -> str:
    return f"max |diff| {_g(p.max_abs_diff)}, min cosine {p.min_cosine:.6f}"


def _ms(r: R, label: str, batch: str = "1") -> float | None:
    row = next((b for b in r.benchmark if b.label == label), None)
    return row.latency_ms.get(batch) if row else None


def _faster(a: str, a_ms: float, b: str, b_ms: float) -> str:
    return f"{a} is {b_ms / a_ms:.2f}x faster than {b}" if a_ms <= b_ms else f"{b} is {a_ms / b_ms:.2f}x faster than {a}"


def build_report(r: R) -> Report:
    """The report's blocks from the numbers of one run."""
    rep = Report("FaceLiVT quickstart report")
    for section in (_intro, _data, _training, _verification, _deploy, _onnx, _latency, _times, _files):
        rep.add(*section(r))
    return rep


def _intro(r: R) -> list:
    mach, qs, data = r.machine, r.config.quickstart, r.config.training.data
    cmd = "facelivt quickstart" + (f" --data {data.root}" if data.type == "folder" else "") + f" --budget {qs.budget_minutes:g} --out {qs.out}"
    blocks = [Para(
        f"Everything in this report was measured in one run of `{cmd}`, started {r.started}, on {mach.cpu} "
        f"({mach.cpu_cores} logical CPUs, {_n(mach.threads, 'torch thread')}" + (" chosen from the idle cores" if mach.threads_auto else "")
        + f", device `{mach.device}`), torch {mach.torch}. Load average (1, 5, 15 min) at start {r.load_average_start}, "
        f"at end {r.load_average_end}: timings depend on what else the machine was doing. The settings are in "
        "`results.json` (`config`, the quickstart's config file with its overrides; `models.*.config`, each training run's).")]
    if r.plan.tiny:
        blocks.append(Para("**CI-sized run** (budget under one minute): every step runs on a tiny data set for a few optimiser "
                           "steps; the accuracies and latencies are not meaningful. Run `facelivt quickstart` for the real demo."))
    return blocks + [Heading("Summary"), Bullets(_headline(r))]


def _headline(r: R) -> list[str]:
    v, names, d = r.verification, {k: m.name for k, m in r.models.items()}, r.data
    dep, o = r.deploy["student_kd"], r.onnx
    items = [
        f"Held-out verification accuracy ({d.pairs} pairs of {d.heldout_identities} identities never seen in training, "
        f"10-fold protocol): teacher {names['teacher']} **{pct(v['teacher'].accuracy)}%**, {names['student_kd']} distilled "
        f"**{pct(v['student_kd'].accuracy)}%**, {names['student_plain']} without distillation **{pct(v['student_plain'].accuracy)}%** (chance: 50%).",
        _distillation_sentence(r),
        f"Deploy form of {names['student_kd']}: {dep.batchnorm_train} BatchNorm layers folded to {dep.batchnorm_deploy}, "
        f"{_m(dep.params_train, 3)} M -> {_m(dep.params_deploy, 3)} M parameters; same embeddings as the train form ({_parity(dep.parity)})"
        + (f"; held-out accuracy recomputed with it: {pct(dep.heldout_accuracy_deploy)}%." if dep.heldout_accuracy_deploy is not None else "."),
        f"ONNX export checked with ONNX Runtime: {_parity(o.parity)}." if o.passed()
        else f"ONNX export: **FAILED** ({o.error or 'parity below threshold'}).",
    ]
    return items + _latency_sentences(r) + [
        f"Whole run: **{r.wall_seconds / 60:.1f} min** wall time (budget {r.config.quickstart.budget_minutes:g} min)."]


def _latency_sentences(r: R) -> list[str]:
    s, peer = r.models["student_kd"].name, r.peer.name
    t1, d1, p1 = _ms(r, f"{s} train form"), _ms(r, f"{s} deploy form"), _ms(r, f"{peer} deploy form")
    if t1 is None or d1 is None:
        return []
    text = (f"Latency at batch 1 on this CPU ({_n(r.machine.threads, 'thread')}, PyTorch eager): {s} train form {t1:.2f} ms, "
            f"deploy form {d1:.2f} ms ({t1 / d1:.2f}x faster)")
    if p1 is not None:
        text += f"; {peer} deploy form {p1:.2f} ms: " + _faster(s, d1, peer, p1)
    out = [text + "."]
    so, po = _ms(r, f"{s} deploy form, ONNX Runtime"), _ms(r, f"{peer} deploy form, ONNX Runtime")
    if so is not None and po is not None:
        out.append(f"In ONNX Runtime: {s} {so:.2f} ms, {peer} {po:.2f} ms: " + _faster(s, so, peer, po)
                   + " (the paper's latencies were measured on an iPhone 15 Pro, not on a CPU).")
    return out


def _distillation_sentence(r: R) -> str:
    d = r.distillation
    base = (f"Distillation: distilled minus plain student = {100 * d.accuracy_kd_minus_plain:+.2f} accuracy points "
            f"(10-fold standard error about {100 * d.standard_error:.2f})")
    return base + {"helped": ": in this run distillation **helped**.",
                   "hurt": ": in this run distillation **did not help** (the distilled student is worse).",
                   }.get(d.verdict, ": in this run there is **no clear difference** between the two students.")


def _data(r: R) -> list:
    d, qs = r.data, r.config.quickstart
    if d.kind == "synthetic":
        text = (f"Synthetic identities (built in, deterministic, no download): {d.identities} procedurally drawn faces, "
                f"{d.images_per_identity} views each (rotation, scale, shift, brightness, contrast, background and pixel noise vary by view).")
    else:
        f = d.folder
        text = (f"Image folder `{f.root}`: {f.identities_found} identities, {f.images_found} images found; "
                f"{f.identities_used} identities, {f.images_used} images used (at most {f.max_images}, whole identities).")
        if f.aligned:
            text += (f" The images are not 112x112 crops: faces were detected with MTCNN and aligned to the ArcFace template "
                     f"({f.cached} crops reused from `{f.align_dir}`, {f.no_face} images without a face, {f.unreadable} unreadable).")
    split = [["all", d.identities, d.images], ["training", d.train_identities, d.train_images],
             ["held out (verification only)", d.heldout_identities, d.heldout_images]]
    return [Heading("1. Data and the identity split"), Para(text),
            Table(["", "identities", "images"], [[str(c) for c in row] for row in split]),
            Para(f"Verification pairs: {d.pairs} ({d.positive_pairs} same identity, {d.negative_pairs} different), drawn "
                 f"among the held-out identities only (at most {qs.pair_images_per_identity} images of each), over {d.pair_images} distinct images."),
            Figure("samples.png", "training faces: one identity per row")]


def _teacher_paragraph(r: R) -> str:
    t, s, plan, dep, paper = r.models["teacher"], r.models["student_kd"], r.plan, r.deploy, r.paper
    if not plan.calibration.get("student_step_s"):
        return f"Teacher: **{t.name}** (the CI-sized run trains every model for a few steps only; the default run explains the choice)."
    cal = plan.calibration
    per_image = (cal["teacher_step_s"] / plan.teacher_batch_size) / max(cal["student_step_s"] / plan.batch_size, 1e-9)
    return (
        f"Teacher: **{t.name}** ({_m(dep['teacher'].params_deploy)} M parameters, {dep['teacher'].macs_deploy / 1e6:.0f} M MACs "
        f"in deploy form, against the student's {_m(dep['student_kd'].params_deploy)} M and {dep['student_kd'].macs_deploy / 1e6:.0f} M). "
        f"The paper distils from FaceLiVT-L-MHSA ({paper.teacher_params_m:.1f} M parameters, {paper.teacher_macs_m:.0f} M MACs as "
        "published): within a few CPU minutes such a teacher sees too few images to get ahead of the student, and a distilled student "
        f"follows its teacher. The MHSA twin of the student costs about {per_image:.1f}x a student's time per training image here "
        f"(measured), so it is trained first and for longer, as the paper trains its teacher fully before distilling: {t.steps} steps "
        f"of {t.batch_size} ({t.images_seen} images) against the students' {s.steps} steps of {s.batch_size} ({s.images_seen} images)."
    )


def _training(r: R) -> list:
    c, paper = r.models["student_kd"].config, r.paper
    loss, optim, dis = c.loss, c.optim, c.distill
    what = f"{dis.alpha:g} * (1 - cos(student, teacher))" if dis.kind == "cosine" else \
        f"{dis.alpha:g} * {dis.kind.upper()}(student, teacher), {'normalised' if dis.normalize else 'raw'} embeddings"
    recipe = (
        f"Every model: {c.model.head.upper()} head, {loss.margin} loss (s = {loss.s:g}" + (f", m = {loss.m3:g}" if loss.m3 is not None else "")
        + f"), AdamW (lr {optim.lr:g}, weight decay {optim.weight_decay:g}, {optim.warmup_steps} warm-up steps, linear decay to "
        f"{optim.min_lr:g}), batch {c.train.batch_size} for the students and {r.models['teacher'].batch_size} for the teacher, "
        f"random horizontal flips; every training identity is a class. Distillation: `L = L_cls + {what}`, the frozen teacher in deploy form"
        + (", its embeddings cached per image and flip. " if dis.cache != "none" else ", run on every batch. ")
        + "Both students start from the same random initialisation and see the same batches in the same order. Against the paper's "
        f"recipe (CosFace s = {paper.cosface_s:g}, m = {paper.cosface_m:g}; distillation {paper.distill_alpha:g} * "
        f"{paper.distill_kind.upper()}) the config file explains each change for a few CPU minutes."
    )
    rows = [[ROLE_LABEL[k], m.name, _m(r.deploy[k].params_deploy, 3), f"{r.deploy[k].macs_deploy / 1e6:.1f}",
             f"{m.steps}" + ("" if m.stopped == "completed" else f" of {m.planned_steps} ({m.stopped})"),
             str(m.images_seen), f"{m.epochs:.1f}", f"{m.seconds:.1f}", f"{m.seconds_per_step:.2f}",
             _f(m.first_loss, 2), _f(m.final_loss_cls, 2), _f(m.final_loss_dis, 3)]
            for k, m in r.models.items()]
    return [Heading("2. Teacher, distilled student, plain student"), Para(_teacher_paragraph(r)), Para(recipe),
            Table(["model", "network", "params (M)", "MACs (M)", "steps", "images seen", "epochs", "train time (s)", "s/step",
                   "first loss", "final CosFace loss", "final KD loss"], rows,
                  "Final losses: mean of the last 10% of the steps; the KD loss is already multiplied by alpha. Params and MACs: deploy form, 112x112."),
            Figure("loss_curves.png", "training loss per optimiser step")]


def _verification(r: R) -> list:
    v, d = r.verification, r.distillation
    fars = sorted({k for key in MODEL_KEYS for k in v[key].tar_at_far}, key=float)
    rows = [[ROLE_LABEL[k], r.models[k].name, f"{100 * v[k].accuracy:.2f} +- {100 * v[k].accuracy_std:.2f}",
             pct(v[k].auc), pct(v[k].eer)] + [pct(v[k].tar_at_far.get(f)) for f in fars] for k in MODEL_KEYS]
    text = _distillation_sentence(r) + f" The teacher is {100 * d.teacher_minus_plain:+.2f} points from the plain student."
    if d.teacher_minus_plain <= 2 * d.standard_error:
        text += (" The teacher is not clearly ahead of the plain student, and a distilled student follows its teacher: "
                 "a larger `--budget` gives the teacher the time to get ahead.")
    return [Heading("3. Held-out verification"),
            Para("Each image is embedded together with its horizontal flip (the two embeddings summed), L2-normalised; distance = squared "
                 "Euclidean; 10 contiguous folds, the threshold picked on 9 folds (0 to 4 in steps of 0.01) and the accuracy measured on "
                 "the 10th; mean +- standard deviation over folds. TAR@FAR is shown where there are at least 1/FAR mismatched pairs."),
            Table(["model", "network", "accuracy %", "AUC %", "EER %"] + [f"TAR@FAR={f} %" for f in fars], rows),
            Para(text), Figure("roc.png", "ROC curves on the held-out pairs")]


def _deploy(r: R) -> list:
    dep = r.deploy
    rows = [[ROLE_LABEL[k], d.name, f"{d.batchnorm_train} -> {d.batchnorm_deploy}", f"{_m(d.params_train, 3)} -> {_m(d.params_deploy, 3)}",
             f"{d.macs_train / 1e6:.1f} -> {d.macs_deploy / 1e6:.1f}", _g(d.parity.max_abs_diff), f"{d.parity.min_cosine:.7f}",
             _g(d.reload_parity.max_abs_diff), "pass" if d.passed() else "**FAIL**"] for k, d in dep.items()]
    blocks = [Heading("4. Reparameterization: the deploy form"), Para(
        "`facelivt.reparameterize_model` folds every BatchNorm into the convolution or linear layer next to it, merges the 1x1 branch "
        "of each RepConv into its kxk kernel and the DWMix residual into the depthwise kernel. The deploy form must compute the same "
        f"embeddings: compared on {dep['student_kd'].parity.images} held-out crops; the saved deploy weights are loaded back with "
        "`facelivt.models.load_model` and compared again."),
        Table(["model", "network", "BatchNorm layers", "params (M)", "MACs (M)", "max abs diff", "min cosine", "reloaded: max abs diff", "check"], rows)]
    dk = dep["student_kd"]
    if dk.heldout_accuracy_deploy is not None:
        blocks.append(Para(
            f"The distilled student's held-out verification recomputed with the deploy form: accuracy {pct(dk.heldout_accuracy_deploy)}% "
            f"(train form {pct(r.verification['student_kd'].accuracy)}%), largest embedding difference over all "
            f"{r.data.pair_images} pair images {_g(dk.heldout_max_abs_diff)}."))
    return blocks


def _onnx(r: R) -> list:
    o, p = r.onnx, r.onnx.parity
    if p is None:
        return [Heading("5. ONNX export"), Para(f"**The ONNX export failed**: {o.error}")]
    row = [o.path.split("/")[-1], f"{o.size_bytes / 1e6:.1f}", str(p.images), _g(p.max_abs_diff),
           f"{p.min_cosine:.7f}", f"{p.mean_cosine:.7f}", "pass" if o.passed() else "**FAIL**"]
    return [Heading("5. ONNX export"), Table(
        ["file", "size (MB)", "crops compared", "max abs diff", "min cosine", "mean cosine", "check"], [row],
        "The deploy form of the distilled student, dynamic batch, run in ONNX Runtime (all graph optimisations) on the same crops "
        "as PyTorch, as one batch and one image at a time.")]


def _latency(r: R) -> list:
    bench, qs, peer = r.benchmark, r.config.quickstart, r.peer
    batches = list(bench[0].latency_ms) if bench else []
    ref = _ms(r, f"{r.models['student_kd'].name} train form", batches[0]) if batches else None
    rows = [[b.label, b.runtime, f"{b.params_m:.3f}", f"{b.macs_m:.1f}"]
            + [f"{b.latency_ms[k]:.2f} ({b.p10_ms[k]:.2f}-{b.p90_ms[k]:.2f})" for k in batches]
            + ([f"{ref / b.latency_ms[batches[0]]:.2f}x"] if ref else []) for b in bench]
    blocks = [Heading("6. Latency"), Para(
        f"Median wall-clock time of one forward pass, {_n(r.machine.threads, 'thread')}, after {qs.bench_warmup} warm-up passes; "
        f"{qs.bench_runs} timed passes at batch 1 (a quarter of that at larger batches), the candidates interleaved over "
        f"{qs.bench_rounds} rounds so that load changes hit all alike. The peer {peer.name} runs with {peer.weights}."
        + (f" {r.machine.cpu_capability}." if r.machine.cpu_capability else "")),
        Table(["model", "runtime", "params (M)", "MACs (M)"] + [f"batch {b}: ms (p10-p90)" for b in batches]
              + ([f"speed vs train form (batch {batches[0]})"] if ref else []), rows)]
    if peer.onnx_error:
        blocks.append(Para(f"The peer's ONNX export failed: {peer.onnx_error}"))
    if peer.torchscript_error:
        blocks.append(Para(f"`optimize_for_inference` (TorchScript) failed, so its row is missing: {peer.torchscript_error}"))
    return blocks


def _times(r: R) -> list:
    total, plan, titles = r.wall_seconds, r.plan, dict(STEPS)
    rows = [[titles.get(k, k), f"{v:.1f}", f"{100 * v / total:.0f}%"] for k, v in r.step_seconds.items()]
    rows.append(["whole run (Python start-up not included)", f"{total:.1f}", "100%"])
    blocks = [Heading("7. Wall time per step"), Table(["step", "seconds", "share"], rows)]
    cal = plan.calibration
    if cal.get("student_step_s"):
        blocks.append(Para(
            f"Plan: budget {r.config.quickstart.budget_minutes:g} min; a training step measured {cal['student_step_s']:.2f} s for the "
            f"student at batch {plan.batch_size} and {cal['teacher_step_s']:.2f} s for the teacher at batch {plan.teacher_batch_size} "
            f"before training; the three training runs were given {sum(plan.shares_s.values()) / 60:.1f} min and each a hard stop at "
            "twice its share." + (f" This machine was too slow for the budget: the students' steps were raised to the floor of "
                                  f"{plan.min_student_steps}, so the run took longer than the budget." if plan.floor_applied else "")))
    return blocks


def _files(r: R) -> list:
    rows = [[f"`{f.path}`", f"{f.bytes / 1e6:.2f}"] for f in r.files]
    return [Heading("8. Files"), Table(["file", "MB"], rows,
                                       "Weights: `weights/<model>.safetensors` (train form) and `weights/<model>_deploy.safetensors` "
                                       "(deploy form); load either with `facelivt.models.load_model(name, path)`. Training logs: "
                                       "`train/<model>/log.jsonl`, each run's config: `train/<model>/config.yaml`.")]
