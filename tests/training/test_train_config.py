"""Config files, typed key=value overrides, and their error messages."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from facelivt.training import Config, config_from_dict, load_config, valid_keys
from facelivt.training.config import apply_overrides

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


def test_cpu_config_finds_shared_data_from_anywhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not the repo: the path is found relative to the config's repository
    cfg = load_config(CONFIGS / "cpu_small.yaml")
    assert Path(cfg.data.root).is_dir()
    assert Path(cfg.data.root).resolve() == (REPO / ".." / "shared" / "data" / "celeba_subset_112").resolve()


def test_overrides_are_typed():
    cfg = load_config(CONFIGS / "synthetic_tiny.yaml", [
        "optim.lr=6e-3", "train.epochs=3", "train.deterministic=false", "model.name=facelivt_m",
        "train.max_minutes=2.5", "train.max_steps=none", "eval.bins=a.bin,b.bin", "optim.betas=[0.8, 0.99]",
        "output=somewhere", "loss.m3=0.35", "data.root=1e-5",
    ])
    assert cfg.optim.lr == pytest.approx(6e-3) and isinstance(cfg.optim.lr, float)
    assert cfg.train.epochs == 3 and isinstance(cfg.train.epochs, int)
    assert cfg.train.deterministic is False
    assert cfg.model.name == "facelivt_m"
    assert cfg.train.max_minutes == 2.5 and cfg.train.max_steps is None
    assert cfg.eval.bins == ["a.bin", "b.bin"] and cfg.optim.betas == [0.8, 0.99]
    assert cfg.output == "somewhere" and cfg.loss.m3 == 0.35
    assert cfg.data.root == "1e-5"  # strings stay as written


def test_yaml_float_without_dot_is_accepted(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("data: {type: synthetic}\noptim: {lr: 6e-3, min_lr: 1e-5}\n")  # YAML reads 6e-3 as a string
    cfg = load_config(p)
    assert cfg.optim.lr == 6e-3 and cfg.optim.min_lr == 1e-5


def test_unknown_override_key_lists_valid_keys():
    with pytest.raises(ValueError) as exc:
        load_config(CONFIGS / "synthetic_tiny.yaml", ["optim.lrr=0.1"])
    msg = str(exc.value)
    assert "optim.lrr" in msg and "valid keys" in msg and "optim.lr," in msg and "train.max_minutes" in msg


def test_unknown_key_in_file_is_named(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("data: {type: synthetic}\ntrain: {epoch: 3}\n")
    with pytest.raises(ValueError, match=r"train\.epoch.*valid keys: train\.epochs"):
        load_config(p)
    p.write_text("modle: {name: x}\n")
    with pytest.raises(ValueError, match="modle"):
        load_config(p)


@pytest.mark.parametrize(
    "override, match",
    [
        ("train.epochs=two", "train.epochs needs an integer|'train.epochs' needs an integer"),
        ("train.epochs=2.5", "needs an integer"),
        ("optim.lr=fast", "needs a number"),
        ("train.deterministic=maybe", "true or false"),
        ("train.epochs", "key=value"),
        ("optim.lr=-1", "optim.lr must be > 0"),
        ("train.amp=fp8", "train.amp must be one of"),
        ("distill.kind=huber", "distill.kind must be one of"),
        ("train.batch_size=10", "divisible"),
        ("model.head=avg", "model.head"),
        ("eval.heldout_pairs=10", "held_out_fraction"),
        ("train.num_threads=100000", r"train.num_threads must be an integer from 1 to \d+ \(4 x the \d+ CPU cores"),
        ("data.num_workers=100000", r"data.num_workers must be an integer from 0 to \d+ \(4 x the \d+ CPU cores"),
    ],
)
def test_bad_values_are_explained(override, match):
    extra = ["train.accumulate=4"] if override.startswith("train.batch_size") else []
    with pytest.raises(ValueError, match=match):
        load_config(CONFIGS / "synthetic_tiny.yaml", [override, *extra])


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    p = tmp_path / "bad.yaml"
    p.write_text("a: [1, 2\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_config(p)
    p.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="mapping"):
        load_config(p)
    p.write_text("data: {type: folder}\n")
    with pytest.raises(ValueError, match="data.root is required"):
        load_config(p)


def test_round_trip_through_yaml_and_dict():
    cfg = load_config(CONFIGS / "glint360k_facelivt_s_kd.yaml", ["optim.lr=1e-3"])
    again = config_from_dict(yaml.safe_load(cfg.to_yaml()))
    assert again == cfg


def test_valid_keys_cover_sections():
    keys = valid_keys()
    assert "output" in keys and "optim.lr" in keys and "distill.cache" in keys and "eval.every_steps" in keys
    assert not any(k in ("model", "optim") for k in keys)


def test_apply_overrides_creates_sections():
    data = apply_overrides({}, ["model.head=gdc", "train.max_minutes=null"])
    assert data == {"model": {"head": "gdc"}, "train": {"max_minutes": None}}


def test_channels_last_is_auto_by_default_and_can_be_forced():
    # the layout is chosen per CPU unless set (facelivt.cpu.cpu_defaults; tests/test_cpu.py)
    assert Config().model.channels_last is None
    for text, want in (("auto", None), ("true", True), ("false", False), ("null", None)):
        assert config_from_dict(apply_overrides({}, [f"model.channels_last={text}"])).model.channels_last is want
    with pytest.raises(ValueError, match="model.channels_last"):
        config_from_dict(apply_overrides({}, ["model.channels_last=sometimes"]))


def test_linear_1x1_is_auto_by_default_and_reaches_every_convbn():
    import torch  # noqa: PLC0415

    from facelivt.models.layers import ConvBN  # noqa: PLC0415
    from facelivt.training.engine import _placed_model  # noqa: PLC0415 - where the setting is applied

    assert Config().model.linear_1x1 is None
    for text, want in (("auto", None), ("true", True), ("false", False)):
        cfg = config_from_dict(apply_overrides({}, [f"model.linear_1x1={text}", "model.name=facelivt_s", "train.device=cpu"]))
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
