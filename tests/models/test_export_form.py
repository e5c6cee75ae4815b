"""Blocks own their export forms; export_form_model walks a model and applies them."""
from __future__ import annotations

import torch
from torch import nn

from facelivt.deploy.counting import count_macs
from facelivt.models import export_form_model
from facelivt.models.export_form import ExportPReLU
from facelivt.models.layers import MHLA, MHSA, ExportMHLA, ExportMHSA


def _toy() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 32, 1), MHLA(32, 16, num_heads=4), nn.PReLU(32), MHSA(32, num_heads=2, key_dim=8)).eval()


def test_each_block_is_swapped_for_its_own_export_form():
    model = _toy()
    exported = export_form_model(model, input_size=4)
    kinds = [type(m) for m in exported]
    assert kinds == [nn.Conv2d, ExportMHLA, ExportPReLU, ExportMHSA]
    assert [type(m) for m in model] == [nn.Conv2d, MHLA, nn.PReLU, MHSA]  # the original is left alone
    x = torch.randn(3, 3, 4, 4)
    with torch.no_grad():
        assert torch.allclose(exported(x), model(x), atol=1e-5)
    assert count_macs(exported, 4) == count_macs(model, 4)  # one MAC formula for a block and its export form


def test_any_module_with_export_form_is_walked():
    seen = []

    class Shaped(nn.Module):
        def forward(self, x):
            return x * 2

        def export_form(self, hw):
            seen.append(hw)
            return nn.Identity()

    model = nn.Sequential(nn.Conv2d(3, 3, 3, stride=2, padding=1), nn.Sequential(Shaped()))
    exported = export_form_model(model, input_size=8)
    assert seen == [(4, 4)] and isinstance(exported[1][0], nn.Identity)

