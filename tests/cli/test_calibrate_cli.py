"""`facelivt calibrate`: a threshold chosen once on real photos, recorded in the weights' model card (or
a side file) and then used by verify; and what verify says of weights with no record of real faces."""
from __future__ import annotations

import json
import os
import re
import stat

import pytest
from safetensors.torch import load_file

from facelivt import create_model
from facelivt.cli import main
from facelivt.inference.calibration import UNRELIABLE
from facelivt.models import ModelCard, TrainingData, read_card, save_weights
from facelivt.models.card import NO_RECORD_WARNING, SYNTHETIC_WARNING, side_card_path

from model_helpers import register_tiny

TINY = "calibrate_tiny"


@pytest.fixture
def faces(shared_dir):
    """Aligned 112x112 crops of real people: root/<identity>/<image>."""
    return shared_dir / "data" / "celeba_subset_112"


@pytest.fixture
def weights(monkeypatch, tmp_path):
    register_tiny(monkeypatch, TINY)
    path = tmp_path / "w.safetensors"
    save_weights(create_model(TINY).eval(), path)
    return path


def _two_photos(faces):
    a, b = sorted(faces.iterdir())[:2]
    return str(next(iter(sorted(a.iterdir())))), str(next(iter(sorted(b.iterdir()))))


def _verify(faces, weights, capsys, *extra) -> tuple[dict, str]:
    assert main(["verify", *_two_photos(faces), "--weights", str(weights), "--aligned", "--json", *extra]) == 0
    captured = capsys.readouterr()
    return json.loads(captured.out), captured.err


def test_a_threshold_calibrated_on_a_folder_is_what_verify_then_uses(faces, weights, capsys):
    tensors = load_file(str(weights))
    rc = main(["calibrate", str(faces), "--weights", str(weights), "--aligned", "--pairs", "40", "--seed", "1",
               "--quiet", "--json"])
    assert rc == 0
    result = json.loads(capsys.readouterr().out)
    assert result["written"] == str(weights) and result["calibration"]["num_pairs"] == 40
    assert result["calibration"]["rule"] == "best-accuracy"
    assert all((load_file(str(weights))[k] == v).all() for k, v in tensors.items())  # the tensors are unchanged
    card = read_card(weights)
    assert round(card.threshold.cosine, 6) == result["threshold"] and card.threshold.pairs == 40
    verdict, err = _verify(faces, weights, capsys)
    assert verdict["threshold"] == round(card.threshold.cosine, 6)
    assert verdict["threshold_source"].startswith(f"model card: calibrated on {faces} (pairs drawn with seed 1) at FAR")
    # calibrated, but the weights still have no record of real-face training: warned, the verdict stands
    assert verdict["reliable"] is True and verdict["warning"] == NO_RECORD_WARNING
    assert re.search("warning: .*no record of training on real faces", err)


