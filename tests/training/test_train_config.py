"""The training config: its defaults, the repository's config files, its checks and the paths it resolves
(the parser itself, typed key=value overrides and its messages: tests/test_settings.py)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from facelivt.cli import main
from facelivt.settings import apply_overrides
from facelivt.training import Config, config_from_dict, load_config

from disk_helpers import assert_clean_failure
from train_helpers import CONFIGS, REPO, TINY_CLI, tiny_train_command


def test_defaults_follow_the_paper_recipe():
    cfg = Config()
    assert (cfg.optim.lr, cfg.optim.weight_decay, cfg.optim.min_lr, cfg.optim.power) == (6e-3, 1e-4, 1e-5, 1.0)
    assert cfg.optim.clip_grad_norm == 5.0 and cfg.optim.warmup_steps == 0
    assert cfg.distill.alpha == 0.5 and cfg.distill.kind == "mse"
    assert cfg.loss.margin == "cosface" and cfg.loss.s == 64.0
    assert cfg.train.batch_size == 384 and cfg.train.epochs == 20


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.glob("*.yaml")))
def test_repo_configs_load(name):
    cfg = load_config(CONFIGS / name)
    assert cfg.output


def test_paper_configs_match_spec():
    teacher = load_config(CONFIGS / "glint360k_teacher_l_mhsa.yaml")
    assert teacher.model.name == "facelivt_l_mhsa" and not teacher.distill.enabled
    for name, model in (("glint360k_facelivt_s_kd.yaml", "facelivt_s"), ("glint360k_facelivt_m_kd.yaml", "facelivt_m")):
        cfg = load_config(CONFIGS / name)
        assert cfg.model.name == model
        assert cfg.distill.enabled and cfg.distill.teacher == "facelivt_l_mhsa" and cfg.distill.alpha == 0.5
        assert cfg.distill.teacher_weights.endswith(teacher.output.split("/")[-1] + "/model.safetensors")
    for cfg in (teacher, load_config(CONFIGS / "glint360k_facelivt_s_kd.yaml")):
        assert cfg.train.batch_size == 384 and cfg.train.epochs == 20
        assert (cfg.optim.lr, cfg.optim.weight_decay, cfg.optim.min_lr, cfg.optim.power) == (6e-3, 1e-4, 1e-5, 1.0)
        assert cfg.optim.clip_grad_norm == 5.0 and cfg.optim.warmup_steps == 0
        assert cfg.loss.margin == "cosface" and cfg.loss.s == 64.0 and cfg.data.type == "recordio" and cfg.data.flip


def test_cpu_config_data_root_is_relative_to_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not the repo: nothing points outside the working folder or the repository
    assert load_config(CONFIGS / "cpu_small.yaml").data.root == "data/celeba_subset_112"  # missing: kept as written
    (tmp_path / "data" / "celeba_subset_112").mkdir(parents=True)
    cfg = load_config(CONFIGS / "cpu_small.yaml")
    assert Path(cfg.data.root).resolve() == (tmp_path / "data" / "celeba_subset_112").resolve()
    shared = REPO / ".." / "shared" / "data" / "celeba_subset_112"
    assert load_config(CONFIGS / "cpu_small.yaml", [f"data.root={shared}"]).data.root == str(shared)


def test_training_without_its_data_folder_says_what_to_pass(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    rc = main(["train", str(CONFIGS / "cpu_small.yaml"), f"output={tmp_path / 'run'}", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert ("data.root data/celeba_subset_112 not found: give data.root=DIR, an image folder DIR/<identity>/<image>"
            in err)


@pytest.mark.parametrize(
    "override, match",
    [
        ("optim.lr=-1", "optim.lr must be > 0"),
        ("train.amp=fp8", "train.amp must be one of"),
        ("distill.kind=huber", "distill.kind must be one of"),
        ("train.batch_size=10", "divisible"),
        ("model.head=avg", "model.head"),
        ("model.name=facelivt_xxl", "unknown model 'facelivt_xxl'; available models: edgeface_xs, "),
        ("eval.heldout_pairs=10", "held_out_fraction"),
        ("train.num_threads=100000", r"train.num_threads must be an integer from 1 to \d+ \(4 x the \d+ CPU cores"),
        ("data.num_workers=100000", r"data.num_workers must be an integer from 0 to \d+ \(4 x the \d+ CPU cores"),
    ],
)
def test_bad_values_are_explained(override, match):
    extra = ["train.accumulate=4"] if override.startswith("train.batch_size") else []
    with pytest.raises(ValueError, match=match):
        load_config(CONFIGS / "synthetic_tiny.yaml", [override, *extra])


def test_a_folder_data_set_needs_its_root(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("data: {type: folder}\n")
    with pytest.raises(ValueError, match="data.root is required"):
        load_config(p)


def test_round_trip_through_yaml_and_dict():
    cfg = load_config(CONFIGS / "glint360k_facelivt_s_kd.yaml", ["optim.lr=1e-3"])
    again = config_from_dict(yaml.safe_load(cfg.to_yaml()))
    assert again == cfg


def test_channels_last_is_auto_by_default_and_can_be_forced():
    # the layout is chosen per CPU unless set (facelivt.cpu.cpu_defaults; tests/test_cpu.py)
    assert Config().model.channels_last is None
    for text, want in (("auto", None), ("true", True), ("false", False), ("null", None)):
        assert config_from_dict(apply_overrides({}, [f"model.channels_last={text}"], Config)).model.channels_last is want
    with pytest.raises(ValueError, match="model.channels_last"):
        config_from_dict(apply_overrides({}, ["model.channels_last=sometimes"], Config))


def test_linear_1x1_is_auto_by_default_and_reaches_every_convbn():
    import torch  # noqa: PLC0415

    from facelivt.models.layers import ConvBN  # noqa: PLC0415
    from facelivt.training.engine import _placed_model  # noqa: PLC0415 - where the setting is applied

    assert Config().model.linear_1x1 is None
    for text, want in (("auto", None), ("true", True), ("false", False)):
        cfg = config_from_dict(apply_overrides({}, [f"model.linear_1x1={text}", "model.name=facelivt_s", "train.device=cpu"], Config))
        assert cfg.model.linear_1x1 is want
        model = _placed_model(cfg, torch.device("cpu"), None, channels_last=True)
        convbns = [m for m in model.modules() if isinstance(m, ConvBN)]
        assert convbns and all(m.linear_1x1 is want for m in convbns)


@pytest.mark.parametrize("override", ["train.num_threads=100000", "data.num_workers=100000"])
def test_a_huge_thread_count_stops_train_before_it_takes_the_folder(override, tmp_path):
    """train.num_threads=100000 crashed `facelivt train` (segmentation fault, exit 139, no message) and
    left train.lock behind; 10000 ran 20,003 threads and stalled for minutes on step 1."""
    out = tmp_path / "run"
    proc = subprocess.run(tiny_train_command(out, override), cwd=TINY_CLI.parent, capture_output=True, text=True, timeout=300)
    assert_clean_failure(proc)
    limit = 4 * len(os.sched_getaffinity(0))
    key = override.split("=")[0]
    assert proc.stderr.splitlines()[-1].startswith(f"facelivt train: error: {key} must be an integer from ")
    assert f" to {limit} (" in proc.stderr.splitlines()[-1] and proc.stderr.splitlines()[-1].endswith("got 100000")
    assert not out.exists()
