"""Export forms of the attention blocks: same function, and a graph without shape arithmetic."""
from __future__ import annotations

import pytest
import torch

import facelivt
from facelivt.deploy.onnx_export import export_onnx
from facelivt.deploy.onnx_graph import graph_ops, optimized_graph
from facelivt.models.export_form import ExportPReLU, export_form_model
from facelivt.models.layers import MHLA, ExportMHLA, ExportMHSA
from facelivt.models.peers.edgeface import ExportSDTA
from model_helpers import randomize_model


@pytest.mark.parametrize(
    "name,opts,kind",
    [
        ("facelivt_s", {}, ExportMHLA),
        ("facelivt_s", {"residual": False, "fuse_bn": False}, ExportMHLA),
        ("facelivt_s_mhsa", {}, ExportMHSA),
        ("edgeface_xs", {}, ExportSDTA),
        ("mobilefacenet", {}, ExportPReLU),
    ],
)
def test_export_form_same_function(name, opts, kind, faces_batch):
    deploy = facelivt.reparameterize_model(randomize_model(facelivt.create_model(name)).eval(), **opts)
    prepared = export_form_model(deploy)
    assert any(isinstance(m, kind) for m in prepared.modules())
    x = torch.cat([faces_batch, faces_batch.flip(-1)])
    with torch.no_grad():
        ref, out = deploy(x), prepared(x)
        one = prepared(x[:1])
    scale = max(1.0, ref.abs().max().item())
    assert (ref - out).abs().max().item() < 2e-5 * scale
    assert (ref[:1] - one).abs().max().item() < 2e-5 * scale
    # the deploy model is not modified
    assert not any(isinstance(m, kind) for m in deploy.modules())


def test_export_mhla_rejects_wrong_map():
    with pytest.raises(ValueError, match="tokens"):
        ExportMHLA(MHLA(32, 49, 16), (4, 4))


def test_export_form_counts_like_the_deploy_form():
    from facelivt.deploy.counting import count_macs

    deploy = facelivt.reparameterize_model(facelivt.create_model("facelivt_s"))
    assert count_macs(export_form_model(deploy)) == count_macs(deploy)


def test_dynamic_batch_graph_has_no_shape_arithmetic(tmp_path, reference_deploy):
    path = export_onnx(reference_deploy, tmp_path / "s.onnx", batch="dynamic")
    ops = graph_ops(path)
    for op in ("Shape", "Gather", "Concat", "Expand", "InstanceNormalization"):
        assert op not in ops, f"{op} in the exported graph: {ops}"
    assert ops["MatMul"] == 16  # two per MHLA block (6 + 2 blocks)
    assert ops["LayerNormalization"] == 8
    run = optimized_graph(path)
    assert "Shape" not in run and "Gather" not in run
    assert run.get("Gelu", 0) + run.get("BiasGelu", 0) >= 26  # every GELU is one fused node
    assert run.get("Conv", 0) == 48
