"""`facelivt train`: argument handling and clean errors (exit code 2)."""
from __future__ import annotations

import json
from pathlib import Path

import yaml

from facelivt.cli import main
from facelivt.training import StepRunner

REPO = Path(__file__).resolve().parents[2]
TINY = str(REPO / "configs" / "synthetic_tiny.yaml")


def test_print_config_applies_overrides(capsys):
    assert main(["train", TINY, "optim.lr=6e-3", "model.head=gdc", "--print-config"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["optim"]["lr"] == 6e-3 and cfg["model"]["head"] == "gdc"


def test_list_keys(capsys):
    assert main(["train", TINY, "--list-keys"]) == 0
    keys = capsys.readouterr().out.split()
    assert "optim.lr" in keys and "output" in keys and "train.max_minutes" in keys


def test_unknown_key_is_a_clean_error(capsys):
    assert main(["train", TINY, "optim.lrr=0.1"]) == 2
    err = capsys.readouterr().err
    assert "facelivt train: error: unknown config key 'optim.lrr'" in err and "valid keys" in err
    assert "Traceback" not in err


def test_bad_value_and_missing_file(capsys, tmp_path):
    assert main(["train", TINY, "train.epochs=many"]) == 2
    assert "train.epochs" in capsys.readouterr().err
    assert main(["train", str(tmp_path / "none.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err


def test_nan_loss_stops_with_a_clear_message(capsys, tmp_path, monkeypatch):
    losses = StepRunner.losses

    def nan_at_step_3(self, x, y, idx, flip, step_index):  # the total loss of optimiser step 3 becomes NaN
        loss, loss_cls, loss_dis = losses(self, x, y, idx, flip, step_index)
        return (loss * float("nan") if step_index == 3 else loss), loss_cls, loss_dis

    monkeypatch.setattr(StepRunner, "losses", nan_at_step_3)
    out = tmp_path / "nan"
    rc = main(["train", TINY, f"output={out}", "train.progress=false"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "the loss became nan at optimiser step 3" in err and "last good checkpoint" in err
    assert (out / "checkpoints" / "step-00000002" / "rank0.pt").is_file()
    assert not (out / "model.safetensors").exists()


def test_json_and_quiet(capsys, tmp_path):
    out = tmp_path / "run"
    rc = main(["train", TINY, f"output={out}", "train.max_steps=2", "--quiet", "--json"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    record = json.loads(captured.out)  # the closing lines' facts, on stdout
    assert record["steps"] == 2 and record["stopped"] == "completed" and record["output"] == str(out)
    assert record["weights"] == str(out / "model.safetensors") and Path(record["deploy_weights"]).is_file()
    assert "it/s" not in captured.err and "steps" not in captured.err  # --quiet: no bar, no closing lines on stderr
