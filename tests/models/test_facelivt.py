"""The FaceLiVT network (models/facelivt.py): overrides, input checks, initialisation and the GDC head.
Every variant is built, counted, reparameterized and exported in test_models.py."""
import pytest
import torch
from torch import nn

import facelivt
from facelivt.models import count_batchnorm
from facelivt.models.layers import MHLA


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


def test_gdc_head_folds_to_one_dwconv_and_one_linear(randomized):
    deploy = facelivt.reparameterize_model(randomized(facelivt.create_model("facelivt_s", head="gdc")).eval())
    head = deploy.head
    convs = [m for m in head.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in head.modules() if isinstance(m, nn.Linear)]
    assert len(convs) == 1 and convs[0].groups == 320 and convs[0].kernel_size == (4, 4)
    assert len(linears) == 1 and linears[0].bias is not None
    assert count_batchnorm(head) == 0
