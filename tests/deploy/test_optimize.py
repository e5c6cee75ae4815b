import pytest
import torch

import facelivt
from model_helpers import randomize_model


@pytest.mark.parametrize("name", ["facelivt_s", "facelivtv2_xs"])
@pytest.mark.parametrize("backend", ["onnxruntime", "torchscript", "eager"])
def test_optimize_same_function_any_batch(backend, name, faces_batch):
    model = facelivt.create_model(name).eval()
    if name.startswith("facelivtv2"):
        randomize_model(model)  # a fresh Lite MHLA (alpha = ls = 1e-5) would hide mistakes in it
    fast = facelivt.optimize_for_inference(model, backend=backend)
    assert fast.backend == backend
    with torch.no_grad():
        ref = model(faces_batch)
        assert (fast(faces_batch) - ref).abs().max() < 1e-4
        assert (fast(faces_batch[:1]) - ref[:1]).abs().max() < 1e-4


def test_auto_falls_back_when_torchscript_fails(monkeypatch):
    import facelivt.deploy.optimize as opt

    def broken(*a, **k):
        raise RuntimeError("no TorchScript here")

    monkeypatch.setattr(opt, "_onnxruntime", broken)
    monkeypatch.setattr(opt, "_torchscript", broken)
    monkeypatch.setattr(opt, "_compile", broken)
    model = facelivt.create_model("facelivt_s_mhsa").eval()
    with pytest.warns(RuntimeWarning, match="unavailable"):
        fast = facelivt.optimize_for_inference(model)
    assert fast.backend == "eager"
    x = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        assert (fast(x) - model(x)).abs().max() < 1e-4
    with pytest.raises(RuntimeError, match="torchscript"):
        facelivt.optimize_for_inference(model, backend="torchscript")
    with pytest.raises(ValueError, match="backend"):
        facelivt.optimize_for_inference(model, backend="tensorrt")


@pytest.mark.slow
@pytest.mark.parametrize("channels_last", [False, True])
def test_compile_backend_same_function(channels_last):
    # NCHW: the input check of FaceLiVT.forward inside the compiled graph crashed the process (torch 2.13)
    pytest.importorskip("torch._inductor")
    model = facelivt.create_model("facelivt_s").eval()
    fast = facelivt.optimize_for_inference(model, backend="compile", channels_last=channels_last)
    x = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        assert (fast(x) - model(x)).abs().max() < 1e-4


def test_auto_prefers_onnxruntime_on_cpu():
    fast = facelivt.optimize_for_inference(facelivt.create_model("facelivt_s").eval())
    assert fast.backend == "onnxruntime"
