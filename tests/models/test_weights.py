import os
import pickle

import pytest
import torch

import facelivt
from facelivt.errors import InvalidInputError
from facelivt.inference import FaceRecognizer
from facelivt.models import CheckpointMismatchError, list_models, load_model, save_weights
from facelivt.models.weights import fit_state_dict, read_checkpoint


def test_safetensors_round_trip_train_and_deploy(tmp_path, randomized):
    model = randomized(facelivt.create_model("facelivt_s", head="gdc")).eval()
    x = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        ref = model(x)
    save_weights(model, tmp_path / "train.safetensors")
    deploy = facelivt.reparameterize_model(model)
    save_weights(deploy, tmp_path / "deploy.safetensors")
    assert not list(tmp_path.glob("*.tmp"))
    with torch.no_grad():
        train_loaded = load_model("facelivt_s", tmp_path / "train.safetensors", deploy=False)
        assert torch.allclose(train_loaded(x), ref, atol=1e-6)
        for path in ("train.safetensors", "deploy.safetensors"):
            loaded = load_model("facelivt_s", tmp_path / path)  # head="gdc" comes from the metadata
            assert torch.allclose(loaded(x), ref, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="deploy-form"):
        load_model("facelivt_s", tmp_path / "deploy.safetensors", deploy=False)
    with pytest.raises(CheckpointMismatchError, match="facelivt_s"):
        load_model("facelivt_m", tmp_path / "train.safetensors")


def test_released_pt_loads_directly(shared_dir):
    ref = torch.load(shared_dir / "reference" / "official_facelivt_s_sa.pt", weights_only=True)
    model = load_model("facelivt_s_mhsa", shared_dir / "reference" / "official_facelivt_s_sa.pt")
    with torch.no_grad():
        assert (model(ref["input"]) - ref["output_deploy"]).abs().max() < 1e-5


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_model("facelivt_s", tmp_path / "nope.safetensors")
    model = facelivt.create_model("facelivt_s")
    save_weights(model, tmp_path / "w.safetensors")
    data = (tmp_path / "w.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        load_model("facelivt_s", tmp_path / "cut.safetensors")
    torch.save(model.state_dict(), tmp_path / "w.pt")
    (tmp_path / "cut.pt").write_bytes((tmp_path / "w.pt").read_bytes()[:1000])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        load_model("facelivt_s", tmp_path / "cut.pt")


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {_Evil.marker}",))


def test_malicious_pickle_refused_and_not_run(tmp_path):
    _Evil.marker = tmp_path / "pwned"
    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"state_dict": {"x": _Evil()}}, f)
    with pytest.raises(ValueError, match="refusing to load"):
        load_model("facelivt_s", tmp_path / "evil.pt")
    assert not _Evil.marker.exists()


def test_hubconf_local(tmp_path, randomized):
    model = randomized(facelivt.create_model("facelivt_s")).eval()
    save_weights(model, tmp_path / "w.safetensors")
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    hub = torch.hub.load(repo, "facelivt_s", source="local", weights=str(tmp_path / "w.safetensors"))
    x = torch.randn(1, 3, 112, 112)
    with torch.no_grad():
        assert torch.allclose(hub.eval()(x), model(x), atol=1e-6)


def test_an_unknown_model_is_named_before_the_weights_are_looked_at(tmp_path):
    """--model facelivt_xxl with weights of facelivt_s: the model is unknown (with the list), not a mismatch."""
    save_weights(facelivt.create_model("facelivt_s"), tmp_path / "w.safetensors")
    unknown = f"unknown model 'facelivt_xxl'; available models: {', '.join(list_models())}"
    state, meta = read_checkpoint(tmp_path / "w.safetensors")
    assert meta["model"] == "facelivt_s"
    calls = [
        lambda: fit_state_dict("facelivt_xxl", state, meta, "w.safetensors"),
        lambda: load_model("facelivt_xxl", tmp_path / "w.safetensors"),
        lambda: load_model("facelivt_xxl", tmp_path / "missing.safetensors"),
        lambda: load_model("facelivt_xxl", "facelivt_s"),  # a pretrained name: nothing is fetched
        lambda: load_model("facelivt_xxl", "hf://someone/repo/w.pt"),
        lambda: load_model("facelivt_xxl", pretrained=True),
        lambda: facelivt.create_model("facelivt_xxl", pretrained=True),
        lambda: FaceRecognizer("facelivt_xxl"),
    ]
    for call in calls:
        with pytest.raises(InvalidInputError) as err:
            call()
        assert str(err.value) == unknown
