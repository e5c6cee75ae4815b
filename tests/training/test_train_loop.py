"""The loop in-process on synthetic faces with a tiny network: gradient accumulation, teacher cache
against a live teacher, NaN stop, time budget, outputs."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from facelivt.data import SyntheticIdentities
from facelivt.models.card import SYNTHETIC_WARNING, read_card
from facelivt.training import NonFiniteLossError, load_checkpoint_file, train

from train_helpers import TinyNet, last_state, nan_at_step, overflow_at_call, quick_config, state_equal


def run(tmp_path, faces, name, *, teacher=None, **changes):
    cfg = quick_config(tmp_path / name, epochs=2)
    for key, value in changes.items():
        section, field = key.split("__")
        setattr(getattr(cfg, section), field, value)
    model = TinyNet(dim=16)
    result = train(cfg, dataset=faces, model=model, teacher=teacher)
    return result, model


def test_gradient_accumulation_matches_one_big_batch(tmp_path, faces):
    big, m1 = run(tmp_path, faces, "acc1")
    acc, m2 = run(tmp_path, faces, "acc2", train__accumulate=2)
    acc4, m4 = run(tmp_path, faces, "acc4", train__accumulate=4)
    assert big.steps == acc.steps == acc4.steps == 8
    assert state_equal(m1.state_dict(), m2.state_dict()) < 1e-6
    assert state_equal(m1.state_dict(), m4.state_dict()) < 1e-6
    assert big.loss_history == pytest.approx(acc.loss_history, abs=1e-5)
    # the class centres (Partial FC) end up the same too
    c1 = load_checkpoint_file(big.last_checkpoint / "rank0.pt")["partial_fc"]["weight"]
    c2 = load_checkpoint_file(acc.last_checkpoint / "rank0.pt")["partial_fc"]["weight"]
    assert (c1 - c2).abs().max() < 1e-6


def test_teacher_cache_equals_live_teacher(tmp_path, faces):
    teacher = TinyNet(dim=16, seed=7)
    common = dict(distill__enabled=True, distill__alpha=0.5, distill__cache_dtype="float32")
    live, m_live = run(tmp_path, faces, "live", teacher=teacher, distill__cache="none", **common)
    cached, m_cached = run(tmp_path, faces, "cached", teacher=teacher, distill__cache="memory", **common)
    assert state_equal(m_live.state_dict(), m_cached.state_dict()) < 1e-5
    assert cached.loss_history == pytest.approx(live.loss_history, rel=1e-5)
    plain, m_plain = run(tmp_path, faces, "plain")
    assert state_equal(m_plain.state_dict(), m_live.state_dict()) > 1e-4  # distillation did change training
    logs = [json.loads(line) for line in (tmp_path / "cached" / "log.jsonl").read_text().splitlines()]
    assert all(r["loss_dis"] > 0 for r in logs if r["event"] == "train")


def test_disk_cache_is_reused_by_a_resumed_run(tmp_path, faces):
    teacher = TinyNet(dim=16, seed=7)
    result, _ = run(tmp_path, faces, "disk", teacher=teacher, distill__enabled=True, distill__cache="disk")
    meta = json.loads((tmp_path / "disk" / "teacher_cache" / "meta.json").read_text())
    assert meta["num_samples"] == 32 and meta["dim"] == 16
    from facelivt.training import TeacherCache

    cache = TeacherCache(32, 16, "float16", tmp_path / "disk" / "teacher_cache", key=meta["key"])
    assert cache.filled_fraction == 1.0  # both views of all 32 samples were computed in the first epoch


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, faces, monkeypatch):
    nan_at_step(monkeypatch, 5)
    with pytest.raises(NonFiniteLossError, match=r"loss became nan at optimiser step 5.*last good checkpoint"):
        run(tmp_path, faces, "nan", train__checkpoint_every_steps=2)
    out = tmp_path / "nan"
    last, state = last_state(out)
    assert last["step"] == 4
    assert state["global_step"] == 4 and len(state["loss_history"]) == 4
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    assert not (out / "model.safetensors").exists()
    events = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert events[-1]["event"] == "error" and "nan" in events[-1]["message"]


def test_non_finite_gradients_stop_before_the_update(tmp_path, faces):
    cfg = quick_config(tmp_path / "grad", epochs=2)
    cfg.train.checkpoint_every_steps = 2
    model = TinyNet(dim=16)
    overflow_at_call(model, 4)  # the 4th step's gradients overflow
    with pytest.raises(NonFiniteLossError, match=r"gradients became non-finite .* step 3"):
        train(cfg, dataset=faces, model=model)
    assert all(torch.isfinite(p).all() for p in model.parameters())  # the bad update never happened
    assert last_state(tmp_path / "grad")[0]["step"] == 2


def test_time_budget_stops_cleanly_and_exports(tmp_path, faces):
    result, model = run(tmp_path, faces, "budget", train__max_minutes=1e-6)
    assert result.stopped == "time_budget" and result.steps < result.total_steps
    assert result.weights.is_file() and result.deploy_weights.is_file()
    saved = load_file(str(result.weights))
    assert state_equal(saved, {k: v for k, v in model.state_dict().items()}) == 0.0
    # the budget is spent: resuming with it does not train further
    again, _ = run(tmp_path, faces, "budget", train__max_minutes=1e-6)
    assert again.steps == result.steps


def test_outputs_and_result(tmp_path, faces):
    result, model = run(tmp_path, faces, "out", data__held_out_fraction=0.25, eval__heldout_pairs=20, train__tensorboard=True)
    out = tmp_path / "out"
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert result.stopped == "completed" and result.steps == result.total_steps == 6  # 24 training images
    assert len(result.loss_history) == 6 and result.num_classes == 6
    assert "heldout" in result.metrics and 0.0 <= result.metrics["heldout"]["accuracy"] <= 1.0
    assert result.best is not None and result.best_weights.is_file()
    summary = json.loads((out / "result.json").read_text())
    assert summary["steps"] == 6 and summary["stopped"] == "completed"
    # the exported weights say what they are: synthetic faces, 6 identities, 24 images, 6 steps, the held-out
    # accuracy and the threshold chosen on the held-out pairs (a cosine similarity)
    card = read_card(result.weights)
    assert card.faces == "synthetic" and card.warning() == SYNTHETIC_WARNING
    assert (card.training.identities, card.training.images, card.training.steps) == (6, 24, 6)
    assert card.heldout.value == pytest.approx(result.metrics["heldout"]["accuracy"])
    assert card.threshold.cosine == pytest.approx(result.metrics["heldout"]["threshold"])
    assert read_card(result.deploy_weights) == card and read_card(result.best_weights).faces == "synthetic"
    events = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "end" and "eval" in kinds
    train_events = [e for e in events if e["event"] == "train"]
    assert {"loss", "loss_cls", "lr", "images_per_s", "epoch"} <= set(train_events[0])
    assert (out / "config.yaml").is_file()
    # finished runs are not trained again when started once more
    again, _ = run(tmp_path, faces, "out", data__held_out_fraction=0.25, eval__heldout_pairs=20)
    assert again.stopped == "already_finished" and again.steps == 6


def test_periodic_verification_on_a_bin_set(tmp_path, faces):
    import cv2
    from facelivt.evaluation import write_bin

    views = SyntheticIdentities(6, 4, seed=5)  # identities never trained on
    encoded, issame = [], []
    for k in range(20):
        a = (k * 7) % 24
        b = a + 1 if k % 2 == 0 and a % 4 != 3 else (a + 9) % 24
        issame.append(a // 4 == b // 4)
        for i in (a, b):
            encoded.append(cv2.imencode(".png", cv2.cvtColor(views.image(i), cv2.COLOR_RGB2BGR))[1].tobytes())
    path = write_bin(tmp_path / "synth.bin", encoded, issame)
    result, _ = run(tmp_path, faces, "bin", eval__bins=[str(path)], eval__every_steps=2)
    assert set(result.metrics) == {"synth"} and result.metrics["synth"]["n_pairs"] == 20
    assert result.best["metric"] == "synth" and result.best_weights.is_file()
    events = [json.loads(line) for line in (tmp_path / "bin" / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in events if e["event"] == "eval"] == [2, 4, 6, 8]
    with pytest.raises(FileNotFoundError, match="verification set not found"):
        run(tmp_path, faces, "bin2", eval__bins=[str(tmp_path / "missing.bin")])
    with pytest.raises(ValueError, match="best_metric"):
        run(tmp_path, faces, "bin3", eval__bins=[str(path)], eval__best_metric="lfw")


def test_too_little_data_is_explained(tmp_path, faces):
    with pytest.raises(ValueError, match="fewer than one step"):
        run(tmp_path, faces, "small", train__batch_size=64)


def test_bf16_autocast_on_the_cpu_trains_facelivt(tmp_path, faces):
    """train.amp=bf16 on a CPU (the fast path where the CPU has native bfloat16): FaceLiVT-S's
    losses stay finite and fall, and the weights stay float32."""
    import facelivt

    cfg = quick_config(tmp_path / "bf16", epochs=3)
    cfg.train.amp = "bf16"
    cfg.optim.lr = 2e-3
    model = facelivt.create_model("facelivt_s", embedding_size=16)
    result = train(cfg, dataset=faces, model=model)
    losses = result.loss_history
    assert all(torch.isfinite(torch.tensor(losses)))
    k = len(losses) // 3
    assert sum(losses[-k:]) / k < sum(losses[:k]) / k
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_adamw_runs_fused_where_torch_has_the_kernel():
    from facelivt.training.engine import build_adamw

    params = [torch.nn.Parameter(torch.randn(3))]
    opt = build_adamw([{"params": params}], lr=1e-3)
    if tuple(int(v) for v in torch.__version__.split(".")[:2]) >= (2, 4):
        assert opt.defaults["fused"] is True
    params[0].grad = torch.ones(3)
    before = params[0].detach().clone()
    opt.step()
    assert (params[0] - before).abs().max() > 0
