"""FaceLiVTv2 variants (arXiv 2604.09127): registry, overrides, structure and init."""
import pytest
import torch
from torch import nn

import facelivt
from facelivt.models.config import V2_VARIANTS
from facelivt.models.facelivtv2 import GDConvHead, LiteMHLA
from facelivt.models.layers import FFN, MHLA

NAMES = ["facelivtv2_xs", "facelivtv2_s", "facelivtv2_m", "facelivtv2_l"]


def test_registry_has_the_four_variants():
    assert set(NAMES) <= set(facelivt.list_models())
    assert list(V2_VARIANTS) == NAMES


@pytest.mark.parametrize("name", ["facelivtv2_xs", "facelivtv2_l"])
def test_shapes_and_mixers(name):
    cfg = V2_VARIANTS[name]
    model = facelivt.create_model(name).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 112, 112))
    assert out.shape == (2, 512) and torch.isfinite(out).all()
    mhla = [m for m in model.modules() if isinstance(m, LiteMHLA)]
    assert len(mhla) == sum(cfg.depths[2:])
    assert {m.num_tokens for m in mhla} == {49, 16}
    assert not any(isinstance(m, MHLA) for m in model.modules())
    # one (heads, N, N) weight per mixer: all heads in one matmul
    assert {tuple(m.weight.shape[:1]) for m in mhla} == {(4,)}
    # FFN ratio 2 everywhere (stages and down-sampling)
    for m in model.modules():
        if isinstance(m, FFN):
            assert m.fc1.conv.out_channels == 2 * m.fc1.conv.in_channels
    assert model.head.proj.conv.out_channels == 1284


def test_overrides():
    m = facelivt.create_model("facelivtv2_xs", embedding_size=128, num_heads=8).eval()
    assert m(torch.randn(1, 3, 112, 112)).shape == (1, 128)
    assert {x.num_heads for x in m.modules() if isinstance(x, LiteMHLA)} == {8}
    assert {x.weight.shape[0] for x in m.modules() if isinstance(x, LiteMHLA)} == {8}
    with pytest.raises(ValueError, match="num_heads"):
        facelivt.create_model("facelivtv2_xs", num_heads=3)
    with pytest.raises(ValueError, match="gdc"):
        facelivt.create_model("facelivtv2_xs", head="gap")
    with pytest.raises(ValueError, match="num_heads"):
        facelivt.create_model("facelivtv2_xs", num_head=8)


def test_token_count_and_input_checked():
    m = facelivt.create_model("facelivtv2_xs").eval()
    with pytest.raises(ValueError, match="tokens"):
        m(torch.randn(1, 3, 128, 128))
    with pytest.raises(ValueError, match="Bx3xHxW"):
        m(torch.randn(3, 112, 112))


def test_init_follows_spec():
    m = facelivt.create_model("facelivtv2_xs")
    mhla = next(x for x in m.modules() if isinstance(x, LiteMHLA))
    assert torch.all(mhla.alpha == 1e-5) and torch.all(mhla.ls == 1e-5) and torch.all(mhla.beta == 0)
    assert torch.all(mhla.bias == 0) and 0.01 < mhla.weight.std() < 0.03
    ffn_last = m.stages[0].blocks[0].ffn.fn.fc2.bn
    assert torch.count_nonzero(ffn_last.weight) == 0
    assert isinstance(m.head, GDConvHead)
    dw = m.head.dw.conv
    assert dw.kernel_size == (4, 4) and dw.padding == (0, 0) and dw.groups == 1284
    assert m.head.fc.bias is not None


def test_lite_mhla_matches_its_definition():
    """Affine, 4 contiguous heads with their own Linear(N -> N), concatenated in order, layer scale."""
    torch.manual_seed(0)
    mod = LiteMHLA(8, 4, num_heads=4)
    with torch.no_grad():
        for p in mod.parameters():
            p.copy_(torch.randn(p.shape))
    x = torch.randn(2, 8, 2, 2)
    t = mod.alpha * x.reshape(2, 8, 4) + mod.beta
    heads = [nn.functional.linear(t[:, 2 * h: 2 * h + 2], mod.weight[h], mod.bias[h]) for h in range(4)]
    expected = (torch.cat(heads, 1).reshape(2, 8, 2, 2)) * mod.ls
    assert torch.allclose(mod(x), expected, atol=1e-5)
