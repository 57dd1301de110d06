"""CPU inference convolutions with oneDNN-prepacked weights (``Animator`` on CPU; never for training).

PyTorch's eager ``conv2d`` reorders the weight into oneDNN's blocked layout on every call. For the small,
wide layers of the hourglasses (for example 2048 -> 512 channels at 8x8) that reorder costs more than the
arithmetic: packing once made those layers 4-20x faster here. :func:`pack_for_cpu_inference` replaces the
convolutions of BN-folded networks (:func:`mraa.modules.fusion.fuse_conv_bn`) by packed ones, fuses the ReLU /
sigmoid / residual add into the convolution, and computes nearest-x2-then-3x3 upsampling blocks in the
sub-pixel form (below). Outputs equal the eager ones up to float rounding (case A parity holds).

The sub-pixel form is described in :func:`mraa.modules.fusion.subpixel_conv`.

Uses two operators that PyTorch's own CPU compiler (inductor) uses for the same purpose,
``torch._C._nn.mkldnn_reorder_conv2d_weight`` and ``torch.ops.mkldnn._convolution_pointwise``;
:func:`packing_available` checks that they work, and callers keep the eager path otherwise.
"""

from __future__ import annotations

import functools
import threading

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mraa.modules.blocks import DownBlock2d, ResBlock2d, SameBlock2d, UpBlock2d
from mraa.modules.fusion import PHASES, conv_bias, subpixel_compatible, subpixel_conv, subpixel_pays

_FIRST_CALL = threading.Lock()  # packing happens on a module's first call, possibly from several threads


@functools.cache
def packing_available(dtype: torch.dtype = torch.float32) -> bool:
    """True when this PyTorch build and CPU can run prepacked oneDNN convolutions in ``dtype`` (checked once
    per dtype, on a tiny conv). bfloat16 needs a CPU with native bf16 support (AVX-512 or AVX-NE-CONVERT)."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        x = torch.rand(1, 2, 5, 5)
        w = torch.rand(3, 2, 3, 3)
        packed = _pack(w.to(dtype), (1, 1), x.shape)
        y = torch.ops.mkldnn._convolution_pointwise(
            x.to(dtype), packed, None, [1, 1], [1, 1], [1, 1], 1, "none", [None], ""
        )
        tolerance = 1e-5 if dtype == torch.float32 else 0.1
        return bool(torch.allclose(y.float(), F.conv2d(x, w, padding=1), atol=tolerance))
    except (AttributeError, RuntimeError, NotImplementedError):
        return False


def cpu_bf16_supported() -> bool:
    """Whether this CPU runs bfloat16 convolutions natively. Without it (AVX2-only CPUs) oneDNN falls back to a
    reference path: one 256 -> 256 3x3 conv at 64x64 took 17.9 s in bf16 vs 0.11 s in fp32 (2 threads)."""
    return packing_available(torch.bfloat16)


def _pack(weight: Tensor, padding: list[int] | tuple[int, int], input_shape) -> Tensor:
    """``weight`` (O, I, kh, kw) in oneDNN's layout for inputs of ``input_shape`` (any other shape still works)."""
    return torch._C._nn.mkldnn_reorder_conv2d_weight(
        weight.detach().contiguous().to_mkldnn(), list(padding), [1, 1], [1, 1], 1, list(input_shape)
    )


