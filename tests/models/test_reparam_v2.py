"""FaceLiVTv2 deploy form: every fold exact, no BatchNorm, the Lite MHLA affine and layer scale folded."""
import pytest
import torch
from torch import nn

import facelivt
from facelivt.models import count_batchnorm
from facelivt.models.facelivtv2 import GDConvHead, LiteMHLA, LiteMHLAFolded
from facelivt.models.layers import RepConv, Residual

NAMES = ["facelivtv2_xs", "facelivtv2_s", "facelivtv2_m", "facelivtv2_l"]


def _relative_error(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize("name", NAMES)
def test_deploy_equals_train_and_is_folded(name, randomized, faces_batch):
    model = randomized(facelivt.create_model(name)).eval()
    deploy = facelivt.reparameterize_model(model)
    with torch.no_grad():
        assert _relative_error(deploy(faces_batch), model(faces_batch)) < 1e-5
    assert count_batchnorm(deploy) == 0
    assert not any(isinstance(m, (RepConv, GDConvHead)) for m in deploy.modules())
    # every depthwise residual folded into its kernel: the only residuals left wrap FFNs and the Lite MHLA
    assert not any(isinstance(m, Residual) and isinstance(m.fn, nn.Conv2d) for m in deploy.modules())
    mhla = [m for m in deploy.modules() if isinstance(m, LiteMHLA)]
    assert mhla and all(isinstance(m, LiteMHLAFolded) for m in mhla)
    head = [m for m in deploy.head.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert [type(m) for m in head][-1] is nn.Linear and len(head) == 3


@pytest.mark.parametrize("residual,fuse_bn", [(False, True), (True, False), (False, False)])
def test_partial_forms(residual, fuse_bn, randomized):
    model = randomized(facelivt.create_model("facelivtv2_xs")).eval()
    deploy = facelivt.reparameterize_model(model, residual=residual, fuse_bn=fuse_bn)
    x = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        assert _relative_error(deploy(x), model(x)) < 1e-5
    assert (count_batchnorm(deploy) == 0) == fuse_bn
    explicit = [m for m in deploy.modules() if isinstance(m, Residual) and isinstance(m.fn, (nn.Conv2d, nn.Sequential))]
    assert len(explicit) == sum(model.cfg.depths)  # every block's depthwise residual stays explicit
    assert not any(isinstance(m, RepConv) for m in deploy.modules())


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
