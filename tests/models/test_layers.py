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


def _convbn(in_ch=16, out_ch=24, kernel_size=1, stride=1, groups=1):
    from facelivt.models.layers import ConvBN

    torch.manual_seed(0)
    m = ConvBN(in_ch, out_ch, kernel_size, stride, groups).train()
    with torch.no_grad():
        m.bn.weight.uniform_(0.5, 1.5)
        m.bn.bias.normal_()
    return m


def _forward_backward(m, x, g):
    x = x.detach().requires_grad_()
    y = m(x)
    return y, torch.autograd.grad(y, [x, *m.parameters()], g)


@pytest.mark.parametrize("shape", [(4, 16, 7, 7), (2, 16, 28, 28)])
def test_convbn_linear_form_has_the_convolutions_outputs_gradients_and_running_stats(monkeypatch, shape):
    import facelivt.models.layers as layers  # noqa: PLC0415 - the module whose F.linear is watched

    conv_form, linear_form = _convbn(), _convbn()
    conv_form.linear_1x1, linear_form.linear_1x1 = False, True
    x = torch.randn(shape).contiguous(memory_format=torch.channels_last)
    g = torch.randn(shape[0], 24, *shape[2:]).contiguous(memory_format=torch.channels_last)
    y_ref, grads_ref = _forward_backward(conv_form, x, g)
    linear = torch.nn.functional.linear
    seen = []
    monkeypatch.setattr(layers.F, "linear", lambda *a: seen.append(1) or linear(*a))
    y, grads = _forward_backward(linear_form, x, g)
    assert seen, "the linear form did not run F.linear"
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    assert y.is_contiguous(memory_format=torch.channels_last)
    names = ["input"] + [n for n, _ in linear_form.named_parameters()]
    for name, a, b in zip(names, grads, grads_ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4, msg=f"gradient of {name} differs")
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(linear_form.bn, name), getattr(conv_form.bn, name), msg=name)


@pytest.mark.parametrize("kwargs, layout, why", [
    ({}, torch.contiguous_format, "an NCHW input"),
    ({"kernel_size": 3}, torch.channels_last, "a 3x3 conv"),
    ({"stride": 2}, torch.channels_last, "a strided conv"),
    ({"in_ch": 16, "out_ch": 16, "groups": 16}, torch.channels_last, "a grouped conv"),
])
def test_convbn_keeps_the_convolution_where_the_linear_form_does_not_apply(monkeypatch, kwargs, layout, why):
    import facelivt.models.layers as layers  # noqa: PLC0415 - the module whose F.linear is watched

    m = _convbn(**kwargs)
    m.linear_1x1 = True
    calls = []
    linear = torch.nn.functional.linear
    monkeypatch.setattr(layers.F, "linear", lambda *a: calls.append(1) or linear(*a))
    m(torch.randn(2, m.conv.in_channels, 8, 8).contiguous(memory_format=layout))
    assert not calls, why


def test_convbn_follows_the_machine_default_and_the_override(monkeypatch):
    import dataclasses  # noqa: PLC0415

    import facelivt.models.layers as layers  # noqa: PLC0415 - the module whose lookups are replaced
    from facelivt.cpu import machine_defaults  # noqa: PLC0415

    m = _convbn()
    x = torch.randn(2, 16, 4, 4).contiguous(memory_format=torch.channels_last)
    calls = []
    linear = torch.nn.functional.linear
    monkeypatch.setattr(layers.F, "linear", lambda *a: calls.append(1) or linear(*a))
    for default in (True, False):
        d = dataclasses.replace(machine_defaults(), train_linear_1x1=default)
        monkeypatch.setattr(layers, "machine_defaults", lambda d=d: d)
        for override, expected in ((None, default), (True, True), (False, False)):
            layers.set_linear_1x1(m, override)
            calls.clear()
            m(x)
            assert bool(calls) is expected, (default, override)


def test_convbn_traces_as_a_convolution():
    m = _convbn().eval()
    m.linear_1x1 = True
    traced = torch.jit.trace(m, torch.randn(1, 16, 7, 7).contiguous(memory_format=torch.channels_last))
    kinds = {n.kind() for n in traced.inlined_graph.nodes()}
    assert "aten::_convolution" in kinds and "aten::linear" not in kinds


def test_nchw_repconv_in_a_channels_last_model_is_the_same_function_and_gradients():
    torch.manual_seed(0)
    plain = RepConv(3, 8, 3, 2).train()
    with torch.no_grad():
        plain.bn.weight.uniform_(0.5, 1.5)
    nchw = RepConv(3, 8, 3, 2, nchw=True).train()
    nchw.load_state_dict(plain.state_dict())
    plain, nchw = plain.to(memory_format=torch.channels_last), nchw.to(memory_format=torch.channels_last)
    x = torch.randn(4, 3, 20, 20).contiguous(memory_format=torch.channels_last)
    g = torch.randn(4, 8, 10, 10).contiguous(memory_format=torch.channels_last)
    y_ref, grads_ref = _forward_backward(plain, x, g)
    y, grads = _forward_backward(nchw, x, g)
    assert y.is_contiguous(memory_format=torch.channels_last)  # what follows stays channels-last
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    for a, b in zip(grads, grads_ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_channels_last_nchw_grad_sends_the_gradient_back_nchw():
    from facelivt.models.layers import ChannelsLastNCHWGrad  # noqa: PLC0415

    x = torch.randn(2, 3, 5, 5, requires_grad=True)
    y = ChannelsLastNCHWGrad.apply(x)
    assert y.is_contiguous(memory_format=torch.channels_last) and not y.is_contiguous()
    seen = []
    x.register_hook(lambda grad: seen.append(grad.is_contiguous()))
    g = torch.randn(2, 3, 5, 5).contiguous(memory_format=torch.channels_last)
    (grad,) = torch.autograd.grad(y, x, g)
    assert grad.is_contiguous() and torch.equal(grad, g)


def test_repconv_identity_fold_rejected_where_invalid():
    conv = RepConv(8, 16, 3, 1).eval()
    with pytest.raises(ValueError):
        conv.reparameterize(add_identity=True)
