"""The content of the quickstart report, built only from the numbers of ``results.json``."""
from __future__ import annotations

from typing import Any

from .steps import STEPS
from .report import Bullets, Figure, Heading, Para, Report, Table, pct

ROLE_LABEL = {"teacher": "teacher", "student_kd": "student, distilled", "student_plain": "student, no distillation"}
STEP_TITLES = dict(STEPS)


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _m(x: float, digits: int = 2) -> str:
    return f"{x / 1e6:.{digits}f}"


def _s(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


def _f(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _g(x: float | None) -> str:
    return "-" if x is None else f"{x:.2g}"


def _acc(m: dict[str, Any]) -> str:
    return f"{100 * m['accuracy']:.2f} +- {100 * m['accuracy_std']:.2f}"


def _distill_formula(ks: dict[str, Any]) -> str:
    a, kind = ks["distill_alpha"], ks["distill_kind"]
    if kind == "cosine":
        return f"{a:g} * (1 - cos(student, teacher))"
    what = "normalised embeddings" if ks.get("distill_normalize") else "raw embeddings"
    return f"{a:g} * {kind.upper()}(student, teacher), {what}"


def _headline(r: dict[str, Any]) -> list[str]:
    v, d, models = r["verification"], r["distillation"], r["models"]
    t, kd, pl = models["teacher"]["name"], models["student_kd"]["name"], models["student_plain"]["name"]
    items = [
        f"Held-out verification accuracy ({r['data']['pairs']} pairs of {r['data']['heldout_identities']} identities never "
        f"seen in training, 10-fold protocol): teacher {t} **{pct(v['teacher']['accuracy'])}%**, "
        f"{kd} distilled **{pct(v['student_kd']['accuracy'])}%**, {pl} without distillation **{pct(v['student_plain']['accuracy'])}%** "
        "(chance: 50%).",
        _distillation_sentence(r),
    ]
    dep = r["deploy"]["student_kd"]
    items.append(
        f"Deploy form of {kd}: {dep['batchnorm_train']} BatchNorm layers folded to {dep['batchnorm_deploy']}, "
        f"{_m(dep['params_train'], 3)} M -> {_m(dep['params_deploy'], 3)} M parameters; same embeddings as the train form "
        f"(max |diff| {_g(dep['parity']['max_abs_diff'])}, min cosine {dep['parity']['min_cosine']:.6f})"
        + (f"; held-out accuracy recomputed with it: {pct(dep['heldout_accuracy_deploy'])}%." if dep.get("heldout_accuracy_deploy") is not None else ".")
    )
    o = r["onnx"]
    if o["passed"]:
        items.append(f"ONNX export checked with ONNX Runtime: max |diff| {_g(o['parity']['max_abs_diff'])}, min cosine {o['parity']['min_cosine']:.6f}.")
    else:
        items.append(f"ONNX export: **FAILED** ({o['error'] or 'parity below threshold'}).")
    items.extend(_latency_sentences(r))
    items.append(f"Whole run: **{r['wall_seconds'] / 60:.1f} min** wall time (budget {r['options']['budget_minutes']:g} min).")
    return items


def _compare(a_label: str, a_ms: float, b_label: str, b_ms: float) -> str:
    if a_ms <= b_ms:
        return f"{a_label} is {b_ms / a_ms:.2f}x faster than {b_label}"
    return f"{b_label} is {a_ms / b_ms:.2f}x faster than {a_label}"


def _latency_sentences(r: dict[str, Any]) -> list[str]:
    b = _bench_map(r)
    s, peer, threads = r["models"]["student_kd"]["name"], r["peer"]["name"], r["machine"]["threads"]
    tr, de = b.get(f"{s} train form"), b.get(f"{s} deploy form")
    out = []
    if not (tr and de and "1" in tr["latency_ms"]):
        return out
    t1, d1 = tr["latency_ms"]["1"], de["latency_ms"]["1"]
    text = f"Latency at batch 1 on this CPU ({_n(threads, 'thread')}, PyTorch eager): {s} train form {t1:.2f} ms, deploy form {d1:.2f} ms ({t1 / d1:.2f}x faster)"
    pe = b.get(f"{peer} deploy form")
    if pe:
        text += f"; {peer} deploy form {pe['latency_ms']['1']:.2f} ms: " + _compare(s, d1, peer, pe["latency_ms"]["1"])
    out.append(text + ".")
    so, po = b.get(f"{s} deploy form, ONNX Runtime"), b.get(f"{peer} deploy form, ONNX Runtime")
    if so and po:
        out.append(f"In ONNX Runtime: {s} {so['latency_ms']['1']:.2f} ms, {peer} {po['latency_ms']['1']:.2f} ms: "
                   + _compare(s, so["latency_ms"]["1"], peer, po["latency_ms"]["1"])
                   + " (the paper's latencies were measured on an iPhone 15 Pro, not on a CPU).")
    return out


def _distillation_sentence(r: dict[str, Any]) -> str:
    d = r["distillation"]
    diff = 100 * d["accuracy_kd_minus_plain"]
    se = 100 * d["standard_error"]
    base = f"Distillation: distilled minus plain student = {diff:+.2f} accuracy points (10-fold standard error about {se:.2f})"
    if d["verdict"] == "helped":
        return base + ": in this run distillation **helped**."
    if d["verdict"] == "hurt":
        return base + ": in this run distillation **did not help** (the distilled student is worse)."
    return base + ": in this run there is **no clear difference** between the two students."


def _bench_map(r: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["label"]: row for row in r["benchmark"]}


def _teacher_paragraph(r: dict[str, Any]) -> str:
    models, plan, dep = r["models"], r["plan"], r["deploy"]
    t, s = models["teacher"], models["student_kd"]
    if plan["tiny"]:
        return f"Teacher: **{t['name']}** (the CI-sized run trains every model for a few steps only; the default run explains the choice)."
    cal, paper = plan["calibration"], r["paper"]
    per_image = (cal["teacher_step_s"] / plan["teacher_batch_size"]) / max(cal["student_step_s"] / plan["batch_size"], 1e-9)
    return (
        f"Teacher: **{t['name']}** ({_m(dep['teacher']['params_deploy'], 2)} M parameters, "
        f"{dep['teacher']['macs_deploy'] / 1e6:.0f} M MACs in deploy form, against the student's {_m(dep['student_kd']['params_deploy'], 2)} M and "
        f"{dep['student_kd']['macs_deploy'] / 1e6:.0f} M). The paper distils from FaceLiVT-L-MHSA ({paper['teacher_params_m']:.1f} M "
        f"parameters, {paper['teacher_macs_m']:.0f} M MACs as published, about "
        f"{paper['teacher_macs_m'] * 1e6 / dep['student_kd']['macs_deploy']:.1f}x the student's compute per image): within a few CPU "
        "minutes such a teacher sees too few images to get ahead "
        "of the student, and a distilled student follows its teacher, so a teacher that is not ahead has nothing to teach. "
        f"The MHSA twin of the student costs about {per_image:.1f}x a student's time per training image here (measured), so "
        f"it can be trained first and for longer, as the paper trains its teacher fully before distilling: {t['steps']} steps "
        f"of {t['batch_size']} ({t['images_seen']} images) against the students' {s['steps']} steps of {s['batch_size']} "
        f"({s['images_seen']} images). It gets {t['images_seen'] / max(s['images_seen'], 1):.0f}x the images because the MHSA "
        "variant learns these faces more slowly per image than FaceLiVT-S."
    )


def build_report(r: dict[str, Any]) -> Report:
    """The report's blocks from the results dict of one run."""
    rep = Report("FaceLiVT quickstart report")
    mach, data, plan, models = r["machine"], r["data"], r["plan"], r["models"]
    opts = r["options"]
    cmd = "facelivt quickstart" + (f" --data {opts['data']}" if opts.get("data") else "") + f" --budget {opts['budget_minutes']:g} --out {opts['out']}"
    rep.add(
        Para(
            f"Everything in this report was measured in one run of `{cmd}`, started {r['started']}, on {mach['cpu']} "
            f"({mach['cpu_cores']} logical CPUs, {_n(mach['threads'], 'torch thread')}"
            + (" chosen from the idle cores" if mach.get("threads_auto") else "")
            + f", device `{mach['device']}`), torch {mach['torch']}. "
            f"Load average (1, 5, 15 min) at start {r['load_average_start']}, at end {r['load_average_end']}: "
            "timings depend on what else the machine was doing."
        )
    )
    if plan["tiny"]:
        rep.add(Para("**CI-sized run** (budget under one minute): every step runs on a tiny data set for a few optimiser steps; "
                     "the accuracies and latencies are not meaningful. Run `facelivt quickstart` for the real demo."))
    rep.add(Heading("Summary"), Bullets(_headline(r)))

    # ---- data
    rep.add(Heading("1. Data and the identity split"))
    if data["kind"] == "synthetic":
        rep.add(Para(
            f"Synthetic identities (built in, deterministic, no download): {data['identities']} procedurally drawn faces, "
            f"{plan['synthetic_images_per_identity']} views each (rotation, scale, shift, brightness, contrast, background and "
            "pixel noise vary by view)."
        ))
    else:
        f = data["folder"]
        text = (f"Image folder `{f['root']}`: {f['identities_found']} identities, {f['images_found']} images found; "
                f"{f['identities_used']} identities, {f['images_used']} images used (at most {f['max_images']}, whole identities).")
        if f["aligned"]:
            text += (f" The images are not 112x112 crops: faces were detected with MTCNN and aligned to the ArcFace template "
                     f"({f['cached']} crops reused from `{f['align_dir']}`, {f['no_face']} images without a face, {f['unreadable']} unreadable).")
        rep.add(Para(text))
    rep.add(Table(
        ["", "identities", "images"],
        [
            ["all", str(data["identities"]), str(data["images"])],
            ["training", str(data["train_identities"]), str(data["train_images"])],
            ["held out (verification only)", str(data["heldout_identities"]), str(data["heldout_images"])],
        ],
    ))
    rep.add(Para(
        f"Verification pairs: {data['pairs']} ({data['positive_pairs']} same identity, {data['negative_pairs']} different), "
        f"drawn among the held-out identities only (at most {plan['pair_images_per_identity']} images of each), over "
        f"{data['pair_images']} distinct images."
    ))
    rep.add(Figure("samples.png", "training faces: one identity per row"))

    # ---- training
    rep.add(Heading("2. Teacher, distilled student, plain student"))
    rep.add(Para(_teacher_paragraph(r)))
    ks = models["student_kd"]["settings"]
    m3 = ks.get("margin_m")
    rep.add(Para(
        f"Every model: {ks['head'].upper()} head, {ks['margin']} loss (s = {ks['scale']:g}"
        + (f", m = {m3:g}" if m3 is not None else "")
        + f"), AdamW (lr {ks['lr']:g}, weight decay {ks['weight_decay']:g}, {ks['warmup_steps']} warm-up steps, linear decay to {ks['min_lr']:g}), "
        f"batch {ks['batch_size']} for the students and {models['teacher']['batch_size']} for the teacher, random horizontal flips; "
        "every training identity is a class. Distillation: "
        f"`L = L_cls + {_distill_formula(ks)}`, the frozen teacher in deploy form"
        + (", its embeddings cached per image and flip. " if ks.get("teacher_cache") else ", run on every batch. ")
        + 
        "Both students start from the same random initialisation and see the same batches in the same order."
    ))
    if ks["margin"] == "cosface" and (ks["scale"] != r["paper"]["cosface_s"] or (m3 is not None and m3 != r["paper"]["cosface_m"])):
        rep.add(Para(
            f"The paper trains with CosFace s = {r['paper']['cosface_s']:g}, m = {r['paper']['cosface_m']:g} on Glint360K; on a few "
            f"thousand images and a few hundred steps the smaller s = {ks['scale']:g} and m = {m3:g} learn faster, so the "
            "quickstart uses them for every model."
        ))
    if (ks["distill_kind"], ks["distill_alpha"]) != (r["paper"]["distill_kind"], r["paper"]["distill_alpha"]):
        rep.add(Para(
            f"The released code distils with `{r['paper']['distill_alpha']:g} * {r['paper']['distill_kind'].upper()}` on the raw "
            "embeddings; next to the CosFace loss that term is "
            "too weak to change a student within a few hundred steps, so the quickstart uses the scale-free cosine "
            f"distance with weight {ks['distill_alpha']:g} (`facelivt.losses.DistillationLoss(kind=\"cosine\")`)."
        ))
    rows = []
    for key in ("teacher", "student_kd", "student_plain"):
        m, dep = models[key], r["deploy"][key]
        rows.append([
            ROLE_LABEL[key], m["name"], _m(dep["params_deploy"], 3), f"{dep['macs_deploy'] / 1e6:.1f}",
            f"{m['steps']}" + ("" if m["stopped"] == "completed" else f" of {m['planned_steps']} ({m['stopped']})"),
            str(m["images_seen"]), f"{m['epochs']:.1f}", _s(m["seconds"]), f"{m['seconds_per_step']:.2f}",
            _f(m["first_loss"], 2), _f(m["final_loss_cls"], 2), _f(m["final_loss_dis"], 3),
        ])
    rep.add(Table(
        ["model", "network", "params (M)", "MACs (M)", "steps", "images seen", "epochs", "train time (s)", "s/step",
         "first loss", "final CosFace loss", "final KD loss"],
        rows,
        "Final losses: mean of the last 10% of the steps; the KD loss is already multiplied by alpha. Params and MACs: deploy form, 112x112.",
    ))
    rep.add(Figure("loss_curves.png", "training loss per optimiser step"))

    # ---- verification
    rep.add(Heading("3. Held-out verification"))
    rep.add(Para(
        "Each image is embedded together with its horizontal flip (the two embeddings summed), L2-normalised; distance = squared "
        "Euclidean; 10 contiguous folds, the threshold picked on 9 folds (0 to 4 in steps of 0.01) and the accuracy measured on "
        "the 10th; mean +- standard deviation over folds. TAR@FAR is shown where there are at least 1/FAR mismatched pairs."
    ))
    fars = sorted({k for key in ("teacher", "student_kd", "student_plain") for k in r["verification"][key].get("tar_at_far", {})},
                  key=lambda k: float(k))
    rows = []
    for key in ("teacher", "student_kd", "student_plain"):
        v = r["verification"][key]
        rows.append([ROLE_LABEL[key], models[key]["name"], _acc(v), pct(v.get("auc")), pct(v.get("eer"))]
                    + [pct(v.get("tar_at_far", {}).get(k)) for k in fars])
    rep.add(Table(["model", "network", "accuracy %", "AUC %", "EER %"] + [f"TAR@FAR={k} %" for k in fars], rows))
    d = r["distillation"]
    text = _distillation_sentence(r) + f" The teacher is {100 * d['teacher_minus_plain']:+.2f} points from the plain student."
    if d["teacher_minus_plain"] <= 2 * d["standard_error"]:
        text += (" The teacher is not clearly ahead of the plain student, and a distilled student follows its teacher: "
                 "a larger `--budget` gives the teacher the time to get ahead.")
    rep.add(Para(text))
    rep.add(Figure("roc.png", "ROC curves on the held-out pairs"))

    # ---- reparameterization
    rep.add(Heading("4. Reparameterization: the deploy form"))
    rep.add(Para(
        "`facelivt.reparameterize_model` folds every BatchNorm into the convolution or linear layer next to it, merges the 1x1 "
        "branch of each RepConv into its kxk kernel and the DWMix residual into the depthwise kernel. The deploy form must compute "
        f"the same embeddings: compared on {r['deploy']['student_kd']['parity']['images']} held-out crops; the saved deploy weights are "
        "loaded back with `facelivt.models.load_model` and compared again."
    ))
    rows = []
    for key in ("teacher", "student_kd", "student_plain"):
        d = r["deploy"][key]
        rows.append([
            ROLE_LABEL[key], d["name"], f"{d['batchnorm_train']} -> {d['batchnorm_deploy']}",
            f"{_m(d['params_train'], 3)} -> {_m(d['params_deploy'], 3)}", f"{d['macs_train'] / 1e6:.1f} -> {d['macs_deploy'] / 1e6:.1f}",
            _g(d["parity"]["max_abs_diff"]), f"{d['parity']['min_cosine']:.7f}", _g(d["reload_parity"]["max_abs_diff"]),
            "pass" if d["passed"] else "**FAIL**",
        ])
    rep.add(Table(["model", "network", "BatchNorm layers", "params (M)", "MACs (M)", "max abs diff", "min cosine",
                   "reloaded: max abs diff", "check"], rows))
    dk = r["deploy"]["student_kd"]
    if dk.get("heldout_accuracy_deploy") is not None:
        rep.add(Para(
            f"The distilled student's held-out verification recomputed with the deploy form: accuracy {pct(dk['heldout_accuracy_deploy'])}% "
            f"(train form {pct(r['verification']['student_kd']['accuracy'])}%), largest embedding difference over all "
            f"{r['data']['pair_images']} pair images {_g(dk['heldout_max_abs_diff'])}."
        ))

    # ---- onnx
    rep.add(Heading("5. ONNX export"))
    o = r["onnx"]
    if o["passed"] or o["parity"]:
        p = o["parity"]
        rep.add(Table(
            ["file", "size (MB)", "crops compared", "max abs diff", "min cosine", "mean cosine", "check"],
            [[o["path"].split("/")[-1], f"{o['size_bytes'] / 1e6:.1f}", str(p["images"]), _g(p["max_abs_diff"]),
              f"{p['min_cosine']:.7f}", f"{p['mean_cosine']:.7f}", "pass" if o["passed"] else "**FAIL**"]],
            "The deploy form of the distilled student, dynamic batch, run in ONNX Runtime (all graph optimisations) on the same "
            "crops as PyTorch, as one batch and one image at a time.",
        ))
    else:
        rep.add(Para(f"**The ONNX export failed**: {o['error']}"))

    # ---- benchmark
    rep.add(Heading("6. Latency"))
    bench = r["benchmark"]
    batches = list(bench[0]["latency_ms"]) if bench else []
    s = models["student_kd"]["name"]
    ref = _bench_map(r).get(f"{s} train form")
    bp = r["plan"]["bench"]
    rep.add(Para(
        f"Median wall-clock time of one forward pass, {_n(bp['threads'], 'thread')}, after {bp['warmup']} warm-up passes; "
        f"{bp['runs']} timed passes at batch 1 (a quarter of that at larger batches), the candidates interleaved over {bp['rounds']} "
        f"rounds so that load changes hit all alike. The peer {r['peer']['name']} runs with {r['peer']['weights']}."
        + (f" {r['machine']['cpu_capability']}." if r["machine"].get("cpu_capability") else "")
    ))
    rows = []
    for row in bench:
        cells = [row["label"], row["runtime"], f"{row['params_m']:.3f}", f"{row['macs_m']:.1f}"]
        for b in batches:
            cells.append(f"{row['latency_ms'][b]:.2f} ({row['p10_ms'][b]:.2f}-{row['p90_ms'][b]:.2f})")
        if ref:
            cells.append(f"{ref['latency_ms'][batches[0]] / row['latency_ms'][batches[0]]:.2f}x")
        rows.append(cells)
    rep.add(Table(
        ["model", "runtime", "params (M)", "MACs (M)"] + [f"batch {b}: ms (p10-p90)" for b in batches]
        + ([f"speed vs train form (batch {batches[0]})"] if ref else []),
        rows,
    ))
    if r["peer"].get("onnx_error"):
        rep.add(Para(f"The peer's ONNX export failed: {r['peer']['onnx_error']}"))
    if r["peer"].get("torchscript_error"):
        rep.add(Para(f"`optimize_for_inference` (TorchScript) failed, so its row is missing: {r['peer']['torchscript_error']}"))

    # ---- times
    rep.add(Heading("7. Wall time per step"))
    total = r["wall_seconds"]
    rows = [[STEP_TITLES.get(k, k), f"{v:.1f}", f"{100 * v / total:.0f}%"] for k, v in r["step_seconds"].items()]
    rows.append(["whole run (Python start-up not included)", f"{total:.1f}", "100%"])
    rep.add(Table(["step", "seconds", "share"], rows))
    cal = plan["calibration"]
    if not plan["tiny"]:
        rep.add(Para(
            f"Plan: budget {opts['budget_minutes']:g} min; a training step measured {cal['student_step_s']:.2f} s for the student "
            f"at batch {plan['batch_size']} and {cal['teacher_step_s']:.2f} s for the teacher at batch {plan['teacher_batch_size']} "
            "before training; the three training runs "
            f"were given {sum(plan['shares_s'].values()) / 60:.1f} min and each a hard stop at twice its share."
            + (f" This machine was too slow for the budget: the students' steps were raised to the floor of "
               f"{plan['min_student_steps']}, so the run took longer than the budget." if plan.get("floor_applied") else "")
        ))

    # ---- files
    rep.add(Heading("8. Files"))
    rows = [[f"`{f['path']}`", f"{f['bytes'] / 1e6:.2f}"] for f in r["files"]]
    rep.add(Table(["file", "MB"], rows, "Weights: `weights/<model>.safetensors` (train form) and `weights/<model>_deploy.safetensors` "
                  "(deploy form); load either with `facelivt.models.load_model(name, path)`. Training logs: `train/<model>/log.jsonl`."))
    return rep
