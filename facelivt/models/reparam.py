"""Structural reparameterization: the walker that turns a train-form model into its deploy form."""
from __future__ import annotations

import copy

import torch
from torch import nn

from facelivt.cpu import machine_defaults


def reparameterize_module(module: nn.Module, residual: bool = True, fuse_bn: bool = True) -> nn.Module:
    """Return the deploy form of ``module``: a module that owns ``reparameterize`` decides its own
    replacement; any other module has its children replaced recursively (in place on ``module``)."""
    if hasattr(module, "reparameterize"):
        return module.reparameterize(residual=residual, fuse_bn=fuse_bn)
    for name, child in list(module.named_children()):
        new = reparameterize_module(child, residual=residual, fuse_bn=fuse_bn)
        if new is not child:
            setattr(module, name, new)
    return module


def reparameterize_model(model: nn.Module, residual: bool = True, fuse_bn: bool = True, channels_last: bool | None = None) -> nn.Module:
    """A new model in deploy form (structural reparameterization, FaceLiVT paper); ``model`` is left untouched.

    ``residual=True`` folds the DWMix identity into the depthwise kernel (needs ``fuse_bn``);
    ``fuse_bn=True`` folds every BatchNorm into the conv/linear next to it. ``residual=False`` and
    ``fuse_bn=False`` give the two partial forms of the FaceLiVT paper's Table III. The result is in eval mode.
    With ``channels_last`` weights and activations use the NHWC memory layout, without it NCHW; None
    (default) takes the one measured faster for this machine's ISA (benchmarks/cpu_defaults.py)
    (``facelivt.cpu.machine_defaults().infer_channels_last``). The function computed is the same.
    """
    if channels_last is None:
        channels_last = machine_defaults().infer_channels_last
    deploy = copy.deepcopy(model).eval()
    deploy = reparameterize_module(deploy, residual=residual, fuse_bn=fuse_bn)
    deploy.eval()
    if channels_last:
        deploy = deploy.to(memory_format=torch.channels_last)
        if hasattr(deploy, "channels_last"):
            deploy.channels_last = True
    deploy.is_deploy_form = True
    deploy.deploy_options = {"residual": residual, "fuse_bn": fuse_bn}
    return deploy


def count_batchnorm(model: nn.Module) -> int:
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
