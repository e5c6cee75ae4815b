import pytest
import torch

import facelivt
from facelivt.models import VARIANTS, count_batchnorm
from facelivt.models.layers import MHLA, MHSA

NAMES = ["facelivt_s", "facelivt_m", "facelivt_s_mhsa", "facelivt_m_mhsa", "facelivt_mplus_mhsa", "facelivt_l_mhsa"]


def test_list_models_has_every_variant():
    assert set(NAMES) <= set(facelivt.list_models())
    assert list(VARIANTS) == NAMES


def test_unknown_name_lists_valid_ones():
    with pytest.raises(ValueError) as err:
        facelivt.create_model("facelivt_xl")
    for name in NAMES:
        assert name in str(err.value)


def test_unknown_override_is_refused():
    with pytest.raises(ValueError, match="num_heads"):
        facelivt.create_model("facelivt_s", num_head=8)


@pytest.mark.parametrize("name", NAMES)
def test_shapes_and_mixers(name):
    model = facelivt.create_model(name).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 112, 112))
    assert out.shape == (2, 512)
    assert torch.isfinite(out).all()
    mixer = MHLA if VARIANTS[name].mixer == "mhla" else MHSA
    n_mixers = sum(isinstance(m, mixer) for m in model.modules())
    assert n_mixers == sum(VARIANTS[name].depths[2:])
    other = MHSA if mixer is MHLA else MHLA
    assert not any(isinstance(m, other) for m in model.modules())


def test_overrides_embedding_heads_and_head():
    m = facelivt.create_model("facelivt_s", embedding_size=128, num_heads=8, head="gdc").eval()
    assert m(torch.randn(1, 3, 112, 112)).shape == (1, 128)
    heads = {mod.num_heads for mod in m.modules() if isinstance(mod, MHLA)}
    assert heads == {8}
    with pytest.raises(ValueError, match="num_heads"):
        facelivt.create_model("facelivt_s", num_heads=7)
    with pytest.raises(ValueError, match="head"):
        facelivt.create_model("facelivt_s", head="avg")


def test_mhla_token_count_checked():
    m = facelivt.create_model("facelivt_s").eval()
    with pytest.raises(ValueError, match="tokens"):
        m(torch.randn(1, 3, 128, 128))
    with pytest.raises(ValueError, match="Bx3xHxW"):
        m(torch.randn(3, 112, 112))


def test_init_follows_spec():
    m = facelivt.create_model("facelivt_s")
    ffn_last = m.stages[0].blocks[0].ffn.fn.fc2.bn
    assert torch.count_nonzero(ffn_last.weight) == 0
    assert torch.all(m.stages[0].blocks[0].ffn.fn.fc1.bn.weight == 1)
    w = m.stages[1].downsample.pw.conv.weight
    assert w.abs().max() <= 0.04 + 1e-6 and 0.015 < w.std() < 0.025
    assert count_batchnorm(m) > 0


def test_gdc_head_layout():
    m = facelivt.create_model("facelivt_s", head="gdc")
    dw = m.head.dw.conv
    assert dw.kernel_size == (4, 4) and dw.padding == (0, 0) and dw.groups == 320 and dw.bias is None
    assert m.head.fc.bias is None and m.head.norm.num_features == 512
