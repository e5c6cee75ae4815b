"""facelivt.files.check_not_input: an output that is one of the inputs, however it is spelled."""
from __future__ import annotations

import os

import pytest

from facelivt.errors import InvalidInputError
from facelivt.files import check_not_input


@pytest.fixture
def files(tmp_path):
    (tmp_path / "w.safetensors").write_bytes(b"weights")
    os.link(tmp_path / "w.safetensors", tmp_path / "hard.safetensors")
    (tmp_path / "link.safetensors").symlink_to(tmp_path / "w.safetensors")
    (tmp_path / "data" / "person").mkdir(parents=True)
    (tmp_path / "data_link").symlink_to(tmp_path / "data")
    return tmp_path


@pytest.mark.parametrize("out", ["w.safetensors", "hard.safetensors", "link.safetensors", "data/../w.safetensors"])
def test_the_same_file_by_any_name_is_refused(files, out):
    with pytest.raises(InvalidInputError) as info:
        check_not_input(files / out, {"--weights": files / "w.safetensors"})
    assert str(info.value) == (f"refusing to write {files / out}: it is the input --weights {files / 'w.safetensors'}; "
                               "choose another output")


def test_each_input_of_a_list_is_checked_and_named(files):
    with pytest.raises(InvalidInputError, match="it is the input image .*w.safetensors"):
        check_not_input(files / "link.safetensors", {"--weights": None, "image": [files / "data", files / "w.safetensors"]})


def test_what_is_not_a_local_file_is_skipped(files):
    """A pretrained name, an hf:// or https:// reference, a missing file or None names nothing that can be overwritten."""
    inputs = {"--weights": ["facelivt_s", "hf://owner/repo/w.safetensors", "https://host/w.pt", str(files / "missing"), None]}
    for out in ("facelivt_s", "hf://owner/repo/w.safetensors", files / "missing"):
        check_not_input(out, inputs)


def test_another_file_or_a_new_one_is_not_refused(files):
    (files / "other.safetensors").write_bytes(b"weights")  # the same content, another file
    for out in ("other.safetensors", "new.safetensors", "data/w.safetensors"):
        check_not_input(files / out, {"--weights": files / "w.safetensors", "--data": files / "data"})


def test_an_output_inside_an_input_folder(files):
    for out in ("data/run", "data/person/run", "data_link/run", "data/person/../run"):
        check_not_input(files / out, {"data.root": files / "data"})  # allowed unless asked
        with pytest.raises(InvalidInputError, match="it lies inside the input data.root"):
            check_not_input(files / out, {"data.root": files / "data"}, inside_input=True)
    check_not_input(files / "data2", {"data.root": files / "data"}, inside_input=True)  # a prefix of the name only


def test_an_output_folder_holding_an_input(files):
    weights = files / "data" / "person" / "w.safetensors"
    weights.write_bytes(b"weights")
    check_not_input(files / "data", {"model.weights": weights})  # allowed unless asked
    for out in ("data", "data_link", "data/person"):
        with pytest.raises(InvalidInputError, match="that folder holds the input model.weights"):
            check_not_input(files / out, {"model.weights": weights}, holds_input=True)
    check_not_input(files / "data" / "other", {"model.weights": weights}, holds_input=True)
