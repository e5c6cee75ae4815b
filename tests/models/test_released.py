import pytest
import torch

import facelivt
from facelivt.models import CheckpointMismatchError, convert_released_state_dict

CASES = [("official_facelivt_s.pt", "facelivt_s"), ("official_facelivt_s_sa.pt", "facelivt_s_mhsa")]


def _load(shared_dir, fname):
    return torch.load(shared_dir / "reference" / fname, map_location="cpu", weights_only=True)


@pytest.mark.parametrize("fname,name", CASES)
def test_released_vectors_reproduced(shared_dir, fname, name):
    ref = _load(shared_dir, fname)
    model = facelivt.create_model(name).eval()
    model.load_state_dict(convert_released_state_dict(ref["state_dict"], name))
    with torch.no_grad():
        out = model(ref["input"])
        deploy = facelivt.reparameterize_model(model)(ref["input"])
    assert (out - ref["output"]).abs().max() < 1e-5
    assert (deploy - ref["output_deploy"]).abs().max() < 1e-5


def test_mhla_interleave_matters(shared_dir):
    """Without the released channel interleave the output misses the vectors by far."""
    ref = _load(shared_dir, "official_facelivt_s.pt")
    model = facelivt.create_model("facelivt_s").eval()
    model.load_state_dict(convert_released_state_dict(ref["state_dict"], "facelivt_s"))
    from facelivt.models.layers import MHLA

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
        assert (model(ref["input"]) - ref["output"]).abs().max() > 1e-2


def test_wrong_variant_named(shared_dir):
    ref = _load(shared_dir, "official_facelivt_s.pt")
    with pytest.raises(CheckpointMismatchError, match="facelivt_m"):
        convert_released_state_dict(ref, "facelivt_m")
    # without the variant tag, the shapes give it away
    with pytest.raises(CheckpointMismatchError, match="shape mismatch"):
        convert_released_state_dict(ref["state_dict"], "facelivt_m")
    with pytest.raises(CheckpointMismatchError, match="missing keys|unexpected keys"):
        convert_released_state_dict(ref["state_dict"], "facelivt_s_mhsa")


def test_missing_extra_and_misshaped_keys_named(shared_dir):
    sd = dict(_load(shared_dir, "official_facelivt_s.pt")["state_dict"])
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


def test_ddp_prefix_and_wrappers_accepted(shared_dir):
    ref = _load(shared_dir, "official_facelivt_s.pt")
    wrapped = {"model": {f"module.{k}": v for k, v in ref["state_dict"].items()}}
    converted = convert_released_state_dict(wrapped, "facelivt_s")
    assert set(converted) == set(facelivt.create_model("facelivt_s").state_dict())
