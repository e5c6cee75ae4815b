"""Layer-level behaviour that the network tests do not pin down on their own."""
import pytest
import torch

from facelivt.models.layers import RepConv


def two_branch_reference(m: RepConv, x: torch.Tensor) -> torch.Tensor:
    """RepConv as the paper writes it: BN(Conv_kxk(x) + Conv_1x1(x)), two separate convolutions."""
    return m.bn(m.conv_kxk(x) + m.conv_1x1(x))


@pytest.mark.parametrize("in_ch,out_ch,stride,groups", [(3, 8, 2, 1), (8, 8, 1, 8), (8, 8, 2, 8), (6, 12, 1, 1)])
def test_repconv_merged_forward_is_the_two_branch_function_with_the_same_gradients(in_ch, out_ch, stride, groups):
    torch.manual_seed(0)
    m = RepConv(in_ch, out_ch, 3, stride, groups).train()
    with torch.no_grad():
        for p in m.parameters():
            p.normal_()
    x = torch.randn(4, in_ch, 13, 13, requires_grad=True)
    g = torch.randn_like(m(x))

    y = m(x)
    grads = torch.autograd.grad(y, [x, *m.parameters()], g)
    ref_y = two_branch_reference(m, x)
    ref_grads = torch.autograd.grad(ref_y, [x, *m.parameters()], g)

    torch.testing.assert_close(y, ref_y, rtol=1e-5, atol=1e-5)
    names = ["input"] + [n for n, _ in m.named_parameters()]
    for name, a, b in zip(names, grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4, msg=f"gradient of {name} differs")
    # the 1x1 branch's gradient really is non-zero (it is learned, not dropped)
    assert grads[names.index("conv_1x1.weight")].abs().sum() > 0


def test_repconv_merged_forward_in_channels_last_matches_nchw():
    torch.manual_seed(0)
    m = RepConv(3, 8, 3, 2).train()
    x = torch.randn(2, 3, 16, 16)
    ref = m(x)
    ref_grad = torch.autograd.grad(ref.square().sum(), m.conv_1x1.weight)[0]
    mc = m.to(memory_format=torch.channels_last)
    y = mc(x.contiguous(memory_format=torch.channels_last))
    grad = torch.autograd.grad(y.square().sum(), mc.conv_1x1.weight)[0]
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-4, atol=1e-4)


def _pointwise():
    from facelivt.models.layers import PointwiseConv

    torch.manual_seed(0)
    conv = PointwiseConv(16, 24, 1)
    with torch.no_grad():
        conv.bias.normal_()
    return conv


def test_pointwise_conv_linear_path_equals_the_convolution():
    conv = _pointwise()
    for shape in [(1, 16, 7, 7), (2, 16, 4, 4), (4, 16, 28, 28)]:  # linear form, linear form, conv form
        x = torch.randn(shape).contiguous(memory_format=torch.channels_last)
        ref = torch.nn.functional.conv2d(x.contiguous(), conv.weight, conv.bias)
        out = conv(x)
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
        assert out.is_contiguous(memory_format=torch.channels_last)


def test_pointwise_conv_traces_and_exports_as_a_convolution():
    conv = _pointwise().eval()
    x = torch.randn(1, 16, 7, 7).contiguous(memory_format=torch.channels_last)
    traced = torch.jit.trace(conv, x)
    kinds = {n.kind() for n in traced.graph.nodes()}
    assert "aten::_convolution" in kinds and "aten::linear" not in kinds
