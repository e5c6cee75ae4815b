"""Model cards (facelivt.models.card): written into the weights, read back, recorded beside weights that
must not be rewritten, and what FaceRecognizer makes of them (threshold, warning, reliability)."""
from __future__ import annotations

import json
import os
import re
import stat

import pytest
import torch
from safetensors.torch import load_file

from facelivt import create_model
from facelivt.inference import FaceRecognizer, Gallery
from facelivt.models import (
    CalibratedThreshold,
    HeldOutResult,
    ModelCard,
    TrainingData,
    read_card,
    save_weights,
    store_card,
    weights_fingerprint,
)
from facelivt.models.card import (
    CARD_KEY,
    NO_RECORD_WARNING,
    RANDOM_WARNING,
    SYNTHETIC_WARNING,
    InvalidModelCardError,
    card_from_json,
    side_card_path,
)
from facelivt.models.weights import atomic_save_file, copy_with_card, read_safetensors

from log_helpers import logs_no_warning, logs_warning
from model_helpers import register_tiny

THRESHOLD = CalibratedThreshold(cosine=0.41, rule="far<=0.01", source="my pairs", far=0.0095, accuracy=0.9, pairs=400)
REAL = ModelCard(model="card_tiny", training=TrainingData("my photos", faces="real", identities=10, images=200, steps=50,
                                                           epochs=2.5),
                 heldout=HeldOutResult("held-out pairs", "accuracy (10-fold)", 0.87), provenance="a test")


TINY = "card_tiny"


@pytest.fixture(autouse=True)
def tiny_registered(monkeypatch):
    """A registered model small enough that a FaceRecognizer is built in no time."""
    register_tiny(monkeypatch, TINY)


@pytest.fixture
def model(tiny_registered):
    return create_model(TINY).eval()


@pytest.fixture
def weights(model, tmp_path):
    path = tmp_path / "w.safetensors"
    save_weights(model, path)
    return path


def _tensor_bytes(path) -> dict[str, bytes]:
    return {k: v.numpy().tobytes() for k, v in load_file(str(path)).items()}


def test_save_weights_writes_the_card_and_read_card_reads_it_back(model, tmp_path):
    path = tmp_path / "w.safetensors"
    card = REAL.with_threshold(THRESHOLD)
    save_weights(model, path, card=card)
    assert read_card(path) == card
    assert card_from_json(card.to_json()) == card  # round trip of every section
    assert json.loads(read_safetensors(path)[1][CARD_KEY])["threshold"]["cosine"] == 0.41


def test_weights_without_a_card_have_none(weights):
    assert read_card(weights) is None


@pytest.mark.parametrize("text, problem", [
    ("{not json", "not JSON"),
    ('["a list"]', "JSON object"),
    ('{"training": {"dataset": "x", "faces": "cartoon"}}', "training.faces"),
    ('{"threshold": {"cosine": 2.0, "rule": "r", "source": "s"}}', "threshold.cosine"),
    ('{"threshold": {"cosine": "high", "rule": "r", "source": "s"}}', "threshold.cosine"),
    ('{"heldout": {"set": "s", "metric": "m"}}', "heldout"),
    ('{"colour": "blue"}', "unknown keys colour"),
    ('{"training": ["x"]}', "expected an object"),
])
def test_a_malformed_card_is_ignored_with_a_warning_naming_the_file(model, tmp_path, caplog, text, problem):
    with pytest.raises(InvalidModelCardError, match=problem):
        card_from_json(text)
    path = tmp_path / "w.safetensors"
    save_weights(model, path, extra_metadata={CARD_KEY: text})
    with logs_warning(caplog, f"{path}.*{problem}.*ignored"):
        assert read_card(path) is None
    with logs_warning(caplog, "ignored"):  # the weights still load, as weights without a card
        rec = FaceRecognizer(TINY, path, detector=object())
    assert rec.card is None and rec.warning == NO_RECORD_WARNING


def test_a_side_file_replaces_the_card_inside_and_a_bad_one_falls_back(model, tmp_path, caplog):
    path = tmp_path / "w.safetensors"
    save_weights(model, path, card=REAL)
    side = side_card_path(path)
    assert side.name == "w.safetensors.card.json"
    side.write_text(REAL.with_threshold(THRESHOLD).to_json())
    assert read_card(path).threshold == THRESHOLD
    side.write_text("{broken")
    with logs_warning(caplog, "card.json.*not JSON"):
        assert read_card(path) == REAL


def test_store_card_rewrites_a_safetensors_file_keeping_its_tensors_bit_identical(weights):
    before, fingerprint = _tensor_bytes(weights), weights_fingerprint(weights)
    side = side_card_path(weights)
    side.write_text(REAL.to_json())  # an older side file would hide the new card: it goes
    assert store_card(weights, REAL.with_threshold(THRESHOLD)) == weights
    assert _tensor_bytes(weights) == before and not side.exists()
    assert read_card(weights).threshold == THRESHOLD
    assert weights_fingerprint(weights) == fingerprint  # galleries keyed by it stay usable
    meta = read_safetensors(weights)[1]
    assert meta["model"] == TINY and meta["form"] == "train"  # the rest of the metadata is kept


