"""Peer models: EdgeFace-XS and MobileFaceNet, registered beside FaceLiVT."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import facelivt
from facelivt.deploy import counting
from facelivt.deploy.counting import count_macs, count_params
from facelivt.models.peers.edgeface import LowRankLinear, low_rank
from model_helpers import randomize_model


def test_peers_are_registered():
    names = facelivt.list_models()
    assert "edgeface_xs" in names and "mobilefacenet" in names
    m = facelivt.create_model("edgeface_xs")
    assert m.model_name == "edgeface_xs"


def test_edgeface_xs_counts_match_the_paper():
    model = facelivt.create_model("edgeface_xs").eval()
    # EdgeFace-XS (gamma 0.6): 1.77 M parameters.
    assert count_params(model) == pytest.approx(1.77e6, rel=0.005)
    # Its published 154 M is FLOPs = 2 x the multiply-accumulates of convs, linears and matmuls.
    rules = counting._LEAF_RULES
    try:
        counting._LEAF_RULES = [r for r in rules if r[0] in (nn.Conv2d, nn.Linear)]
        core_macs = count_macs(model)
    finally:
        counting._LEAF_RULES = rules
    assert 2 * core_macs / 1e6 == pytest.approx(154.0, rel=0.01)
    # ptflops-style MACs (norms, GELUs and pooling included), as the FaceLiVT table counts them.
    assert count_macs(model) / 1e6 == pytest.approx(78.7, rel=0.01)


def test_edgeface_every_linear_is_low_rank():
    model = facelivt.create_model("edgeface_xs")
    plain = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and not n.endswith((".linear1", ".linear2"))]
    assert plain == []
    pairs = [m for m in model.modules() if isinstance(m, LowRankLinear)]
    assert len(pairs) == 2 * 18 + 2 * 3 + 1  # MLPs of all 18 blocks, qkv + proj of the 3 SDTA blocks, head
    head = model.head.fc
    assert head.linear1.in_features == 192 and head.linear2.out_features == 512
    assert head.linear1.out_features == low_rank(192, 512, 0.6) == 115
    assert low_rank(3, 10, 0.6) == 2  # never below 2


def test_edgeface_architecture():
    model = facelivt.create_model("edgeface_xs")
    widths = [s.blocks[0].norm.normalized_shape[0] if hasattr(s.blocks[0], "conv_dw") else None for s in model.stages]
    assert widths == [32, 64, 100, 192]
    assert [len(s.blocks) for s in model.stages] == [3, 3, 9, 3]
    assert [s.blocks[0].conv_dw.kernel_size[0] for s in model.stages] == [3, 5, 7, 9]
    kinds = [type(s.blocks[-1]).__name__ for s in model.stages]
    assert kinds == ["ConvEncoder", "SDTABlock", "SDTABlock", "SDTABlock"]
    assert model.stages[1].blocks[-1].pos_embd is not None and model.stages[2].blocks[-1].pos_embd is None


def test_mobilefacenet_counts():
    model = facelivt.create_model("mobilefacenet").eval()
    assert 0.95e6 < count_params(model) < 1.25e6
    deploy = facelivt.reparameterize_model(model)
    assert count_macs(deploy) / 1e6 == pytest.approx(227.1, rel=0.01)


@pytest.mark.parametrize("name", ["edgeface_xs", "mobilefacenet"])
def test_peer_deploy_form_same_function(name, faces_batch):
    model = randomize_model(facelivt.create_model(name)).eval()
    deploy = facelivt.reparameterize_model(model)
    assert sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in deploy.modules()) == 0
    with torch.no_grad():
        ref = model(faces_batch)
        out = deploy(faces_batch)
    assert ref.shape == (len(faces_batch), 512)
    assert (ref - out).abs().max().item() < 1e-4 * max(1.0, ref.abs().max().item())
    # the original is left untouched (gamma still there for EdgeFace)
    if name == "edgeface_xs":
        assert model.stages[0].blocks[0].gamma is not None and deploy.stages[0].blocks[0].gamma is None


@pytest.mark.parametrize("name", ["edgeface_xs", "mobilefacenet"])
def test_peer_rejects_bad_input(name):
    model = facelivt.create_model(name).eval()
    with pytest.raises(ValueError, match="Bx3xHxW"):
        model(torch.zeros(1, 1, 112, 112))


def test_peer_options_validated():
    with pytest.raises(ValueError, match="rank_ratio"):
        facelivt.create_model("edgeface_xs", rank_ratio=1.5)
    with pytest.raises(ValueError, match="divisible by 16"):
        from facelivt.models.peers.mobilefacenet import MobileFaceNet

        MobileFaceNet(input_size=100)
    assert facelivt.create_model("edgeface_xs", embedding_size=128).eval()(torch.zeros(1, 3, 112, 112)).shape == (1, 128)


def test_peer_weights_round_trip(tmp_path):
    model = randomize_model(facelivt.create_model("edgeface_xs")).eval()
    path = tmp_path / "edgeface.safetensors"
    facelivt.save_weights(model, path)
    loaded = facelivt.load_model("edgeface_xs", path, deploy=True)
    x = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        assert (loaded(x) - model(x)).abs().max() < 1e-5
