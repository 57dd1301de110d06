"""Packed CPU inference convolutions (mraa.modules.packed): each block equals its eager form, the sub-pixel
upsampling equals upsample-then-conv, and the Animator's packed path keeps case A's parity."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mraa.animate import Animator
from mraa.modules.blocks import DownBlock2d, Hourglass, ResBlock2d, SameBlock2d, UpBlock2d
from mraa.modules.fusion import PhaseUpBlock2d, fuse_conv_bn, phase_up_blocks, subpixel_conv
from mraa.modules.packed import (
    PackedConv2d,
    PackedDownBlock2d,
    PackedResBlock2d,
    PackedSameBlock2d,
    PackedUpBlock2d,
    pack_for_cpu_inference,
    packing_available,
)

from .conftest import CASE_A, require_case_a

pytestmark = pytest.mark.skipif(not packing_available(), reason="this PyTorch build has no oneDNN packing")


def _with_statistics(module: nn.Module) -> nn.Module:
    """Random BatchNorm statistics and affine terms (so folding is not a no-op), eval mode."""
    gen = torch.Generator().manual_seed(0)
    for norm in module.modules():
        if isinstance(norm, nn.BatchNorm2d):
            norm.running_mean.copy_(torch.randn(norm.num_features, generator=gen))
            norm.running_var.copy_(torch.rand(norm.num_features, generator=gen) + 0.5)
            norm.weight.data.copy_(torch.randn(norm.num_features, generator=gen))
            norm.bias.data.copy_(torch.randn(norm.num_features, generator=gen))
    return module.eval()


def _packed(module: nn.Module, dtype=torch.float32) -> nn.Module:
    return pack_for_cpu_inference(fuse_conv_bn(copy.deepcopy(module)), dtype)


BLOCKS = [
    (lambda: ResBlock2d(16), (2, 16, 9, 7), PackedResBlock2d),
    (lambda: UpBlock2d(16, 8), (2, 16, 5, 6), PackedUpBlock2d),  # sub-pixel form (30 pixels)
    (lambda: UpBlock2d(16, 8), (1, 16, 2, 2), PackedUpBlock2d),  # upsample + conv (4 pixels)
    (lambda: SameBlock2d(3, 8, kernel_size=7, padding=3), (1, 3, 11, 12), PackedSameBlock2d),
    (lambda: DownBlock2d(8, 16), (1, 8, 10, 10), PackedDownBlock2d),
]


@pytest.mark.parametrize("make, shape, packed_type", BLOCKS)
def test_packed_blocks_equal_eager(make, shape, packed_type):
    torch.manual_seed(0)
    block = nn.Sequential(_with_statistics(make()))
    x = torch.randn(*shape)
    with torch.no_grad():
        ref = block(x)
        packed = _packed(block)
        assert type(packed[0]) is packed_type
        for inp in (x, x.contiguous(memory_format=torch.channels_last)):
            out = packed(inp)
            assert out.dtype == torch.float32 and out.shape == ref.shape
            assert (out - ref).abs().max() < 1e-5 * max(1.0, ref.abs().max().item())
        if not packing_available(torch.bfloat16):
            return  # an AVX2-only CPU: no native bfloat16 (the Animator refuses bf16 there)
        low = _packed(block, torch.bfloat16)(x)
    assert low.dtype == torch.bfloat16
    assert (low.float() - ref).abs().max() < 0.05 * ref.abs().max()


def test_subpixel_conv_equals_upsample_then_conv():
    torch.manual_seed(0)
    conv = nn.Conv2d(5, 4, 3, padding=1)
    x = torch.randn(2, 5, 6, 7)
    with torch.no_grad():
        ref = conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))  # (2, 4, 12, 14)
        phases = subpixel_conv(conv)(F.pad(x, (1, 1, 1, 1)))  # (2, 16, 7, 8)
    for k, (py, px) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        expected = ref[:, :, py::2, px::2]
        got = phases[:, 4 * k : 4 * (k + 1), py : py + 6, px : px + 7]
        assert (got - expected).abs().max() < 1e-5, (py, px)


def test_phase_up_block_equals_the_folded_block():
    torch.manual_seed(0)
    block = _with_statistics(UpBlock2d(6, 5))
    x = torch.randn(2, 6, 7, 9)
    with torch.no_grad():
        ref = block(x)  # (2, 5, 14, 18)
        fuse_conv_bn(block)
        out = PhaseUpBlock2d(block)(x)
    assert out.shape == ref.shape and (out - ref).abs().max() < 1e-5
    with pytest.raises(ValueError, match="BN-folded"):
        PhaseUpBlock2d(_with_statistics(UpBlock2d(6, 5)))


def test_phase_up_blocks_only_on_large_enough_inputs():
    torch.manual_seed(0)
    net = nn.Sequential(_with_statistics(UpBlock2d(3, 4)), _with_statistics(UpBlock2d(4, 2)))
    x = torch.randn(1, 3, 2, 3)  # 6 pixels into the first block, 24 into the second
    with torch.no_grad():
        ref = net(x)
        phase_up_blocks(fuse_conv_bn(net), min_pixels=16)
        used = []
        for i, gated in enumerate(net):
            gated.phases.register_forward_hook(lambda *_, i=i: used.append(i))
        out = net(x)
    assert (out - ref).abs().max() < 1e-5
    assert used == [1]  # the phase form on the 24-pixel input only


def test_hourglass_packs_every_convolution():
    hourglass = _with_statistics(Hourglass(8, in_features=3, num_blocks=3, max_features=32))
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        ref = hourglass(x)
        packed = _packed(nn.Sequential(hourglass))
        out = packed(x)
    assert not any(type(m) is nn.Conv2d for m in packed.modules())
    assert sum(isinstance(m, PackedConv2d) for m in packed.modules()) == 6
    assert (out - ref).abs().max() < 1e-4
    assert (
        all(not p.requires_grad for p in packed.parameters())
        and next(packed.parameters()).device.type == "cpu"
    )


def test_unsupported_convolutions_are_refused_or_left_eager():
    with pytest.raises(ValueError, match="stride-1"):
        PackedConv2d(nn.Conv2d(3, 4, 3, stride=2))
    with pytest.raises(ValueError, match="padding"):
        PackedConv2d(nn.Conv2d(3, 4, 3, padding="same"))
    with pytest.raises(ValueError, match="activation"):
        PackedConv2d(nn.Conv2d(3, 3, 3, padding=1), "relu")(
            torch.rand(1, 3, 4, 4), residual=torch.rand(1, 3, 4, 4)
        )
    grouped = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1, groups=2), nn.Conv2d(4, 4, 3, padding=1, stride=2))
    packed = pack_for_cpu_inference(copy.deepcopy(grouped))
    assert [type(m) for m in packed] == [nn.Conv2d, nn.Conv2d]  # left as they are
    unfolded = nn.Sequential(UpBlock2d(4, 4)).eval()  # BatchNorm not folded: the block is not replaced
    assert type(pack_for_cpu_inference(copy.deepcopy(unfolded))[0]) is UpBlock2d


def test_animator_packed_path_keeps_case_a_parity():
    require_case_a()
    ref = torch.load(CASE_A / "io.pt", weights_only=True)
    args = (CASE_A / "checkpoint.pth", CASE_A / "config.yaml")
    packed = Animator.from_checkpoint(*args)
    eager = Animator.from_checkpoint(*args, prepack=False)
    assert packed.prepacked and not eager.prepacked
    assert any(isinstance(m, PackedConv2d) for m in packed.models.generator.modules())
    for mode in ("standard", "relative", "avd"):
        out = packed.animate(ref["input/source"], ref["input/driving"], mode=mode)
        assert (out - ref[f"anim/{mode}/prediction"]).abs().max() < 2e-4, mode
        assert (out - eager.animate(ref["input/source"], ref["input/driving"], mode=mode)).abs().max() < 1e-4


@pytest.mark.skipif(not packing_available(torch.bfloat16), reason="this CPU has no native bfloat16")
def test_bf16_packed_path_psnr_on_case_a():
    require_case_a()
    ref = torch.load(CASE_A / "io.pt", weights_only=True)
    animator = Animator.from_checkpoint(CASE_A / "checkpoint.pth", CASE_A / "config.yaml", precision="bf16")
    assert animator.prepacked
    out = animator.animate(ref["input/source"], ref["input/driving"], mode="avd")
    mse = ((out - ref["anim/avd/prediction"]) ** 2).mean()
    assert out.dtype == torch.float32 and 10 * torch.log10(1 / mse) > 35


def test_models_passed_without_fusing_are_not_packed(tiny_cfg, tiny_models):
    animator = Animator(tiny_models, tiny_cfg.animate_params, config=tiny_cfg, fuse=False)
    assert not animator.prepacked
    assert not any(isinstance(m, PackedConv2d) for m in tiny_models.generator.modules())


def test_first_calls_from_several_threads_pack_once():
    from concurrent.futures import ThreadPoolExecutor

    torch.manual_seed(0)
    block = nn.Sequential(_with_statistics(UpBlock2d(8, 4)), _with_statistics(ResBlock2d(4)))
    x = torch.randn(1, 8, 6, 6)
    with torch.no_grad():
        ref = block(x)
        packed = _packed(block)
        with ThreadPoolExecutor(4) as pool:
            outs = list(pool.map(lambda _: packed(x), range(8)))
    assert all((out - ref).abs().max() < 1e-5 for out in outs)