class PackedConv2d(nn.Module):
    """A stride-1, ungrouped conv with a fused activation (``none``, ``relu``, ``sigmoid``), packed on first call.

    The dense weight is kept until the first call (when the input size is known) and then dropped. Inputs are
    cast to ``dtype`` (float32, or bfloat16 for ``precision="bf16"``); outputs are channels-last in ``dtype``.
    """

    def __init__(self, conv: nn.Conv2d, activation: str = "none", dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        if (
            conv.stride != (1, 1)
            or conv.dilation != (1, 1)
            or conv.groups != 1
            or conv.padding_mode != "zeros"
        ):
            raise ValueError("only stride-1, ungrouped, zero-padded convolutions can be packed")
        if isinstance(conv.padding, str):
            raise ValueError("padding must be given in pixels to pack a convolution")
        self.dtype = dtype
        self.activation = activation
        self.padding = list(conv.padding)  # the operator's argument form
        self.out_channels = conv.out_channels
        self._weight: Tensor | None = conv.weight.detach().to(dtype)
        bias = conv_bias(conv)
        # a (frozen) parameter, so that code finding a network's device from its parameters still works
        self.bias = nn.Parameter(bias.to(dtype), requires_grad=False)
        self._packed: Tensor | None = None

    def _ready(self, x: Tensor) -> Tensor:
        if self._packed is None:
            with _FIRST_CALL:
                if self._packed is None:
                    self._packed = _pack(self._weight, self.padding, x.shape)
                    self._weight = None
        return self._packed

    def forward(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        """(B, I, H, W) -> (B, O, H', W'); with ``residual`` (same shape as the output) it is added, then
        the activation (only ``none`` is allowed with a residual)."""
        x = x.to(self.dtype)
        packed = self._ready(x)
        pad = self.padding
        if residual is None:
            return torch.ops.mkldnn._convolution_pointwise(
                x, packed, self.bias, pad, [1, 1], [1, 1], 1, self.activation, [None], ""
            )
        if self.activation != "none":
            raise ValueError("a residual add is fused only without an activation")
        residual = residual.to(self.dtype).contiguous(memory_format=torch.channels_last)
        return torch.ops.mkldnn._convolution_pointwise.binary(
            x, residual, packed, self.bias, pad, [1, 1], [1, 1], 1, "add", None, None, [], None
        )


class PackedSameBlock2d(nn.Module):
    """:class:`SameBlock2d` (BN folded): conv + ReLU in one call."""

    def __init__(self, block: SameBlock2d, dtype: torch.dtype) -> None:
        super().__init__()
        self.conv = PackedConv2d(block.conv, "relu", dtype)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class PackedDownBlock2d(nn.Module):
    """:class:`DownBlock2d` (BN folded): conv + ReLU in one call, then 2x2 average pooling."""

    def __init__(self, block: DownBlock2d, dtype: torch.dtype) -> None:
        super().__init__()
        self.conv = PackedConv2d(block.conv, "relu", dtype)
        self.pool = block.pool

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(self.conv(x))


class PackedResBlock2d(nn.Module):
    """:class:`ResBlock2d` (second BN folded into conv1): BN-ReLU, conv1 + ReLU, conv2 + residual add."""

    def __init__(self, block: ResBlock2d, dtype: torch.dtype) -> None:
        super().__init__()
        self.norm1 = block.norm1
        self.conv1 = PackedConv2d(block.conv1, "relu", dtype)
        self.conv2 = PackedConv2d(block.conv2, "none", dtype)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(F.relu(self.norm1(x)))
        return self.conv2(out, residual=x)


class PackedUpBlock2d(nn.Module):
    """:class:`UpBlock2d` (BN folded): nearest x2 + conv + ReLU, in the sub-pixel form for inputs of at least
    :data:`SUBPIXEL_MIN_PIXELS` pixels (chosen on the first call), else upsample + packed conv."""

    def __init__(self, block: UpBlock2d, dtype: torch.dtype) -> None:
        super().__init__()
        conv = block.conv
        if not subpixel_compatible(conv):
            raise ValueError("the sub-pixel form needs a stride-1, ungrouped 3x3 convolution with padding 1")
        self._conv = conv
        self._dtype = dtype
        self.out_channels = conv.out_channels
        self.conv: PackedConv2d | None = None
        self.subpixel: bool | None = None

    def _choose(self, x: Tensor) -> None:
        subpixel = subpixel_pays(x)
        conv = subpixel_conv(self._conv) if subpixel else self._conv
        self.conv = PackedConv2d(conv, "relu", self._dtype)
        self._conv = None
        self.subpixel = subpixel  # last: other threads go on once it is set

    def forward(self, x: Tensor) -> Tensor:
        if self.subpixel is None:
            with _FIRST_CALL:
                if self.subpixel is None:
                    self._choose(x)
        if not self.subpixel:
            return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
        b, _, h, w = x.shape
        c = self.out_channels
        phases = self.conv(F.pad(x, (1, 1, 1, 1)))  # (B, 4 * C, H + 1, W + 1), channels-last
        phases = phases.permute(0, 2, 3, 1)  # (B, H + 1, W + 1, 4 * C) view
        out = torch.empty(b, c, 2 * h, 2 * w, dtype=phases.dtype, memory_format=torch.channels_last)
        grid = out.permute(0, 2, 3, 1).view(b, h, 2, w, 2, c)  # (B, H, py, W, px, C) view of ``out``
        for k, (py, px) in enumerate(PHASES):
            grid[:, :, py, :, px, :] = phases[:, py : py + h, px : px + w, k * c : (k + 1) * c]
        return out


_BLOCKS = {
    SameBlock2d: PackedSameBlock2d,
    DownBlock2d: PackedDownBlock2d,
    UpBlock2d: PackedUpBlock2d,
    ResBlock2d: PackedResBlock2d,
}


def _packable(block: nn.Module) -> bool:
    """Blocks whose BatchNorms after the conv have been folded (the only ones the packed forms reproduce)."""
    if isinstance(block, ResBlock2d):
        return isinstance(block.norm2, nn.Identity)
    if isinstance(block, UpBlock2d) and not subpixel_compatible(block.conv):
        return False
    return isinstance(getattr(block, "norm", None), nn.Identity)


def pack_for_cpu_inference(module: nn.Module, dtype: torch.dtype = torch.float32) -> nn.Module:
    """Replace, in place, the BN-folded blocks and the remaining plain convolutions of ``module`` by packed
    CPU inference versions (weights in ``dtype``). Inference only: the result has no trainable convolutions
    and no longer matches the official state dict. Returns ``module``."""
    for name, child in list(module.named_children()):
        packed_type = _BLOCKS.get(type(child))
        if packed_type is not None and _packable(child):
            setattr(module, name, packed_type(child, dtype))
        elif type(child) is nn.Conv2d and child.stride == (1, 1) and child.groups == 1:
            setattr(module, name, PackedConv2d(child, "none", dtype))
        else:
            pack_for_cpu_inference(child, dtype)
    return module
