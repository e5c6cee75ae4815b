"""FaceLiVTv2 (models/facelivtv2.py, arXiv 2604.09127): overrides, input checks, initialisation, the Lite
MHLA against its definition and its folded (deploy) form. Every variant is built, counted,
reparameterized and exported in test_models.py."""
import pytest
import torch
from torch import nn

import facelivt
from facelivt.models.facelivtv2 import GDConvHead, LiteMHLA


def _relative_error(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


def test_overrides():
    m = facelivt.create_model("facelivtv2_xs", embedding_size=128, num_heads=8).eval()
    assert m(torch.randn(1, 3, 112, 112)).shape == (1, 128)
    assert {x.num_heads for x in m.modules() if isinstance(x, LiteMHLA)} == {8}
    assert {x.weight.shape[0] for x in m.modules() if isinstance(x, LiteMHLA)} == {8}
    with pytest.raises(ValueError, match="num_heads"):
        facelivt.create_model("facelivtv2_xs", num_heads=3)
    with pytest.raises(ValueError, match="gdc"):
        facelivt.create_model("facelivtv2_xs", head="gap")


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


def test_folded_mixer_exact_in_both_layouts_and_follows_its_parameters(randomized):
    torch.manual_seed(0)
    mod = randomized(facelivt.create_model("facelivtv2_xs")).stages[2].blocks[0].mixer[1].fn
    folded = mod.reparameterize()
    x = torch.randn(3, mod.channels, 7, 7)
    with torch.no_grad():
        ref = mod(x)
        assert _relative_error(folded(x), ref) < 1e-6
        assert _relative_error(folded(x.contiguous(memory_format=torch.channels_last)), ref) < 1e-6
        # a new state (as load_model does for deploy-form weights) is picked up, not a stale fold
        other = LiteMHLA(mod.channels, 49, 4)
        for p in other.parameters():
            p.copy_(torch.randn(p.shape))
        folded.load_state_dict(other.state_dict())
        assert _relative_error(folded(x), other(x)) < 1e-6
    # the deploy form has the train form's parameters (the released deploy count)
    assert sum(p.numel() for p in folded.parameters()) == sum(p.numel() for p in mod.parameters())


def test_deploy_form_fewer_elementwise_ops_than_train(randomized):
    """The fold leaves one matmul, one scale and one bias: the traced graph of the folded mixer has
    fewer ops than the train form's (alpha, beta, matmul, bias, ls)."""
    mod = randomized(facelivt.create_model("facelivtv2_xs")).stages[2].blocks[0].mixer[1].fn.eval()
    folded = mod.reparameterize().eval()
    x = torch.randn(1, mod.channels, 7, 7)

    def count(m):
        g = torch.jit.freeze(torch.jit.trace(m, x).eval()).graph
        return sum(1 for n in g.nodes() if n.kind() in ("aten::mul", "aten::add", "aten::matmul"))

    assert count(folded) < count(mod)
