"""The quickstart's config: one YAML file whose training sections are parsed by the machinery of
`facelivt train` and whose `quickstart` section holds the plan and report settings."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from facelivt.cli import main
from facelivt.errors import FaceLiVTError
from facelivt.quickstart import DEFAULT_CONFIG, load_quickstart_config
from facelivt.quickstart.plan import MODEL_KEYS, base_plan, plan_steps, run_config
from facelivt.training import Config, load_config


def test_the_default_file_is_a_training_config_plus_the_quickstart_section(tmp_path):
    config = load_quickstart_config()
    assert isinstance(config.training, Config) and config.quickstart.budget_minutes > 1
    # the training sections read the same through `facelivt train`'s loader
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    plain = tmp_path / "train.yaml"
    plain.write_text(yaml.safe_dump({k: v for k, v in raw.items() if k not in ("quickstart", "quick")}))
    assert load_config(plain).to_dict() == config.training.to_dict()


def test_overrides_are_typed_and_unknown_keys_are_refused():
    config = load_quickstart_config(overrides=["optim.lr=3e-3", "quickstart.bench_batch_sizes=[1, 4]", "quickstart.peer=mobilefacenet"])
    assert config.training.optim.lr == pytest.approx(0.003) and config.quickstart.bench_batch_sizes == [1, 4]
    assert config.quickstart.peer == "mobilefacenet"
    for bad, words in (["quickstart.nope=1"], "unknown config key"), (["optim.nope=1"], "unknown config key"), \
                       (["quickstart.bench_runs=many"], "needs an integer"), (["quickstart.peer=resnet50"], "unknown model"):
        with pytest.raises(FaceLiVTError, match=words):
            load_quickstart_config(overrides=bad)


def test_the_quick_overrides_apply_under_the_quick_budget_and_yield_to_the_user():
    full = load_quickstart_config()
    quick = load_quickstart_config(overrides=["quickstart.budget_minutes=0.5"])
    assert full.training.train.max_steps is None and quick.training.train.max_steps == 3
    assert quick.quickstart.tiny and quick.training.data.num_identities < full.training.data.num_identities
    mine = load_quickstart_config(overrides=["quickstart.budget_minutes=0.5", "train.max_steps=5"])
    assert mine.training.train.max_steps == 5


def test_a_config_file_of_ones_own(tmp_path, capsys):
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    raw["optim"]["lr"] = 0.004
    raw["quickstart"]["peer"] = "mobilefacenet"
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["quickstart", "--config", str(path), "--print-config", "--out", str(tmp_path / "o"), "optim.warmup_steps=3"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["optim"]["lr"] == 0.004 and printed["optim"]["warmup_steps"] == 3
    assert printed["quickstart"]["peer"] == "mobilefacenet" and printed["quickstart"]["out"] == str(tmp_path / "o")
    assert main(["quickstart", "--config", str(tmp_path / "missing.yaml"), "--print-config"]) == 2


def test_each_run_is_the_base_config_with_the_plans_steps(tmp_path):
    config = load_quickstart_config(overrides=["quickstart.budget_minutes=6", "train.num_threads=1"])
    plan = plan_steps(base_plan(config), 0.25, 0.6, num_train_images=1920)
    runs = {key: run_config(plan, key, tmp_path) for key in MODEL_KEYS}
    teacher, kd, plain = runs["teacher"], runs["student_kd"], runs["student_plain"]
    assert teacher.model.name == config.training.distill.teacher and kd.model.name == plain.model.name == config.training.model.name
    assert teacher.train.max_steps == plan.teacher_steps and kd.train.max_steps == plain.train.max_steps == plan.student_steps
    assert teacher.train.batch_size == config.quickstart.teacher_batch_size and kd.train.batch_size == config.training.train.batch_size
    assert [r.distill.enabled for r in (teacher, kd, plain)] == [False, True, False]
    assert {r.data.held_out_fraction for r in runs.values()} == {plan.held_out_fraction}
    assert all(r.eval.heldout_pairs == 0 and r.train.max_minutes > 0 for r in runs.values())
    assert {Path(r.output).name for r in runs.values()} == set(MODEL_KEYS)
    assert kd.optim.lr == config.training.optim.lr and kd.loss.s == config.training.loss.s
