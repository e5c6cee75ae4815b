"""FaceLiVTv2 in training: the v2 recipe configs, the config path building a v2 student, and a tiny
distillation run with a v2 student and a registry teacher."""
from __future__ import annotations

import json
import math

import pytest
import torch

import facelivt
from facelivt.models.facelivtv2 import FaceLiVTv2
from facelivt.training import load_config, train
from facelivt.training.engine import build_model

from train_helpers import CONFIGS, quick_config


@pytest.mark.parametrize("variant", ["xs", "s"])
def test_v2_configs_follow_the_v2_recipe(variant):
    cfg = load_config(CONFIGS / f"glint360k_facelivtv2_{variant}.yaml")
    assert cfg.model.name == f"facelivtv2_{variant}" and cfg.model.head == "gdc" and cfg.model.num_heads == 4
    assert cfg.loss.margin == "cosface" and (cfg.loss.s, cfg.loss.m3, cfg.loss.sample_rate) == (64.0, 0.4, 1.0)
    o = cfg.optim
    assert (o.lr, o.weight_decay, o.min_lr, o.power, o.warmup_steps, o.clip_grad_norm) == (6e-3, 1e-2, 0.0, 1.0, 0, 5.0)
    assert cfg.train.epochs == 50 and cfg.data.type == "recordio" and not cfg.distill.enabled


def test_cpu_config_builds_a_v2_student():
    cfg = load_config(CONFIGS / "cpu_small.yaml", ["model.name=facelivtv2_xs", "model.num_heads=8"])
    model = build_model(cfg)
    assert isinstance(model, FaceLiVTv2) and model.cfg.num_heads == 8
    with pytest.raises(ValueError, match="gdc"):
        build_model(load_config(CONFIGS / "cpu_small.yaml", ["model.name=facelivtv2_xs", "model.head=gap"]))


def test_distillation_with_a_v2_student_trains(tmp_path, faces):
    cfg = quick_config(tmp_path / "kd", epochs=1)
    cfg.model.name, cfg.model.head = "facelivtv2_xs", "gdc"
    cfg.distill.enabled, cfg.distill.teacher, cfg.distill.allow_random_teacher = True, "facelivt_s", True
    cfg.distill.alpha = 0.5
    result = train(cfg, dataset=faces)
    assert result.steps == 4 and all(math.isfinite(x) for x in result.loss_history)
    logs = [json.loads(line) for line in (tmp_path / "kd" / "log.jsonl").read_text().splitlines()]
    dis = [r["loss_dis"] for r in logs if r["event"] == "train"]
    assert dis and all(d > 0 and math.isfinite(d) for d in dis)
    trained = facelivt.load_model("facelivtv2_xs", result.weights, deploy=False)
    fresh = facelivt.create_model("facelivtv2_xs")
    changed = [k for k, v in trained.state_dict().items() if v.is_floating_point() and not torch.equal(v, fresh.state_dict()[k])]
    assert any(".mixer.1.fn." in k for k in changed)  # the Lite MHLA learned too
    deploy = facelivt.load_model("facelivtv2_xs", result.deploy_weights)
    x = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        assert (deploy(x) - trained(x)).abs().max() < 1e-4