def test_store_card_writes_a_side_file_for_read_only_weights_and_torch_checkpoints(model, weights, tmp_path):
    data = weights.read_bytes()
    os.chmod(weights, stat.S_IRUSR | stat.S_IRGRP)
    try:
        written = store_card(weights, REAL.with_threshold(THRESHOLD))
    finally:
        os.chmod(weights, stat.S_IRUSR | stat.S_IWUSR)
    assert written == side_card_path(weights) and weights.read_bytes() == data
    assert read_card(weights).threshold == THRESHOLD
    pt = tmp_path / "w.pt"
    torch.save(model.state_dict(), pt)
    assert store_card(pt, REAL) == side_card_path(pt) and read_card(pt) == REAL
    assert store_card(weights, REAL, rewrite=False) == side_card_path(weights)  # e.g. a pretrained cache entry


def test_copy_with_card_leaves_the_weights_alone(weights, tmp_path):
    data = weights.read_bytes()
    out = copy_with_card(TINY, weights, tmp_path / "calibrated.safetensors", REAL)
    assert weights.read_bytes() == data and read_card(weights) is None
    assert read_card(out) == REAL and _tensor_bytes(out) == _tensor_bytes(weights)


@pytest.mark.parametrize("card, warning", [
    (REAL, None),
    (ModelCard(training=TrainingData("synthetic identities", faces="synthetic")), SYNTHETIC_WARNING),
    (ModelCard(training=TrainingData("random initialisation", faces="none")), RANDOM_WARNING),
    (ModelCard(provenance="converted from x.pt"), NO_RECORD_WARNING),
    (None, NO_RECORD_WARNING),
])
def test_recognizer_warns_unless_the_card_records_real_faces(model, tmp_path, caplog, card, warning):
    path = tmp_path / "w.safetensors"
    save_weights(model, path, card=card)
    if warning is None:
        with logs_no_warning(caplog):
            rec = FaceRecognizer(TINY, path, detector=object())
    else:
        with logs_warning(caplog, re.escape(warning)):
            rec = FaceRecognizer(TINY, path, detector=object())
    assert rec.warning == warning
    assert rec.threshold_source.startswith("uncalibrated")
    assert rec.reliable is (warning is None)  # no real-face record and no calibrated threshold: unreliable


def test_recognizer_uses_the_cards_threshold_unless_one_is_given(model, tmp_path):
    path = tmp_path / "w.safetensors"
    save_weights(model, path, card=ModelCard(training=TrainingData("s", faces="synthetic"), threshold=THRESHOLD))
    rec = FaceRecognizer(TINY, path, detector=object())
    assert rec.threshold == 0.41 and rec.threshold_source.startswith("model card: calibrated on my pairs at FAR 0.95%")
    assert rec.warning == SYNTHETIC_WARNING and rec.reliable  # warned, but the threshold was calibrated
    given = FaceRecognizer(TINY, path, detector=object(), threshold=0.6)
    assert (given.threshold, given.threshold_source) == (0.6, "given")


def test_random_weights_are_recorded_as_never_trained(caplog):
    with pytest.warns(UserWarning, match="no weights"), logs_warning(caplog, re.escape(RANDOM_WARNING)):
        rec = FaceRecognizer(TINY, pretrained=False, detector=object())
    assert rec.card.faces == "none" and not rec.reliable


def test_a_galleries_threshold_replaces_the_cards(model, tmp_path):
    path = tmp_path / "w.safetensors"
    save_weights(model, path, card=REAL.with_threshold(THRESHOLD))
    rec = FaceRecognizer(TINY, path, detector=object())
    rec.gallery.save(tmp_path / "g", threshold=0.55, threshold_source="best-accuracy on the gallery's pairs")
    fresh = FaceRecognizer(TINY, path, detector=object())
    Gallery.open(tmp_path / "g").attach(fresh)
    assert (fresh.threshold, fresh.threshold_source) == (0.55, "best-accuracy on the gallery's pairs")


def test_a_card_that_lies_about_its_threshold_range_is_refused_when_written_by_hand(model, tmp_path, caplog):
    """A card written by another tool with a threshold of -1 (accept everything) is not used."""
    path = tmp_path / "w.safetensors"
    save_weights(model, path)
    tensors, meta = read_safetensors(path)
    bad = json.loads(REAL.with_threshold(THRESHOLD).to_json())
    bad["threshold"]["cosine"] = -1.0
    atomic_save_file(tensors, path, {**meta, CARD_KEY: json.dumps(bad)})
    with logs_warning(caplog, "threshold.cosine must be in"):
        rec = FaceRecognizer(TINY, path, detector=object())
    assert rec.threshold_source.startswith("uncalibrated")
