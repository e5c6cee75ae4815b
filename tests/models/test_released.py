"""The authors' released checkpoint layout (models/released.py): their v1 (backbones/facelivt.py) and v2
(backbones/facelivtv2.py) key layouts, against reference files made with their code. That a reference file
gives their vectors, in train and deploy form, is checked for every file in test_models.py; here: the
vectors depend on what the conversion gets right, and wrong files are named."""
import pytest
import torch

import facelivt
from facelivt.models import CheckpointMismatchError, convert_released_state_dict
from facelivt.models.facelivtv2 import LiteMHLA
from facelivt.models.layers import MHLA


def _load(shared_dir, fname):
    return torch.load(shared_dir / "reference" / fname, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def v1(shared_dir):
    return _load(shared_dir, "official_facelivt_s.pt")


@pytest.fixture(scope="module")
def v2(shared_dir):
    return _load(shared_dir, "official_facelivtv2_s.pt")


def _loaded(ref, name):
    model = facelivt.create_model(name).eval()
    model.load_state_dict(convert_released_state_dict(ref["state_dict"], name))
    return model


def test_mhla_interleave_matters(v1):
    """Without the released channel interleave the output misses the vectors by far."""
    model = _loaded(v1, "facelivt_s")

    def no_interleave(self, x):
        b, c, h, w = x.shape
        x = self.norm(x).reshape(b, self.num_heads, c // self.num_heads, h * w)
        x = torch.nn.functional.gelu(x @ self.w1.transpose(1, 2) + self.b1.unsqueeze(1))
        x = x @ self.w2.transpose(1, 2) + self.b2.unsqueeze(1)
        return x.reshape(b, c, h, w)

    for m in model.modules():
        if isinstance(m, MHLA):
            m.forward = no_interleave.__get__(m)
    with torch.no_grad():
        assert (model(v1["input"]) - v1["output"]).abs().max() > 1e-2


def test_reference_file_is_v2_s(v2):
    assert v2["variant"] == "facelivtv2_s"
    # the file's Lite MHLA is not at its init (1e-5): the vectors depend on it
    ls = v2["state_dict"]["stages.2.blocks.0.block.1.m.ls"]
    assert ls.abs().min() > 1e-3


def test_lite_mhla_matters(v2):
    """The Lite MHLA contributes: without it (identity mixer branch) the vectors are missed by far."""
    model = _loaded(v2, "facelivtv2_s")
    for m in model.modules():
        if isinstance(m, LiteMHLA):
            m.forward = lambda x: torch.zeros_like(x)
    with torch.no_grad():
        assert (model(v2["input"]) - v2["output"]).abs().max() > 1e-3


def test_variant_tag_is_enough(v2):
    """The whole file (variant tag + state_dict), as `facelivt convert` reads it, converts too."""
    converted = convert_released_state_dict(v2, "facelivtv2_s")
    assert set(converted) == set(facelivt.create_model("facelivtv2_s").state_dict())


def test_ddp_prefix_and_wrappers_accepted(v1):
    wrapped = {"model": {f"module.{k}": v for k, v in v1["state_dict"].items()}}
    converted = convert_released_state_dict(wrapped, "facelivt_s")
    assert set(converted) == set(facelivt.create_model("facelivt_s").state_dict())


def test_wrong_variant_named(v1, v2):
    with pytest.raises(CheckpointMismatchError, match="facelivt_m"):
        convert_released_state_dict(v1, "facelivt_m")
    # without the variant tag, the shapes give it away
    with pytest.raises(CheckpointMismatchError, match="shape mismatch"):
        convert_released_state_dict(v1["state_dict"], "facelivt_m")
    with pytest.raises(CheckpointMismatchError, match="missing keys|unexpected keys"):
        convert_released_state_dict(v1["state_dict"], "facelivt_s_mhsa")
    with pytest.raises(CheckpointMismatchError, match="facelivtv2_xs"):
        convert_released_state_dict(v2, "facelivtv2_xs")
    with pytest.raises(CheckpointMismatchError, match="shape mismatch"):
        convert_released_state_dict(v2["state_dict"], "facelivtv2_m")
    with pytest.raises(CheckpointMismatchError, match="FaceLiVTv2"):
        convert_released_state_dict(v2["state_dict"], "facelivt_s")
    with pytest.raises(CheckpointMismatchError, match="v1"):
        convert_released_state_dict(v1["state_dict"], "facelivtv2_s")


def test_missing_extra_and_misshaped_keys_named(v1):
    sd = dict(v1["state_dict"])
    missing = dict(sd)
    del missing["head.classifier.l.weight"]
    with pytest.raises(CheckpointMismatchError, match=r"missing keys.*head\.fc\.weight"):
        convert_released_state_dict(missing, "facelivt_s")
    extra = dict(sd)
    extra["head.classifier.extra.weight"] = torch.zeros(3)
    with pytest.raises(CheckpointMismatchError, match=r"unexpected keys.*head\.classifier\.extra\.weight"):
        convert_released_state_dict(extra, "facelivt_s")
    bad = dict(sd)
    bad["patch_embedds.1.spatial.1.c.weight"] = torch.zeros(81, 40, 1, 1)
    with pytest.raises(CheckpointMismatchError, match=r"stages\.1\.downsample\.pw\.conv\.weight.*81"):
        convert_released_state_dict(bad, "facelivt_s")
    gap = dict(sd)
    del gap["stages.3.blocks.0.block.0.m.linear1.5.weight"]
    with pytest.raises(CheckpointMismatchError, match="heads"):
        convert_released_state_dict(gap, "facelivt_s")
    with pytest.raises(CheckpointMismatchError, match="state_dict"):
        convert_released_state_dict({"a": 1}, "facelivt_s")


def test_v2_missing_extra_and_misshaped_keys_named(v2):
    sd = dict(v2["state_dict"])
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
