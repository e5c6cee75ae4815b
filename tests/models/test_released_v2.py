"""FaceLiVTv2: the authors' released layout (their backbones/facelivtv2.py) against vectors made with their code."""
import pytest
import torch

import facelivt
from facelivt.models import CheckpointMismatchError, convert_released_state_dict
from facelivt.models.facelivtv2 import LiteMHLA, LiteMHLAFolded

FNAME = "official_facelivtv2_s.pt"


@pytest.fixture(scope="module")
def ref(shared_dir):
    return torch.load(shared_dir / "reference" / FNAME, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def loaded(ref):
    model = facelivt.create_model("facelivtv2_s").eval()
    model.load_state_dict(convert_released_state_dict(ref["state_dict"], "facelivtv2_s"))
    return model


def test_reference_file_is_v2_s(ref):
    assert ref["variant"] == "facelivtv2_s"
    # the file's Lite MHLA is not at its init (1e-5): the vectors depend on it
    ls = ref["state_dict"]["stages.2.blocks.0.block.1.m.ls"]
    assert ls.abs().min() > 1e-3


def test_released_vectors_reproduced(ref, loaded):
    with torch.no_grad():
        out = loaded(ref["input"])
        deploy = facelivt.reparameterize_model(loaded)(ref["input"])
    assert (out - ref["output"]).abs().max() < 1e-5
    assert (deploy - ref["output_deploy"]).abs().max() < 1e-5
    assert any(isinstance(m, LiteMHLAFolded) for m in facelivt.reparameterize_model(loaded).modules())


def test_variant_tag_is_enough(ref):
    """The whole file (variant tag + state_dict), as `facelivt convert` reads it, converts too."""
    converted = convert_released_state_dict(ref, "facelivtv2_s")
    assert set(converted) == set(facelivt.create_model("facelivtv2_s").state_dict())


def test_lite_mhla_matters(ref, loaded):
    """The Lite MHLA contributes: without it (identity mixer branch) the vectors are missed by far."""
    for m in loaded.modules():
        if isinstance(m, LiteMHLA):
            m.forward = lambda x: torch.zeros_like(x)
    try:
        with torch.no_grad():
            assert (loaded(ref["input"]) - ref["output"]).abs().max() > 1e-3
    finally:
        for m in loaded.modules():
            if isinstance(m, LiteMHLA):
                del m.forward


def test_wrong_variant_named(ref):
    with pytest.raises(CheckpointMismatchError, match="facelivtv2_xs"):
        convert_released_state_dict(ref, "facelivtv2_xs")
    with pytest.raises(CheckpointMismatchError, match="shape mismatch"):
        convert_released_state_dict(ref["state_dict"], "facelivtv2_m")
    with pytest.raises(CheckpointMismatchError, match="FaceLiVTv2"):
        convert_released_state_dict(ref["state_dict"], "facelivt_s")


def test_v1_file_asked_for_as_v2(shared_dir):
    v1 = torch.load(shared_dir / "reference" / "official_facelivt_s.pt", map_location="cpu", weights_only=True)
    with pytest.raises(CheckpointMismatchError, match="v1"):
        convert_released_state_dict(v1["state_dict"], "facelivtv2_s")


def test_missing_extra_and_misshaped_keys_named(ref):
    sd = dict(ref["state_dict"])
    missing = dict(sd)
    del missing["pre_head.1.c.weight"]
    with pytest.raises(CheckpointMismatchError, match=r"missing keys.*head\.dw\.conv\.weight"):
        convert_released_state_dict(missing, "facelivtv2_s")
    extra = dict(sd)
    extra["pre_head.2.c.weight"] = torch.zeros(3)
    with pytest.raises(CheckpointMismatchError, match=r"unexpected keys.*pre_head\.2\.c\.weight"):
        convert_released_state_dict(extra, "facelivtv2_s")
    bad = dict(sd)
    bad["stages.2.blocks.0.block.1.m.norm.alpha"] = torch.zeros(1, 191, 1)
    with pytest.raises(CheckpointMismatchError, match=r"stages\.2\.blocks\.0\.mixer\.1\.fn\.alpha.*191"):
        convert_released_state_dict(bad, "facelivtv2_s")
    gap = dict(sd)
    del gap["stages.3.blocks.0.block.1.m.lin.2.weight"]
    with pytest.raises(CheckpointMismatchError, match="heads"):
        convert_released_state_dict(gap, "facelivtv2_s")
