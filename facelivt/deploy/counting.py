"""Parameter and MAC counting, following the conventions of the widely used ``ptflops`` counter
(its PyTorch backend), which the FaceLiVT paper's figures use (ICIP 2025):

- Conv2d: ``out_positions * k*k * C_in/groups * C_out`` plus ``C_out * out_positions`` for a bias;
- Linear: ``numel(input) * out_features`` plus ``out_features`` for a bias (once, as ptflops does);
- BatchNorm / GroupNorm: ``numel``, doubled when affine; pooling: ``numel``;
- GELU: ``2 * numel`` (the reference counter sees each GELU twice, as a module and as its functional call);
- matrix products inside attention: ``numel(A) * B.shape[-1]``; softmax: not counted;
- the MHLA token MLPs: as per-row linears (bias counted for every row).

With these rules the deploy-form figures of all six variants agree with the published table to
better than 0.05 % (tests/deploy/test_counting.py).

Modules that compute with functional ops (MHLA, MHSA, pooled heads) report their own MACs through a
``macs(inputs, output) -> int`` method, so the counter needs no knowledge of their internals.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from facelivt.errors import InvalidInputError


def _conv_macs(m: nn.Conv2d, inp: torch.Tensor, out: torch.Tensor) -> int:
    positions = out.shape[0] * out.shape[2] * out.shape[3]
    k = m.kernel_size[0] * m.kernel_size[1]
    macs = positions * k * (m.in_channels // m.groups) * m.out_channels
    if m.bias is not None:
        macs += m.out_channels * positions
    return macs


def _linear_macs(m: nn.Linear, inp: torch.Tensor, out: torch.Tensor) -> int:
    return inp.numel() * m.out_features + (m.out_features if m.bias is not None else 0)


def _norm_macs(m: nn.Module, inp: torch.Tensor, out: torch.Tensor) -> int:
    affine = getattr(m, "affine", False)
    return inp.numel() * (2 if affine else 1)


def _numel_macs(m: nn.Module, inp: torch.Tensor, out: torch.Tensor) -> int:
    return inp.numel()


_LEAF_RULES = [
    (nn.Conv2d, _conv_macs),
    (nn.Linear, _linear_macs),
    ((nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm), _norm_macs),
    (nn.GELU, lambda m, i, o: 2 * i.numel()),
    ((nn.ReLU, nn.PReLU, nn.SiLU, nn.Hardswish, nn.Sigmoid), _numel_macs),
    ((nn.AdaptiveAvgPool2d, nn.AvgPool2d, nn.MaxPool2d), _numel_macs),
]


@dataclass
class Complexity:
    params: int
    macs: int

    @property
    def params_m(self) -> float:
        return self.params / 1e6

    @property
    def macs_m(self) -> float:
        return self.macs / 1e6


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_macs(model: nn.Module, input_size: int = 112, batch: int = 1) -> int:
    """MACs of one forward pass at ``input_size`` x ``input_size`` (per image when ``batch`` = 1).

    :class:`~facelivt.errors.InvalidInputError` when the model cannot run at that size."""
    if input_size < 1 or batch < 1:
        raise InvalidInputError(f"input size and batch must be >= 1, got {input_size} and {batch}")
    total = [0]
    handles = []

    def make_hook(rule):
        def hook(m, inputs, output):
            total[0] += int(rule(m, inputs[0], output))

        return hook

    for m in model.modules():
        own = getattr(m, "macs", None)
        if callable(own):
            handles.append(m.register_forward_hook(make_hook(lambda mod, x, out: mod.macs(x, out))))
            continue
        for types, rule in _LEAF_RULES:
            if isinstance(m, types):
                handles.append(m.register_forward_hook(make_hook(rule)))
                break
    was_training = model.training
    model.eval()
    try:
        param = next(model.parameters(), None)
        device = param.device if param is not None else "cpu"
        try:
            model(torch.zeros(batch, 3, input_size, input_size, device=device))
        except RuntimeError as exc:  # e.g. a map shrunk below a kernel: the size does not fit the network
            raise InvalidInputError(f"the model does not run at {input_size}x{input_size}: {exc}") from exc
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return total[0] // batch


def complexity(model: nn.Module, input_size: int = 112) -> Complexity:
    return Complexity(count_params(model), count_macs(model, input_size))
