"""Weight files are read by content, not by name; pickles that ask to run code are refused as unsafe."""
from __future__ import annotations

import os
import pickle

import pytest
import torch

import facelivt
from facelivt.errors import FaceLiVTError
from facelivt.evaluation.binset import read_bin
from facelivt.models import load_model, save_weights
from facelivt.models.checkpoint_io import (
    SAFETENSORS,
    TORCH_PICKLE,
    TORCH_ZIP,
    CheckpointReadError,
    UnsafeCheckpointError,
    WeightsFormatError,
    safe_torch_load,
    sniff_format,
)


class Planted:
    """Runs ``touch <marker>`` when unpickled by an ordinary unpickler."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(0)
    return facelivt.create_model("facelivt_s").eval()


@pytest.fixture(scope="module")
def files(small_model, tmp_path_factory):
    """The same weights as safetensors and as both torch formats, each also under the other's suffix."""
    root = tmp_path_factory.mktemp("fmt")
    save_weights(small_model, root / "w.safetensors")
    torch.save(small_model.state_dict(), root / "zip.pt")
    torch.save(small_model.state_dict(), root / "legacy.pt", _use_new_zipfile_serialization=False)
    (root / "st_named.pt").write_bytes((root / "w.safetensors").read_bytes())
    (root / "zip_named.safetensors").write_bytes((root / "zip.pt").read_bytes())
    (root / "legacy_named.safetensors").write_bytes((root / "legacy.pt").read_bytes())
    return root


def test_sniff_format(files, tmp_path):
    expected = {"w.safetensors": SAFETENSORS, "st_named.pt": SAFETENSORS, "zip.pt": TORCH_ZIP,
                "zip_named.safetensors": TORCH_ZIP, "legacy.pt": TORCH_PICKLE, "legacy_named.safetensors": TORCH_PICKLE}
    assert {name: sniff_format(files / name) for name in expected} == expected
    (tmp_path / "notes.pt").write_text("these are not weights\n")
    with pytest.raises(WeightsFormatError, match=r"notes\.pt is neither a safetensors file nor a torch checkpoint "
                                                 r"\(it starts with b'these are not we'"):
        sniff_format(tmp_path / "notes.pt")
    (tmp_path / "empty.safetensors").write_bytes(b"")
    with pytest.raises(WeightsFormatError, match="is empty"):
        sniff_format(tmp_path / "empty.safetensors")


@pytest.mark.parametrize("name", ["st_named.pt", "zip_named.safetensors", "legacy_named.safetensors"])
def test_weights_load_whatever_their_suffix(files, small_model, name):
    """Before, a safetensors file named .pt was refused as a pickle asking for objects, and a torch file
    named .safetensors was read as a corrupt safetensors file."""
    x = torch.randn(1, 3, 112, 112, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = small_model(x)
        loaded = load_model("facelivt_s", files / name, deploy=False)
        assert torch.equal(loaded(x), ref)


def test_text_file_as_weights(tmp_path):
    (tmp_path / "w.pt").write_text("not a checkpoint\n")
    with pytest.raises(WeightsFormatError, match="neither a safetensors file nor a torch checkpoint") as err:
        load_model("facelivt_s", tmp_path / "w.pt")
    assert isinstance(err.value, FaceLiVTError) and isinstance(err.value, ValueError)


@pytest.mark.parametrize("how", ["zip", "legacy", "plain pickle"])
def test_planted_pickle_is_refused_as_unsafe_and_never_run(tmp_path, how):
    marker = tmp_path / "ran"
    obj = {"state_dict": {"w": torch.zeros(2)}, "extra": Planted(marker)}
    path = tmp_path / "planted.pt"
    if how == "zip":
        torch.save(obj, path)
    elif how == "legacy":
        torch.save(obj, path, _use_new_zipfile_serialization=False)
    else:
        path.write_bytes(pickle.dumps(obj, protocol=4))
    pickle.loads(pickle.dumps(Planted(marker)))  # the payload is real: an ordinary unpickler runs it
    assert marker.exists()
    marker.unlink()
    with pytest.raises(UnsafeCheckpointError) as err:
        safe_torch_load(path)
    msg = str(err.value)
    assert msg == (f"refusing to load {path} as unsafe: it is not a plain-tensor checkpoint "
                   f"(it asks to run code: {os.system.__module__}.system); facelivt never unpickles arbitrary objects")
    assert "weights_only" not in msg
    with pytest.raises(UnsafeCheckpointError):
        load_model("facelivt_s", path)
    assert not marker.exists()


def test_damaged_torch_files(files, tmp_path):
    for name, keep in (("zip.pt", 4000), ("legacy.pt", 4000), ("legacy.pt", 30)):
        cut = tmp_path / f"cut_{keep}_{name}"
        cut.write_bytes((files / name).read_bytes()[:keep])
        with pytest.raises(CheckpointReadError, match=rf"cannot read checkpoint {cut}: corrupt or truncated\? \(.+\)"):
            safe_torch_load(cut)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_a_verification_bin_given_as_weights_is_named_as_one(files, tmp_path, shared_dir, protocol):
    """A .bin set is a plain pickle too: it is named as a verification set, not 'Unsupported operand 149'."""
    faces = sorted((shared_dir / "data" / "celeba_subset_112").rglob("*.jpg"))[:4]
    assert len(faces) == 4
    images = [p.read_bytes() for p in faces]
    if protocol == 2:  # Python 2's str: no _codecs global
        payload = b"\x80\x02](" + b"".join(b"T" + len(b).to_bytes(4, "little") + b for b in images) + b"e](\x88\x89e\x86."
    else:
        payload = pickle.dumps((images, [True, False]), protocol=protocol)
    path = tmp_path / "lfw.bin"
    path.write_bytes(payload)
    bs = read_bin(path)  # a genuine verification set
    assert bs.images == images and bs.issame.tolist() == [True, False]
    expected = (f"{path} is not a weights file or checkpoint: it looks like a .bin verification set (a pickle of "
                "encoded face images and pair labels; `facelivt eval --bin` reads those)")
    for call in (lambda: safe_torch_load(path), lambda: load_model("facelivt_s", path)):
        with pytest.raises(WeightsFormatError) as err:
            call()
        assert str(err.value) == expected
    cut = tmp_path / "cut.pt"  # a damaged checkpoint is still called damaged
    cut.write_bytes((files / "legacy.pt").read_bytes()[:4000])
    with pytest.raises(CheckpointReadError, match="corrupt or truncated"):
        safe_torch_load(cut)
