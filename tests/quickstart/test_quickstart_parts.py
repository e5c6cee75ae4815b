"""The quickstart's pieces: options and the budget plan, data in memory, identity split and pairs,
image folders (aligned crops and photos that need MTCNN), the report writer, and CLI errors."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facelivt.cli import main
from facelivt.data import FaceArray
from facelivt.quickstart import base_plan, load_quickstart_config, plan_steps
from facelivt.quickstart.data import folder_faces, make_pairs, needs_alignment, split_faces, synthetic_faces
from facelivt.quickstart.plan import auto_threads
from facelivt.quickstart.checks import Verification
from facelivt.quickstart.results import distillation_summary as _distillation_summary
from facelivt.quickstart.runs import keep_weights
from facelivt.quickstart.plots import smooth
from facelivt.quickstart.report import Bullets, Figure, Heading, Para, Report, Table, to_html, to_markdown
from facelivt.training import TrainResult
from image_helpers import huge_png

REPO = Path(__file__).resolve().parents[2]
CELEBA = REPO / ".." / "shared" / "data" / "celeba_subset"


# ------------------------------------------------------------------------------- options and plan

# The old QuickstartOptions fields, as overrides of the quickstart's config file.
_KEYS = {"budget_minutes": ["quickstart.budget_minutes"], "threads": ["train.num_threads"], "teacher": ["distill.teacher"],
         "head": ["model.head"], "max_images": ["quickstart.max_images", "quickstart.max_align_images"],
         "data": ["data.type=folder", "data.root"]}


def _options(**kwargs):
    overrides = []
    for name, value in kwargs.items():
        overrides += [key if "=" in key else f"{key}={value}" for key in _KEYS[name]]
    return load_quickstart_config(overrides=overrides)



@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"budget_minutes": 0}, ValueError),
        ({"budget_minutes": -1}, ValueError),
        ({"threads": 0}, ValueError),
        ({"teacher": "resnet50"}, ValueError),
        ({"head": "avg"}, ValueError),
        ({"max_images": 3}, ValueError),
        ({"data": "/no/such/folder"}, FileNotFoundError),
    ],
)
def test_bad_options_are_refused(kwargs, error):
    with pytest.raises(error):
        _options(**kwargs)


def test_plan_fits_the_training_share_of_the_budget():
    opts = _options(budget_minutes=6, threads=1)
    TEACHER_STEP_RATIO, TRAIN_SHARE = opts.quickstart.teacher_step_ratio, opts.quickstart.train_share
    plan = plan_steps(base_plan(opts), student_step_s=0.25, teacher_step_s=0.6, num_train_images=1920)
    assert not plan.tiny and not plan.floor_applied
    assert plan.teacher_steps == round(TEACHER_STEP_RATIO * plan.student_steps)
    assert plan.teacher_batch_size == 2 * plan.batch_size
    budget = TRAIN_SHARE * 6 * 60
    assert 0.95 * budget <= sum(plan.shares_s.values()) <= budget + 1e-6
    # a slower machine gets fewer steps for the same budget
    slow = plan_steps(base_plan(opts), student_step_s=0.4, teacher_step_s=0.96, num_train_images=1920)
    assert slow.student_steps < 0.7 * plan.student_steps
    assert sum(slow.shares_s.values()) <= budget + 1e-6


def test_plan_keeps_a_floor_of_steps_on_a_slow_machine():
    opts = _options(budget_minutes=6)
    TRAIN_SHARE = opts.quickstart.train_share
    plan = plan_steps(base_plan(opts), 5.0, 12.0, num_train_images=1920)
    assert plan.floor_applied and plan.student_steps == plan.min_student_steps >= 40
    assert sum(plan.shares_s.values()) > TRAIN_SHARE * 6 * 60  # the run will take longer than the budget
    small = plan_steps(base_plan(_options(budget_minutes=2)), 5.0, 12.0, num_train_images=1920)
    assert 10 <= small.student_steps < plan.student_steps  # the floor scales with the budget


def test_quick_plan_is_ci_sized_and_ignores_step_times():
    opts = _options(budget_minutes=0.5, threads=1)
    plan = plan_steps(base_plan(opts), 10.0, 10.0, 72)
    assert plan.tiny and plan.student_steps <= 5 and plan.teacher_steps <= 5
    assert plan.num_identities * opts.training.data.images_per_identity <= 200


def test_max_images_option_overrides_the_plan():
    plan = base_plan(_options(budget_minutes=6, max_images=300))
    assert plan.max_images == plan.max_align_images == 300


def test_auto_threads_is_within_the_cores():
    import os

    assert 1 <= auto_threads() <= (os.cpu_count() or 1)


# --------------------------------------------------------------------------------------- data


def test_face_array_checks_its_input():
    with pytest.raises(ValueError, match="uint8"):
        FaceArray(np.zeros((2, 112, 112, 3), np.float32), np.zeros(2), ["a"])
    with pytest.raises(ValueError, match="labels"):
        FaceArray(np.zeros((2, 112, 112, 3), np.uint8), np.zeros(3), ["a"])
    with pytest.raises(ValueError, match="labels must lie"):
        FaceArray(np.zeros((2, 112, 112, 3), np.uint8), np.array([0, 5]), ["a", "b"])


def test_split_is_by_identity_and_pairs_are_balanced():
    faces = synthetic_faces(12, 5, seed=1, progress=False)
    image, label = faces[7]
    assert tuple(image.shape) == (3, 112, 112) and label == 1 and float(image.abs().max()) <= 1.0
    train, held = split_faces(faces, 0.25, seed=0)
    assert len(train) + len(held) == len(faces)
    assert not set(train.labels.tolist()) & set(held.labels.tolist())
    assert held.num_identities == 3
    pairs = make_pairs(held, 40, seed=0)
    assert pairs.num_pairs == 40 and pairs.issame.sum() == 20
    rows = pairs.pair_rows.reshape(-1, 2)
    same = pairs.labels[rows[:, 0]] == pairs.labels[rows[:, 1]]
    assert np.array_equal(same, pairs.issame)
    assert (rows[:, 0] != rows[:, 1]).all()
    with pytest.raises(ValueError, match="even number"):
        make_pairs(held, 21)


def test_limit_per_identity_keeps_the_first_images():
    from facelivt.quickstart.data import limit_per_identity

    faces = synthetic_faces(3, 5, progress=False)
    few = limit_per_identity(faces, 2)
    assert len(few) == 6 and np.bincount(few.labels).tolist() == [2, 2, 2]
    assert np.array_equal(few.images[0], faces.images[0]) and np.array_equal(few.images[2], faces.images[5])
    with pytest.raises(ValueError):
        limit_per_identity(faces, 1)


def test_split_needs_a_held_out_identity():
    faces = synthetic_faces(4, 2, progress=False)
    with pytest.raises(ValueError, match="held-out split is empty"):
        split_faces(faces, 0.0)


def _write_folder(root: Path, ids: int, per: int, size: int = 112) -> None:
    faces = synthetic_faces(ids, per, seed=3, progress=False)
    for i in range(len(faces)):
        d = root / f"person{faces.labels[i]:02d}"
        d.mkdir(parents=True, exist_ok=True)
        img = Image.fromarray(faces.images[i])
        if size != 112:
            img = img.resize((size, size))
        img.save(d / f"{i:03d}.png")


def test_folder_of_aligned_crops_is_read_without_detection(tmp_path):
    _write_folder(tmp_path / "data", 6, 3)
    (tmp_path / "data" / "lonely").mkdir()
    Image.fromarray(np.zeros((112, 112, 3), np.uint8)).save(tmp_path / "data" / "lonely" / "a.png")
    faces, info = folder_faces(tmp_path / "data", max_images=12, seed=0, progress=False)
    assert not info.aligned and info.identities_found == 7 and info.images_found == 19
    assert len(faces) == 12 and faces.num_identities == 4  # whole identities up to the cap
    assert "lonely" not in faces.classes  # a single image gives no matched pair
    assert faces.images.dtype == np.uint8 and faces.images.shape[1:] == (112, 112, 3)


def test_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        folder_faces(tmp_path / "missing", progress=False)
    for i in range(2):
        (tmp_path / "one" / f"p{i}").mkdir(parents=True)
        Image.fromarray(np.zeros((112, 112, 3), np.uint8)).save(tmp_path / "one" / f"p{i}" / "a.png")
    with pytest.raises(ValueError, match="at least 2 images"):
        folder_faces(tmp_path / "one", progress=False)
    _write_folder(tmp_path / "big", 2, 2, size=160)
    with pytest.raises(ValueError, match="align_dir"):
        folder_faces(tmp_path / "big", progress=False)


def test_needs_alignment_looks_at_the_image_size(tmp_path):
    _write_folder(tmp_path / "a", 1, 2)
    _write_folder(tmp_path / "b", 1, 2, size=150)
    assert not needs_alignment(sorted(str(p) for p in (tmp_path / "a").rglob("*.png")))
    assert needs_alignment(sorted(str(p) for p in (tmp_path / "b").rglob("*.png")))
    # a file Pillow refuses to open (2.5 GP) is passed over like an unreadable one, not a traceback
    crops = sorted(str(p) for p in (tmp_path / "a").rglob("*.png"))
    assert not needs_alignment([str(huge_png(tmp_path / "bomb.png", 50_000, 50_000))] + crops)


def _copy_photos(src: Path, identities: int, per_identity: int = 2) -> Path:
    """The first photos of the first celeba identities, copied to ``src`` (photos, not crops)."""
    assert CELEBA.is_dir(), f"shared data missing: {CELEBA}"
    for ident in sorted(p for p in CELEBA.iterdir() if p.is_dir())[:identities]:
        (src / ident.name).mkdir(parents=True)
        for f in sorted(ident.iterdir())[:per_identity]:
            (src / ident.name / f.name).write_bytes(f.read_bytes())
    return src


def test_photos_are_detected_aligned_and_cached(tmp_path):
    """Two celeba identities, two photos each: MTCNN crops are written under align_dir and reused."""
    src = _copy_photos(tmp_path / "photos", identities=2)
    faces, info = folder_faces(src, align_dir=tmp_path / "aligned", progress=False)
    assert info.aligned and info.images_used + info.no_face + info.unreadable == 4
    assert len(faces) == info.images_used >= 2
    crops = sorted((tmp_path / "aligned").rglob("*.png"))
    assert len(crops) == info.images_used
    again, info2 = folder_faces(src, align_dir=tmp_path / "aligned", progress=False)
    assert info2.cached == info.images_used
    assert np.abs(again.images.astype(int) - faces.images.astype(int)).max() <= 1


# ------------------------------------------------------------------------------ report and misc


def test_report_renders_markdown_and_escaped_html():
    rep = Report("T")
    rep.add(Heading("Part"), Para("a **bold** `x<y` text"), Bullets(["one", "two"]),
            Table(["a", "b|c"], [["1", "<b>2</b>"]], "cap"), Figure("f.png", "alt"))
    md = to_markdown(rep)
    assert "## Part" in md and "| a | b\\|c |" in md and "![alt](f.png)" in md and "- two" in md
    page = to_html(rep)
    assert "<b>bold</b>" in page and "<code>x&lt;y</code>" in page
    assert "&lt;b&gt;2&lt;/b&gt;" in page and '<img src="f.png" alt="alt">' in page


def test_distillation_verdict_follows_the_numbers():
    def res(kd, plain, std=0.01):
        v = {"accuracy_std": std, "auc": 0.9, "eer": 0.1}
        return {"student_kd": Verification({**v, "accuracy": kd}, 1.0), "student_plain": Verification({**v, "accuracy": plain}, 1.0),
                "teacher": Verification({**v, "accuracy": 0.95}, 1.0)}

    assert _distillation_summary(res(0.95, 0.90)).verdict == "helped"
    assert _distillation_summary(res(0.90, 0.95)).verdict == "hurt"
    assert _distillation_summary(res(0.901, 0.90)).verdict == "no clear difference"


def test_keep_weights_moves_the_files_and_rewrites_result_json(tmp_path):
    """The run's result.json names the weight files where the quickstart keeps them (it named the moved-away ones)."""
    run = tmp_path / "train" / "teacher"
    run.mkdir(parents=True)
    (run / "model.safetensors").write_bytes(b"train")
    (run / "model_deploy.safetensors").write_bytes(b"deploy")
    (run / "result.json").write_text(json.dumps({"steps": 3, "weights": str(run / "model.safetensors"),
                                                  "deploy_weights": str(run / "model_deploy.safetensors")}))
    result = TrainResult(run, run / "model.safetensors", run / "model_deploy.safetensors", None, None, {}, None, [], 3, 3, "completed", 1.0)
    moved = keep_weights(result, tmp_path / "weights", "teacher")
    summary = json.loads((run / "result.json").read_text())
    assert summary["steps"] == 3 and Path(summary["weights"]) == moved.weights == tmp_path / "weights" / "teacher.safetensors"
    assert Path(summary["deploy_weights"]) == moved.deploy_weights == tmp_path / "weights" / "teacher_deploy.safetensors"
    assert moved.weights.read_bytes() == b"train" and moved.deploy_weights.read_bytes() == b"deploy"
    assert not (run / "model.safetensors").exists()


def test_smooth_is_a_trailing_mean():
    assert np.allclose(smooth([1, 2, 3, 4], 2), [1, 1.5, 2.5, 3.5])
    assert np.allclose(smooth([5.0], 10), [5.0])


@pytest.mark.parametrize("argv", [["--budget", "0"], ["--data", "/no/such/folder"], ["--threads", "0"]])
def test_cli_reports_bad_arguments_cleanly(argv, tmp_path, capsys):
    assert main(["quickstart", "--out", str(tmp_path / "o"), "--quiet", *argv]) == 2
    assert "facelivt quickstart: error:" in capsys.readouterr().err


def test_only_the_chosen_photos_are_aligned(tmp_path):
    """With a cap, whole identities are chosen first and only their photos go through MTCNN."""
    src = _copy_photos(tmp_path / "photos", identities=3)
    faces, info = folder_faces(src, max_images=4000, max_align_images=4, align_dir=tmp_path / "aligned", progress=False)
    assert info.aligned and info.max_images == 4 and info.images_found == 6
    assert info.images_used + info.no_face + info.unreadable == 4
    crops = sorted((tmp_path / "aligned").rglob("*.png"))
    assert len(crops) == info.images_used and len({c.parent.name for c in crops}) <= 2
