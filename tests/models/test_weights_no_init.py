"""Loading weights skips the random initialisation they overwrite, and loads exactly what the ordinary
path (build with random weights, then ``load_state_dict``) loads: same tensors, layouts and outputs."""
import pytest
import torch
from torch import nn

import facelivt
from facelivt.models import layers, list_models, load_model, registry, save_weights
from facelivt.models.weights import empty_model, load_state_dict_strict

MODELS = ["facelivt_s", "facelivtv2_s", "edgeface_xs", "mobilefacenet"]


def _ordinary_load(name: str, src: nn.Module, deploy_form: bool) -> nn.Module:
    """Today's path, spelled out: a model with random weights, filled by load_state_dict."""
    model = registry.build_model(name).eval()
    if deploy_form:
        model = facelivt.reparameterize_model(model)
    load_state_dict_strict(model, src.state_dict(), "test weights")
    return model


def _assert_same(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key
        assert sa[key].stride() == sb[key].stride() and sa[key].dtype == sb[key].dtype, key
    assert [p.requires_grad for p in a.parameters()] == [p.requires_grad for p in b.parameters()]


@pytest.mark.parametrize("deploy_form", [False, True], ids=["train-form", "deploy-form"])
@pytest.mark.parametrize("name", MODELS)
def test_loaded_model_equals_the_ordinary_load(tmp_path, randomized, name, deploy_form):
    src = randomized(registry.build_model(name)).eval()
    if deploy_form:
        src = facelivt.reparameterize_model(src)
    save_weights(src, tmp_path / "w.safetensors")
    loaded = load_model(name, tmp_path / "w.safetensors", deploy=deploy_form)
    ordinary = _ordinary_load(name, src, deploy_form)
    _assert_same(loaded, ordinary)
    x = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        assert torch.equal(loaded(x), ordinary(x))
    assert not loaded.training


def test_create_model_pretrained_file_keeps_train_mode_and_gradients(tmp_path, randomized):
    src = randomized(registry.build_model("facelivtv2_xs")).eval()
    save_weights(src, tmp_path / "w.safetensors")
    model = facelivt.create_model("facelivtv2_xs", pretrained=str(tmp_path / "w.safetensors"))
    assert model.training
    _assert_same(model, src)
    assert all(p.requires_grad and p.device.type == "cpu" for p in model.parameters())


@pytest.mark.parametrize("deploy_form", [False, True], ids=["train-form", "deploy-form"])
def test_loading_runs_no_weight_initialisation(tmp_path, monkeypatch, deploy_form):
    """(Turning train-form weights into the deploy form builds the fused layers afresh: that step is
    not a load and is left out here, by loading train-form weights as they are.)"""
    src = registry.build_model("facelivtv2_s").eval()
    save_weights(facelivt.reparameterize_model(src) if deploy_form else src, tmp_path / "w.safetensors")
    calls = []

    def counting(original):
        def init(tensor, *args, **kwargs):
            if tensor.device.type != "meta":
                calls.append(tuple(tensor.shape))
            return original(tensor, *args, **kwargs)
        return init

    for fn in ("trunc_normal_", "kaiming_uniform_", "uniform_", "normal_"):
        monkeypatch.setattr(nn.init, fn, counting(getattr(nn.init, fn)))
    monkeypatch.setattr(layers, "trunc_normal_", counting(layers.trunc_normal_))
    registry.build_model("facelivtv2_s")
    assert calls, "the counting hooks see an ordinary build's initialisation"
    calls.clear()
    load_model("facelivtv2_s", tmp_path / "w.safetensors", deploy=deploy_form)
    assert calls == []


class _WithUnsavedBuffer(nn.Module):
    """A model with a buffer computed at construction that weights files do not hold."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)
        self.register_buffer("scale", torch.arange(1.0, 5.0), persistent=False)

    def forward(self, x):
        return self.fc(x * self.scale)


def test_a_buffer_not_in_the_weights_is_still_computed(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry, "_PREPROCESS", dict(registry._PREPROCESS))
    registry.register_model("test_unsaved_buffer", lambda **kw: _WithUnsavedBuffer())
    src = registry.build_model("test_unsaved_buffer")
    save_weights(src, tmp_path / "w.safetensors")
    loaded = load_model("test_unsaved_buffer", tmp_path / "w.safetensors", deploy=False)
    assert torch.equal(loaded.scale, torch.arange(1.0, 5.0))
    assert torch.equal(loaded.fc.weight, src.fc.weight)


def test_every_registered_model_builds_without_initialisation():
    for name in list_models():
        model = empty_model(name, {})
        assert all(t.device.type == "cpu" for t in model.state_dict().values()), name
