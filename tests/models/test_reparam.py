import pytest
import torch
from torch import nn

import facelivt
from facelivt.models import count_batchnorm
from facelivt.models.layers import RepConv, Residual

NAMES = ["facelivt_s", "facelivt_m", "facelivt_s_mhsa", "facelivt_m_mhsa", "facelivt_mplus_mhsa", "facelivt_l_mhsa"]


def _relative_error(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize("name", NAMES)
def test_deploy_equals_train_and_has_no_batchnorm(name, randomized, faces_batch):
    model = randomized(facelivt.create_model(name)).eval()
    deploy = facelivt.reparameterize_model(model)
    assert count_batchnorm(deploy) == 0
    assert not any(isinstance(m, (RepConv, Residual)) and isinstance(m, RepConv) for m in deploy.modules())
    with torch.no_grad():
        ref = model(faces_batch)
        out = deploy(faces_batch)
    assert _relative_error(out, ref) < 1e-5


def test_input_model_untouched(randomized):
    model = randomized(facelivt.create_model("facelivt_s")).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    modules_before = [type(m) for m in model.modules()]
    facelivt.reparameterize_model(model)
    assert [type(m) for m in model.modules()] == modules_before
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


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
        # 2 + 4 DWMix blocks of stages 1-2 keep an explicit identity
        explicit = [r for r in residuals if isinstance(r.fn, (nn.Conv2d, nn.Sequential))]
        assert len(explicit) >= 6
    # no RepConv keeps two branches in any deploy form
    assert not any(isinstance(m, RepConv) for m in deploy.modules())


def test_gdc_head_folds_to_one_dwconv_and_one_linear(randomized):
    deploy = facelivt.reparameterize_model(randomized(facelivt.create_model("facelivt_s", head="gdc")).eval())
    head = deploy.head
    convs = [m for m in head.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in head.modules() if isinstance(m, nn.Linear)]
    assert len(convs) == 1 and convs[0].groups == 320 and convs[0].kernel_size == (4, 4)
    assert len(linears) == 1 and linears[0].bias is not None
    assert count_batchnorm(head) == 0


def test_repconv_identity_fold_rejected_where_invalid():
    conv = RepConv(8, 16, 3, 1).eval()
    with pytest.raises(ValueError):
        conv.reparameterize(add_identity=True)
