"""reparameterize_model's partial forms (models/reparam.py): each of its options keeps the function and
folds what it says, for FaceLiVT and FaceLiVTv2. The full deploy form of every registered model (the same
function, no BatchNorm, the train form untouched) is checked in test_models.py."""
import pytest
import torch
from torch import nn

import facelivt
from facelivt.models import count_batchnorm
from facelivt.models.layers import RepConv, Residual


def _relative_error(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


def _explicit_residuals(model: nn.Module) -> list[nn.Module]:
    """Residuals that still add their input: around a depthwise conv (a DWMix identity) or a Sequential."""
    return [m for m in model.modules() if isinstance(m, Residual) and isinstance(m.fn, (nn.Conv2d, nn.Sequential))]


@pytest.mark.parametrize("head", ["gap", "gdc"])
@pytest.mark.parametrize("residual,fuse_bn", [(True, True), (False, True), (True, False), (False, False)])
def test_partial_forms(head, residual, fuse_bn, randomized):
    model = randomized(facelivt.create_model("facelivt_s", head=head)).eval()
    deploy = facelivt.reparameterize_model(model, residual=residual, fuse_bn=fuse_bn)
    x = torch.randn(3, 3, 112, 112)
    with torch.no_grad():
        assert _relative_error(deploy(x), model(x)) < 1e-5
    n_bn = count_batchnorm(deploy)
    residuals = [m for m in deploy.modules() if isinstance(m, Residual)]
    dw_residuals = [r for r in residuals if isinstance(r.fn, nn.Conv2d)]
    if fuse_bn:
        assert n_bn == 0
    else:
        assert n_bn > 0
    if residual and fuse_bn:
        assert dw_residuals == []  # every DWMix identity folded into its kernel
    else:
        assert len(_explicit_residuals(deploy)) >= 6  # 2 + 4 DWMix blocks of stages 1-2 keep an explicit identity
    # no RepConv keeps two branches in any deploy form
    assert not any(isinstance(m, RepConv) for m in deploy.modules())


@pytest.mark.parametrize("residual,fuse_bn", [(False, True), (True, False), (False, False)])
def test_v2_partial_forms(residual, fuse_bn, randomized):
    model = randomized(facelivt.create_model("facelivtv2_xs")).eval()
    deploy = facelivt.reparameterize_model(model, residual=residual, fuse_bn=fuse_bn)
    x = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        assert _relative_error(deploy(x), model(x)) < 1e-5
    assert (count_batchnorm(deploy) == 0) == fuse_bn
    assert len(_explicit_residuals(deploy)) == sum(model.cfg.depths)  # every block's depthwise residual stays explicit
    assert not any(isinstance(m, RepConv) for m in deploy.modules())
