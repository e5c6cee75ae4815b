"""Each registry model carries its input preprocessing as data (``model.preprocess``)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from facelivt.data.transforms import to_tensor, to_tensor_batch, to_uint8
from facelivt.errors import InvalidInputError
from facelivt.models import registry
from facelivt.models import DEFAULT_PREPROCESS, Preprocess, create_model, list_models, preprocess_of, register_model, reparameterize_model


def _old_formula(images: np.ndarray) -> torch.Tensor:
    """What evaluation, inference, export and the benchmark crops wrote out before."""
    t = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    return (t / 255.0 - 0.5) / 0.5


@pytest.mark.parametrize("name", list_models())
def test_every_registry_model_carries_its_preprocessing(name):
    model = create_model(name)
    assert model.preprocess == Preprocess(input_size=112, mean=0.5, std=0.5, color="RGB")
    assert reparameterize_model(model).preprocess == model.preprocess  # the deploy form keeps it
    assert preprocess_of(model) is model.preprocess


def test_input_size_override_reaches_the_preprocessing():
    assert create_model("facelivt_s", input_size=128).preprocess.input_size == 128


def test_a_registered_model_keeps_the_preprocessing_it_was_registered_with(monkeypatch):
    # the registry as it was, after the test (the CLI's model lists must not see this one)
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry, "_PREPROCESS", dict(registry._PREPROCESS))
    name = "test_preprocess_bgr_model"
    register_model(name, lambda **kw: nn.Linear(2, 2), preprocess=Preprocess(mean=0.0, std=1.0, color="BGR"))
    assert create_model(name).preprocess == Preprocess(112, 0.0, 1.0, "BGR")


def test_bit_identical_to_the_formula_it_replaces():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 112, 112, 3), dtype=np.uint8)
    expected = _old_formula(images)
    for got in (DEFAULT_PREPROCESS.batch(images), to_tensor_batch(images), preprocess_of(create_model("facelivt_s")).batch(images)):
        assert got.dtype == torch.float32 and torch.equal(got, expected)
    assert torch.equal(to_tensor(images[0]), expected[0])
    assert np.array_equal(to_uint8(expected), images) and np.array_equal(DEFAULT_PREPROCESS.denormalize(expected[0]), images[0])


def test_models_outside_the_registry_get_the_default_at_their_size():
    plain = nn.Linear(2, 2)
    assert preprocess_of(plain) == DEFAULT_PREPROCESS
    plain.cfg = type("Cfg", (), {"input_size": 96})()
    assert preprocess_of(plain).input_size == 96
    assert preprocess_of(plain, 64).input_size == 64


def test_describe_is_the_metadata_line_of_the_exports():
    assert DEFAULT_PREPROCESS.describe() == "RGB 112x112, (pixel/255 - 0.5) / 0.5"


@pytest.mark.parametrize("kwargs", [{"input_size": 0}, {"std": 0.0}, {"color": "YUV"}])
def test_invalid_preprocessing_is_refused(kwargs):
    with pytest.raises(InvalidInputError):
        Preprocess(**kwargs)
