"""What a resumed run does when its settings changed: a different model is named key by key, more
epochs continue a finished run, and bad records are counted in result.json and log.jsonl."""
from __future__ import annotations

import contextlib
import json

import cv2
import pytest
from torch import nn

from facelivt.cli import main
from facelivt.data import ImageFolderDataset, SyntheticIdentities
from facelivt.training import ResumeMismatchError, poly_lr, train

from log_helpers import logs_warning
from train_helpers import CONFIGS, TinyNet, last_state, quick_config


def _events(output) -> list[dict]:
    return [json.loads(line) for line in (output / "log.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_resuming_with_another_model_names_the_keys_that_differ(tmp_path, capsys):
    common = ["train", str(CONFIGS / "synthetic_tiny.yaml"), f"output={tmp_path / 'run'}", "train.progress=false",
              "train.max_steps=1"]
    assert main(common) == 0
    capsys.readouterr()
    assert main(common + ["model.name=facelivt_m", "model.head=gdc"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err  # not torch's list of every mismatching tensor
    assert "model.name: 'facelivt_s' -> 'facelivt_m'" in err and "model.head: 'gap' -> 'gdc'" in err
    assert "train.resume=never" in err and "size mismatch" not in err


class WideTinyNet(TinyNet):
    def __init__(self) -> None:
        super().__init__(dim=16)
        self.conv = nn.Conv2d(3, 12, 5, stride=4)
        self.fc = nn.Linear(12 * 16, 16)


def test_a_model_object_that_does_not_fit_the_checkpoint_is_explained(tmp_path, faces):
    train(quick_config(tmp_path / "run"), dataset=faces, model=TinyNet(dim=16))
    with pytest.raises(ResumeMismatchError) as info:
        train(quick_config(tmp_path / "run", epochs=2), dataset=faces, model=WideTinyNet())
    message = str(info.value)
    assert "model does not fit" in message and "3 tensors differ in shape (e.g. conv.weight: checkpoint (8, 3, 5, 5)" in message
    assert len(message) < 300


def test_more_epochs_continue_a_finished_run_to_the_new_end(tmp_path, faces):
    out = tmp_path / "run"
    first = train(quick_config(out, epochs=1), dataset=faces, model=TinyNet(dim=16))
    assert first.stopped == "completed" and first.steps == 4
    cfg = quick_config(out, epochs=2)
    cfg.optim.weight_decay = 0.05
    more = train(cfg, dataset=faces, model=TinyNet(dim=16))
    assert more.stopped == "completed" and more.steps == more.total_steps == 8
    assert more.loss_history[:4] == first.loss_history and len(more.loss_history) == 8
    start = [e for e in _events(out) if e["event"] == "start"][-1]
    assert start["step"] == 4 and start["changed_settings"] == {"optim.weight_decay": [1e-4, 0.05], "train.epochs": [1, 2]}
    # the new optimiser settings apply (not the checkpoint's)
    assert {g["weight_decay"] for g in last_state(out)[1]["optimizer"]["param_groups"]} == {0.05}
    # the polynomial schedule is recomputed for the new end: step 4 of 8, not the floor reached at 4 of 4
    lr = [e for e in _events(out) if e["event"] == "train" and e["step"] == 5][-1]["lr"]
    assert lr == pytest.approx(poly_lr(4, 1e-3, 8, 1e-5)) and lr > 10 * poly_lr(4, 1e-3, 4, 1e-5)
    again = train(quick_config(out, epochs=2), dataset=faces, model=TinyNet(dim=16))
    assert again.stopped == "already_finished" and again.steps == 8


def _faces_with_bad_files(root, bad=(6, 21)):
    views = SyntheticIdentities(8, 4, seed=1)
    for i in range(32):
        folder = root / f"id{i // 4}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{i % 4}.png"
        if i in bad:
            path.write_bytes(b"not an image")
        else:
            cv2.imwrite(str(path), cv2.cvtColor(views.image(i), cv2.COLOR_RGB2BGR))
    return ImageFolderDataset(root, max_bad_fraction=0.2)


@pytest.mark.parametrize("workers", [0, 2])
def test_bad_records_are_counted_in_result_json_and_the_log(tmp_path, workers, caplog):
    data = _faces_with_bad_files(tmp_path / "faces")
    out = tmp_path / "run"
    cfg = quick_config(out, epochs=1)
    cfg.data.num_workers = workers
    # with workers the warnings come from the worker processes, and each knows only its own records
    warned = logs_warning(caplog, "skipping bad sample") if workers == 0 else contextlib.nullcontext()
    with warned:
        result = train(cfg, dataset=data, model=TinyNet(dim=16))
    assert result.bad_records == 2
    assert json.loads((out / "result.json").read_text())["bad_records"] == 2
    events = _events(out)
    assert events[-1]["event"] == "end" and events[-1]["bad_records"] == 2
    assert [e for e in events if e["event"] == "train"][-1]["bad_records"] == 2
    # a resumed run keeps the count (the same records, not counted twice)
    cfg.train.epochs = 2
    again = train(cfg, dataset=_faces_with_bad_files(tmp_path / "faces"), model=TinyNet(dim=16))
    assert again.steps == 8 and again.bad_records == 2
    assert json.loads((out / "result.json").read_text())["bad_records"] == 2
