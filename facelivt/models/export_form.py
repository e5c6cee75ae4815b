"""Export forms: the walker that gives every block its ONNX-friendly form (next to
:mod:`facelivt.models.reparam`, which gives every block its deploy form).

A block whose eager forward reads tensor shapes at run time owns an ``export_form((H, W))`` method
returning an equivalent module for a fixed map size (MHLA, MHSA in :mod:`facelivt.models.layers`,
EdgeFace's SDTA block in :mod:`facelivt.models.peers.edgeface`); modules of torch that need one get
it from :data:`FOREIGN_EXPORT_FORMS` (PReLU). :func:`export_form_model` records the map size each
such block sees with one dry run and swaps them; every other module is kept.
"""
from __future__ import annotations

import copy
from typing import Callable

import torch
from torch import nn

class ExportPReLU(nn.Module):
    """``PReLU(x) = a*x + (1-a)*relu(x)``: ONNX Runtime's PRelu kernel broadcasts the per-channel slope
    slowly and breaks its blocked (NCHWc) convolution layout; this form stays in that layout (the
    per-channel products become convolutions there). Same function up to float round-off."""

    def __init__(self, m: nn.PReLU, hw: tuple[int, int] | None = None):
        super().__init__()
        a = m.weight.detach().reshape(1, -1, 1, 1)
        self.register_buffer("slope", a.clone())
        self.register_buffer("one_minus_slope", (1.0 - a).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"ExportPReLU expects an NCHW map, got shape {tuple(x.shape)}")
        return self.slope * x + self.one_minus_slope * torch.relu(x)

    def macs(self, x: torch.Tensor, out: torch.Tensor) -> int:
        return x.numel()  # as nn.PReLU is counted


FOREIGN_EXPORT_FORMS: dict[type, Callable[[nn.Module, tuple[int, int]], nn.Module]] = {nn.PReLU: ExportPReLU}


def _export_form(module: nn.Module) -> Callable[[tuple[int, int]], nn.Module] | None:
    """``hw -> export form`` of ``module``, or None when it is exported as it is."""
    own = getattr(module, "export_form", None)
    if callable(own):
        return own
    for cls, form in FOREIGN_EXPORT_FORMS.items():
        if isinstance(module, cls):
            return lambda hw, m=module, f=form: f(m, hw)
    return None


@torch.no_grad()
def export_form_model(model: nn.Module, input_size: int = 112) -> nn.Module:
    """A copy of ``model`` (eval mode) with every shape-reading block replaced by its export form.

    The map size each block sees is recorded with one dry run at ``input_size``; the returned module
    is only valid at that input size (any batch size).
    """
    model = copy.deepcopy(model).eval()
    shapes: dict[nn.Module, tuple[int, int]] = {}
    handles = []
    for m in model.modules():
        if _export_form(m) is not None:
            handles.append(m.register_forward_pre_hook(lambda mod, args: shapes.__setitem__(mod, tuple(args[0].shape[2:4]))))
    try:
        param = next(model.parameters())
        model(torch.zeros(1, 3, input_size, input_size, device=param.device, dtype=param.dtype))
    finally:
        for h in handles:
            h.remove()

    def replace(parent: nn.Module) -> None:
        for name, child in list(parent.named_children()):
            form = _export_form(child)
            if form is None:
                replace(child)
                continue
            if child not in shapes:
                raise RuntimeError(f"export_form_model: block {name} ({type(child).__name__}) was not reached by the dry run")
            setattr(parent, name, form(shapes[child]))

    replace(model)
    model.eval()
    return model