def test_at_a_false_accept_rate_on_a_pairs_list(faces, weights, tmp_path, capsys):
    a, b = _two_photos(faces)
    other = str(sorted((faces / os.path.basename(os.path.dirname(a))).iterdir())[1])
    pairs = tmp_path / "pairs.txt"
    pairs.write_text(f"{a} {other} 1\n{a} {b} 0\n{other} {b} 0\n")
    assert main(["calibrate", str(pairs), "--weights", str(weights), "--aligned", "--far", "0", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "at FAR <= 0" in out and f"recorded in {weights}" in out
    card = read_card(weights)
    assert card.threshold.rule == "far<=0" and card.threshold.far == 0.0 and card.threshold.source == str(pairs)


def test_read_only_weights_get_a_side_file(faces, weights, capsys):
    data = weights.read_bytes()
    os.chmod(weights, stat.S_IRUSR)
    try:
        assert main(["calibrate", str(faces), "--weights", str(weights), "--aligned", "--pairs", "20", "--quiet"]) == 0
    finally:
        os.chmod(weights, stat.S_IRUSR | stat.S_IWUSR)
    side = side_card_path(weights)
    assert f"recorded in {side}" in capsys.readouterr().out and weights.read_bytes() == data
    verdict, _ = _verify(faces, weights, capsys)
    assert verdict["threshold"] == round(json.loads(side.read_text())["threshold"]["cosine"], 6)
    assert verdict["threshold_source"].startswith("model card: calibrated on")


def test_out_writes_a_calibrated_copy(faces, weights, tmp_path, capsys):
    out = tmp_path / "calibrated.safetensors"
    assert main(["calibrate", str(faces), "--weights", str(weights), "--aligned", "--pairs", "20", "--quiet",
                 "--out", str(out)]) == 0
    assert read_card(weights) is None and read_card(out).threshold is not None


def test_verify_says_when_its_verdict_means_nothing(faces, weights, tmp_path, capsys):
    synthetic = tmp_path / "synthetic.safetensors"
    save_weights(create_model(TINY).eval(), synthetic,
                 card=ModelCard(training=TrainingData("synthetic identities", faces="synthetic")))
    verdict, err = _verify(faces, synthetic, capsys)
    assert verdict["reliable"] is False and verdict["warning"] == SYNTHETIC_WARNING
    assert verdict["threshold_source"].startswith("uncalibrated")
    assert f"warning: {synthetic}: {SYNTHETIC_WARNING}" in err
    assert main(["verify", *_two_photos(faces), "--weights", str(synthetic), "--aligned"]) == 0
    assert UNRELIABLE in capsys.readouterr().out
    verdict, _ = _verify(faces, weights, capsys)  # no card at all: no record of real faces either
    assert verdict["reliable"] is False and verdict["warning"] == NO_RECORD_WARNING


@pytest.mark.parametrize("args, message", [
    (["--far", "1.5"], "--far must be in [0, 1)"),
    (["--pairs", "3"], "--pairs must be an even number"),
    (["--out", "copy.pt"], "name them *.safetensors"),
])
def test_bad_options(faces, weights, capsys, args, message):
    assert main(["calibrate", str(faces), "--weights", str(weights), "--aligned", "--quiet", *args]) == 2
    assert message in capsys.readouterr().err
    assert read_card(weights) is None


def test_bad_inputs(faces, weights, tmp_path, capsys):
    base = ["--weights", str(weights), "--aligned", "--quiet"]
    assert main(["calibrate", str(tmp_path / "missing.txt"), *base]) == 2
    assert "pairs list not found" in capsys.readouterr().err
    lonely = tmp_path / "lonely"
    (lonely / "someone").mkdir(parents=True)
    (lonely / "someone" / "a.jpg").write_bytes((next((faces / "7201").iterdir())).read_bytes())
    assert main(["calibrate", str(lonely), *base, "--pairs", "2"]) == 2
    assert "at least 2 identity folders" in capsys.readouterr().err
    assert main(["calibrate", str(faces), *base, "--pairs", "2000000"]) == 2
    assert "distinct" in capsys.readouterr().err
    same = tmp_path / "same.txt"
    a, _ = _two_photos(faces)
    same.write_text(f"{a} {a} 1\n")
    assert main(["calibrate", str(same), *base]) == 2
    assert "both genuine" in capsys.readouterr().err
    assert read_card(weights) is None


def test_identify_uses_the_calibrated_threshold_of_weights_calibrated_after_enrolment(faces, weights, tmp_path, capsys):
    gallery, people = tmp_path / "gallery", sorted(faces.iterdir())[:2]
    w = ["--weights", str(weights), "--aligned", "--quiet"]
    for person in people:
        assert main(["enroll", str(gallery), "--name", person.name, *sorted(map(str, person.iterdir()))[:2], *w]) == 0
    probe = str(sorted(people[0].iterdir())[2])
    capsys.readouterr()
    assert main(["identify", str(gallery), probe, "--json", *w]) == 0
    before = json.loads(capsys.readouterr().out)
    assert before["reliable"] is False and before["threshold_source"].startswith("uncalibrated")
    assert main(["identify", str(gallery), probe, *w]) == 0
    captured = capsys.readouterr()
    assert UNRELIABLE in captured.err and "(unreliable)" in captured.out
    # the weights file is rewritten with its card: the gallery made before still fits it
    assert main(["calibrate", str(faces), *w, "--pairs", "20"]) == 0
    capsys.readouterr()
    assert main(["identify", str(gallery), probe, "--json", *w]) == 0
    after = json.loads(capsys.readouterr().out)
    assert after["reliable"] is True and after["threshold"] == read_card(weights).threshold.cosine
    assert after["threshold_source"].startswith("model card: calibrated on")
