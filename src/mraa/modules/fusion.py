"""BatchNorm folding for inference: an eval-mode BatchNorm after a conv becomes part of that conv."""

from __future__ import annotations

import torch
from torch import nn

from mraa.modules.blocks import ResBlock2d


def _fold(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> None:
    """Fold ``norm`` (running statistics) into ``conv``'s weight and bias, in place."""
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)  # (C_out,)
    with torch.no_grad():
        conv.weight.mul_(scale.view(-1, 1, 1, 1))
        bias = conv.bias if conv.bias is not None else torch.zeros_like(norm.running_mean)
        new_bias = (bias - norm.running_mean) * scale + norm.bias
        if conv.bias is None:
            conv.bias = nn.Parameter(new_bias)
        else:
            conv.bias.copy_(new_bias)


def fuse_conv_bn(module: nn.Module) -> nn.Module:
    """Fold every eval-mode BatchNorm that directly follows a conv into that conv, in place: ``.conv``
    then ``.norm`` in the down/up/same blocks, ``conv1`` then ``norm2`` in residual blocks. Exact up to
    float rounding; only for inference (the module no longer matches the official state dict)."""
    for child in module.modules():
        conv, norm = getattr(child, "conv", None), getattr(child, "norm", None)
        if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
            _fold(conv, norm)
            child.norm = nn.Identity()
        if isinstance(child, ResBlock2d) and isinstance(child.norm2, nn.BatchNorm2d):
            _fold(child.conv1, child.norm2)
            child.norm2 = nn.Identity()
    return module
