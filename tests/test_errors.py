"""Errors a user can cause are FaceLiVTErrors that still are the built-in they were before."""
from __future__ import annotations

import pytest
from torch import nn

from facelivt.data.imaging import BadSampleTracker, TooManyBadSamplesError
from facelivt.deploy.counting import count_macs
from facelivt.deploy.onnx_export import export_onnx
from facelivt.errors import FaceLiVTError, InputNotFoundError, InvalidInputError, UnknownNameError, check_input_file
from facelivt.inference.gallery import Gallery
from facelivt.models import create_model
from facelivt.settings import apply_overrides
from facelivt.training.config import Config, load_config
from log_helpers import logs_warning


def test_unknown_model_name():
    with pytest.raises(InvalidInputError, match="unknown model 'nosuch'") as info:
        create_model("nosuch")
    assert isinstance(info.value, ValueError) and isinstance(info.value, FaceLiVTError)


def test_config_mistakes(tmp_path):
    with pytest.raises(FaceLiVTError, match="not of the form key=value"):
        apply_overrides({}, ["optim.lr"], Config)
    with pytest.raises(InputNotFoundError) as info:
        load_config(tmp_path / "missing.yaml")
    assert isinstance(info.value, FileNotFoundError)


def test_unknown_gallery_identity():
    gallery = Gallery(dim=4, backend="numpy")
    with pytest.raises(UnknownNameError) as info:
        gallery.remove("nobody")
    assert isinstance(info.value, KeyError)


def test_too_many_bad_samples_is_a_user_error(caplog):
    tracker = BadSampleTracker(4, max_bad_fraction=0.0, min_reads=1, name="toy")
    with pytest.raises(TooManyBadSamplesError, match="corrupt") as info, logs_warning(caplog, "toy: skipping bad sample"):
        tracker.mark_bad(0, "sample 0", "broken")
    assert isinstance(info.value, RuntimeError) and isinstance(info.value, FaceLiVTError)


@pytest.mark.parametrize("size", [-3, 0, 2])
def test_count_macs_at_a_size_the_model_cannot_take(size):
    model = nn.Sequential(nn.Conv2d(3, 4, 5), nn.Flatten())
    with pytest.raises(InvalidInputError):
        count_macs(model, size)


def test_export_with_an_opset_torch_cannot_write(tmp_path):
    pytest.importorskip("onnx")
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()
    with pytest.raises(InvalidInputError, match="opset 3"):
        export_onnx(model, tmp_path / "m.onnx", input_size=16, opset=3)
    assert not list(tmp_path.iterdir())


def test_check_input_file_tells_a_folder_from_nothing(tmp_path):
    (tmp_path / "w.safetensors").write_bytes(b"x")
    (tmp_path / "d.safetensors").mkdir()
    assert check_input_file(str(tmp_path / "w.safetensors"), "weights file") == tmp_path / "w.safetensors"
    with pytest.raises(InvalidInputError) as info:
        check_input_file(tmp_path / "d.safetensors", "weights file")
    assert str(info.value) == f"{tmp_path / 'd.safetensors'} is a folder, not a weights file"
    with pytest.raises(InputNotFoundError) as info:
        check_input_file(tmp_path / "n.safetensors", "weights file")
    assert str(info.value) == f"weights file not found: {tmp_path / 'n.safetensors'}"
