"""Inference rewrites: BatchNorm folding (an eval-mode BatchNorm after a conv becomes part of that conv), the
sub-pixel forms of the upsampling blocks (as a 2x2 conv for the packed CPU path, :mod:`mraa.modules.packed`;
as four phase convolutions for the ONNX export) and the row/column form of the narrow 7x7 output convolutions."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mraa.modules.blocks import ResBlock2d, UpBlock2d

# input pixels (H * W) from which the sub-pixel form of an upsampling block is faster (measured: slower at
# 2x2 inputs, where the 16/9 larger weight dominates; faster from 4x4 up, 1.9-2.2x at 64x64 and 128x128)
SUBPIXEL_MIN_PIXELS = 16


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


# output channels below which a large-kernel conv is factored (:func:`factor_narrow_convs`): blocked CPU kernels
# (oneDNN, onnxruntime's NCHWc) pad the output channels to the vector width (8 or 16 floats), so a 7x7 conv to
# 3 channels did 3-5x its arithmetic (measured in docs/benchmarks.md)
NARROW_OUTPUTS = 8


def is_narrow_conv(conv: nn.Module) -> bool:
    """Whether ``conv`` is a plain conv with fewer than :data:`NARROW_OUTPUTS` outputs and a kernel of at least
    2 in both directions (stride 1, no dilation, ungrouped, zero padding given in pixels)."""
    return (
        type(conv) is nn.Conv2d
        and conv.out_channels < NARROW_OUTPUTS
        and min(conv.kernel_size) > 1
        and conv.stride == (1, 1)
        and conv.dilation == (1, 1)
        and conv.groups == 1
        and conv.padding_mode == "zeros"
        and not isinstance(conv.padding, str)
    )


def row_column_conv(conv: nn.Conv2d) -> nn.Sequential:
    """``conv`` (O, I, kh, kw) as a 1 x kw conv to O * kh row maps (map ``o * kh + dy`` is output ``o``'s kernel
    row ``dy`` applied along the row) and a kh x 1 conv with 0/1 weights adding each output's row maps at their
    row offsets, plus the bias. The same multiply-adds as ``conv`` (plus O * kh * kh * O per pixel) in layers
    wide enough for vectorised kernels; equal to ``conv`` up to float rounding."""
    if not is_narrow_conv(conv):
        raise ValueError(f"needs a stride-1, ungrouped conv with fewer than {NARROW_OUTPUTS} outputs")
    o, i, kh, kw = conv.weight.shape
    ph, pw = conv.padding
    weight = conv.weight.detach()
    like = {"device": weight.device, "dtype": weight.dtype}
    rows = nn.Conv2d(i, o * kh, kernel_size=(1, kw), padding=(0, pw), bias=False, **like)
    columns = nn.Conv2d(o * kh, o, kernel_size=(kh, 1), padding=(ph, 0), **like)
    select = torch.zeros(o, o, kh, kh, **like)  # [out, out of the row map, row, tap]: 1 where row == tap
    select[range(o), range(o)] = torch.eye(kh, **like)
    with torch.no_grad():
        rows.weight.copy_(weight.permute(0, 2, 1, 3).reshape(o * kh, i, 1, kw))
        columns.weight.copy_(select.reshape(o, o * kh, kh, 1))
        columns.bias.copy_(conv_bias(conv))
    return nn.Sequential(rows, columns)


def factor_narrow_convs(module: nn.Module) -> nn.Module:
    """Replace, in place, every narrow conv of ``module`` (:func:`is_narrow_conv`: the generator's 7x7 output
    conv, the flow predictor's occlusion conv, a regression jacobian head) by :func:`row_column_conv`. For
    inference: the module no longer matches the official state dict. Returns ``module``."""
    for name, child in list(module.named_children()):
        if is_narrow_conv(child):
            setattr(module, name, row_column_conv(child))
        else:
            factor_narrow_convs(child)
    return module


def inference_form(module: nn.Module) -> nn.Module:
    """The inference rewrites every backend uses, in place: BatchNorms folded (:func:`fuse_conv_bn`), then
    the narrow convs factored (:func:`factor_narrow_convs`). Returns ``module``."""
    return factor_narrow_convs(fuse_conv_bn(module))


# rows of the low-res 2-tap window <- the 3 taps: phase 0 reads (y-1, y) as (w0, w1 + w2); phase 1 (y, y+1)
# as (w0 + w1, w2); indexed [phase][window row][3x3 tap]
_PHASE_TAPS = ([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]], [[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
# the four output phases (row parity py, column parity px) in the order of the sub-pixel forms' channel blocks
PHASES = ((0, 0), (0, 1), (1, 0), (1, 1))


def conv_bias(conv: nn.Conv2d) -> Tensor:
    """``conv``'s bias, detached (zeros when it has none)."""
    return conv.bias.detach() if conv.bias is not None else torch.zeros(conv.out_channels)


def subpixel_compatible(conv: nn.Conv2d) -> bool:
    """Whether ``conv`` after nearest x2 upsampling has a sub-pixel form (stride-1, ungrouped 3x3, padding 1)."""
    return (
        conv.kernel_size == (3, 3)
        and tuple(conv.padding) == (1, 1)
        and conv.stride == (1, 1)
        and conv.groups == 1
    )


def subpixel_pays(x: Tensor, min_pixels: int = SUBPIXEL_MIN_PIXELS) -> bool:
    """Whether an upsampling block's input ``x`` (B, C, H, W) is large enough for its sub-pixel form to be the
    faster one (at least ``min_pixels`` pixels)."""
    return int(x.shape[2]) * int(x.shape[3]) >= min_pixels


def folded_subpixel_block(block: nn.Module) -> bool:
    """Whether ``block`` is an :class:`~mraa.modules.blocks.UpBlock2d` with its BatchNorm folded and a conv that
    has a sub-pixel form."""
    return (
        type(block) is UpBlock2d and isinstance(block.norm, nn.Identity) and subpixel_compatible(block.conv)
    )


def subpixel_weight(weight: Tensor) -> Tensor:
    """3x3 weight (O, I, 3, 3) of a conv after nearest x2 upsampling -> the 2x2 weight (4 * O, I, 2, 2) of the
    four output phases, phase-major ((py, px) = (0, 0), (0, 1), (1, 0), (1, 1))."""
    taps = weight.new_tensor(_PHASE_TAPS)
    phases = [torch.einsum("ak,bl,oikl->oiab", taps[py], taps[px], weight) for py, px in PHASES]
    return torch.cat(phases, dim=0)


def subpixel_conv(conv: nn.Conv2d) -> nn.Conv2d:
    """The 2x2 convolution (4 * O output channels, no padding) computing ``conv`` (3x3, padding 1) applied to
    a nearest-x2-upsampled map, for the input padded by one pixel.

    A 3x3 convolution of a nearest-upsampled map gives, at each of the four output phases (row parity ``py``,
    column parity ``px``), a 2x2 convolution of the low-resolution map whose taps are sums of the 3x3 taps;
    phase (py, px) is the output shifted by (py, px). 16 multiply-adds per input pixel and channel pair
    instead of 36."""
    if not subpixel_compatible(conv):
        raise ValueError("the sub-pixel form needs a stride-1, ungrouped 3x3 convolution with padding 1")
    phases = nn.Conv2d(conv.in_channels, 4 * conv.out_channels, kernel_size=2, padding=0)
    phases.to(device=conv.weight.device)
    with torch.no_grad():
        phases.weight.copy_(subpixel_weight(conv.weight.detach().float()))
        phases.bias.copy_(conv_bias(conv).float().repeat(4))
    return phases


# the zero padding (left, right, top, bottom) after which phase (py, px)'s 2x2 window at low-res pixel (y, x)
# covers rows (y - 1 + py, y + py), columns likewise
_PHASE_PADS = tuple((1 - px, px, 1 - py, py) for py, px in PHASES)


class _PhaseUpsample(torch.autograd.Function):
    """The four phase convolutions (+ ReLU) of :class:`PhaseUpBlock2d`, interleaved into the x2 map; exported
    to ONNX (opset >= 18) as four ``Conv`` (asymmetric ``pads``) + ``Relu``, stacked channel-major and
    interleaved by a 2x2-block, stride-2 ``Col2Im`` (in onnxruntime 2.3-2.5x faster than ``DepthToSpace``,
    docs/benchmarks.md)."""

    @staticmethod
    def forward(ctx, x: Tensor, bias: Tensor, *weights: Tensor) -> Tensor:
        b, _, h, w = x.shape
        out = x.new_empty(b, bias.shape[0], 2 * h, 2 * w)
        for (py, px), pad, weight in zip(PHASES, _PHASE_PADS, weights, strict=True):
            out[:, :, py::2, px::2] = F.relu(F.conv2d(F.pad(x, pad), weight, bias))
        return out

    @staticmethod
    def symbolic(g, x, bias, *weights):
        def const(values):
            return g.op("Constant", value_t=torch.tensor(values, dtype=torch.int64))

        phases = []
        for (left, right, top, bottom), weight in zip(_PHASE_PADS, weights, strict=True):
            phase = g.op("Conv", x, weight, bias, kernel_shape_i=[2, 2], pads_i=[top, left, bottom, right])
            phases.append(g.op("Unsqueeze", g.op("Relu", phase), const([2])))
        stacked = g.op("Concat", *phases, axis_i=2)  # (B, C, 4, H, W)
        hw = g.op("Slice", g.op("Shape", x), const([2]), const([4]))  # (H, W)
        pixels = g.op("ReduceProd", hw, keepdims_i=1)  # (H * W,)
        columns = g.op("Reshape", stacked, g.op("Concat", const([0, -1]), pixels, axis_i=0))  # (B, 4C, H * W)
        size = g.op("Mul", hw, const([2, 2]))  # (2H, 2W); phase k of channel c is block row 4c + k
        return g.op("Col2Im", columns, size, const([2, 2]), strides_i=[2, 2])


class PhaseUpBlock2d(nn.Module):
    """A BN-folded :class:`~mraa.modules.blocks.UpBlock2d` (nearest x2, 3x3 conv, ReLU) as its four output
    phases: 2x2 convolutions of the low-res map (16 instead of 36 multiply-adds per input pixel and channel
    pair, no upsampled copy), interleaved. For runtimes without a fast strided scatter (the ONNX export: in
    onnxruntime this beat a stride-2 transposed convolution, docs/benchmarks.md). Equal to the block up to
    float rounding."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        if not folded_subpixel_block(block):
            raise ValueError("needs a BN-folded block with a stride-1, ungrouped 3x3 convolution, padding 1")
        conv = block.conv
        weight = subpixel_weight(conv.weight.detach()).unflatten(0, (4, conv.out_channels))  # (4, O, I, 2, 2)
        self.weights = nn.ParameterList(nn.Parameter(w.clone(), requires_grad=False) for w in weight)
        self.bias = nn.Parameter(conv_bias(conv).clone(), requires_grad=False)

    def forward(self, x: Tensor) -> Tensor:
        return _PhaseUpsample.apply(x, self.bias, *self.weights)


def phase_up_blocks(module: nn.Module, min_pixels: int = SUBPIXEL_MIN_PIXELS) -> nn.Module:
    """Wrap, in place, the BN-folded, sub-pixel compatible :class:`~mraa.modules.blocks.UpBlock2d` of ``module``
    so that each runs as its :class:`PhaseUpBlock2d` on inputs of at least ``min_pixels`` pixels and as itself
    on smaller ones (where the 16/9 larger weight costs more than it saves). The choice is made in Python on
    each call, so a trace (the ONNX export) records one form per block. Returns ``module``."""
    for name, child in list(module.named_children()):
        if folded_subpixel_block(child):
            setattr(module, name, _SizeGatedUpBlock(child, min_pixels))
        else:
            phase_up_blocks(child, min_pixels)
    return module


class _SizeGatedUpBlock(nn.Module):
    """An up block that is its :class:`PhaseUpBlock2d` on inputs of at least ``min_pixels`` pixels."""

    def __init__(self, block: nn.Module, min_pixels: int) -> None:
        super().__init__()
        self.block = block
        self.phases = PhaseUpBlock2d(block)
        self.min_pixels = min_pixels

    def forward(self, x: Tensor) -> Tensor:
        if subpixel_pays(x, self.min_pixels):
            return self.phases(x)
        return self.block(x)
