"""Inference rewrites of mraa.modules.fusion that need no oneDNN packing: the row/column form of narrow convs
and the strided anti-alias downsampling."""

import copy

import pytest
import torch
from torch import nn

from mraa.animate import Animator
from mraa.modules.blocks import AntiAliasInterpolation2d
from mraa.modules.fusion import factor_narrow_convs, is_narrow_conv, row_column_conv


@pytest.mark.parametrize(
    ("out_channels", "kernel", "padding"), [(3, 7, 3), (1, (5, 3), (2, 1)), (4, 3, 0), (7, (3, 5), (0, 2))]
)
def test_row_column_conv_equals_the_conv(out_channels, kernel, padding):
    torch.manual_seed(0)
    conv = nn.Conv2d(6, out_channels, kernel, padding=padding).double()
    x = torch.randn(2, 6, 11, 9, dtype=torch.float64)
    factored = row_column_conv(conv)
    assert [type(m) for m in factored] == [nn.Conv2d, nn.Conv2d]
    assert factored[0].out_channels == out_channels * conv.kernel_size[0]
    assert (factored(x) - conv(x)).abs().max() < 1e-12


@pytest.mark.parametrize(
    "conv",
    [nn.Conv2d(4, 8, 7), nn.Conv2d(4, 3, 7, stride=2), nn.Conv2d(4, 3, 1), nn.Conv2d(4, 3, 7, groups=1, dilation=2),
     nn.Conv2d(3, 3, 7, groups=3), nn.Conv2d(4, 3, 7, padding="same"), nn.Conv2d(4, 3, 7, padding_mode="reflect")],
)  # fmt: skip
def test_only_narrow_plain_convs_are_factored(conv):
    assert not is_narrow_conv(conv)
    with pytest.raises(ValueError, match="fewer than"):
        row_column_conv(conv)


def test_the_animator_factors_the_output_convs_and_keeps_its_outputs(tiny_cfg, tiny_models):
    torch.manual_seed(0)
    source, driving = torch.rand(1, 3, 32, 32), torch.rand(2, 3, 32, 32)
    eager = Animator(tiny_models, tiny_cfg.animate_params, config=tiny_cfg, fuse=False)
    fused = Animator(tiny_models, tiny_cfg.animate_params, config=tiny_cfg, prepack=False)
    gen = fused.models.generator
    assert isinstance(gen.final, nn.Sequential) and isinstance(
        gen.pixelwise_flow_predictor.occlusion, nn.Sequential
    )
    assert type(tiny_models.generator.final) is nn.Conv2d  # the caller's networks are not rewritten
    for mode in ("standard", "relative", "avd"):
        ref = eager.animate(source, driving, mode=mode)
        assert (fused.animate(source, driving, mode=mode) - ref).abs().max() < 1e-4, (
            mode
        )  # float rounding of the folding
    again = copy.deepcopy(gen)
    factor_narrow_convs(again)  # idempotent: the factored layers are not narrow 2-D kernels
    assert str(again) == str(gen)


@pytest.mark.parametrize(
    ("scale", "size"), [(0.25, (32, 24)), (0.5, (10, 6)), (0.25, (30, 24)), (0.3, (20, 20))]
)
def test_anti_alias_downsampling_keeps_the_nearest_pixels(scale, size):
    torch.manual_seed(0)
    module = AntiAliasInterpolation2d(3, scale).double()
    x = torch.randn(2, 3, *size, dtype=torch.float64)
    padded = torch.nn.functional.pad(x, (module.ka, module.kb, module.ka, module.kb))
    blurred = torch.nn.functional.conv2d(padded, module.weight, groups=3)
    ref = torch.nn.functional.interpolate(blurred, scale_factor=(scale, scale), mode="nearest")
    assert (module(x) - ref).abs().max() < 1e-12


def test_factored_regression_head_keeps_the_region_params():
    from mraa.modules.region_predictor import RegionPredictor

    torch.manual_seed(0)
    rp = RegionPredictor(8, 3, 3, 32, 2, 0.1, estimate_affine=True, scale_factor=0.5, pca_based=False).eval()
    with torch.no_grad():
        rp.jacobian.weight.normal_(0, 0.01)  # not the identity start, so the head's output matters
        x = torch.rand(2, 3, 32, 32)
        ref = rp(x)
        factored = factor_narrow_convs(copy.deepcopy(rp))
        out = factored(x)
    assert isinstance(factored.jacobian, nn.Sequential)
    assert isinstance(factored.regions, nn.Sequential)  # 3 regions: narrow as well
    for key in ("shift", "covar", "affine"):
        assert (out[key] - ref[key]).abs().max() < 1e-5, key
