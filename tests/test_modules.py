import json

import pytest
import torch

from mraa.config import load_config
from mraa.models import build_models
from mraa.modules import AVDNetwork, BGMotionPredictor, Generator, RegionPredictor
from mraa.modules.blocks import AntiAliasInterpolation2d

from .conftest import LAYOUTS, ROOT

FULL = ["vox256", "taichi256", "mgif256", "ted384", "ted-youtube384"]


@pytest.mark.parametrize("name", FULL)
def test_full_configs_match_official_state_dict_layout(name):
    layout_file = LAYOUTS / f"{name}.json"
    if not layout_file.is_file():
        pytest.skip("no checkpoint layout reference")
    layout = json.loads(layout_file.read_text())
    models = build_models(load_config(ROOT / "configs" / f"{name}.yaml").model_params)
    for module_name, module in models.items():
        ours = {k: list(v.shape) for k, v in module.state_dict().items()}
        assert ours == layout[module_name], module_name
        if module_name in layout["param_counts"]:
            assert (
                sum(p.numel() for p in module.parameters())
                == layout["param_counts"][module_name]["parameters"]
            )


def test_region_predictor_outputs(tiny_models):
    out = tiny_models.region_predictor(torch.rand(2, 3, 64, 64))
    assert out["shift"].shape == (2, 2, 2)
    assert out["affine"].shape == (2, 2, 2, 2)
    assert torch.allclose(out["heatmap"].sum(dim=(2, 3)), torch.ones(2, 2), atol=1e-5)
    assert torch.allclose(out["affine"] @ out["affine"].transpose(-1, -2), out["covar"], atol=1e-6)


@pytest.mark.parametrize("pad, size", [(3, 16), (0, 10)])
def test_region_predictor_pad_and_scale(pad, size):
    rp = RegionPredictor(
        8, 3, 3, 32, 2, 0.1, estimate_affine=True, scale_factor=0.25, pca_based=True, pad=pad
    ).eval()
    assert rp(torch.rand(1, 3, 64, 64))["heatmap"].shape == (1, 3, size, size)


def test_region_predictor_scale_one_and_regression_head():
    rp = RegionPredictor(8, 3, 3, 32, 2, 0.1, estimate_affine=True, scale_factor=1, pca_based=False).eval()
    assert not hasattr(rp, "down")
    out = rp(torch.rand(2, 3, 16, 16))
    # the jacobian head starts at the identity
    assert torch.allclose(out["affine"], torch.eye(2).expand(2, 3, 2, 2), atol=1e-6)
    assert "jacobian.weight" in rp.state_dict()


def test_anti_alias_kernel_matches_reference_size():
    down = AntiAliasInterpolation2d(3, 0.25)
    assert down.weight.shape == (3, 1, 13, 13)
    assert torch.allclose(down.weight.sum(dim=(2, 3)), torch.ones(3, 1))
    assert down(torch.rand(1, 3, 64, 64)).shape == (1, 3, 16, 16)
    assert down(torch.rand(1, 3, 66, 66)).shape == (1, 3, 16, 16)  # like nearest interpolation


@pytest.mark.parametrize("bg_type, n", [("zero", 0), ("shift", 2), ("affine", 6), ("perspective", 8)])
def test_bg_predictor_types_start_at_identity(bg_type, n):
    bg = BGMotionPredictor(8, 3, 32, 3, bg_type=bg_type).eval()
    out = bg(torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32))
    assert out.shape == (2, 3, 3)
    assert torch.allclose(out, torch.eye(3).expand(2, 3, 3))
    assert (bg.fc is None) == (n == 0) and (n == 0 or bg.fc.out_features == n)


@pytest.mark.parametrize(
    "skips, covar, occlusion", [(True, True, True), (False, False, False), (True, False, True)]
)
def test_generator_variants(skips, covar, occlusion):
    flow = {
        "block_expansion": 8,
        "max_features": 32,
        "num_blocks": 2,
        "scale_factor": 0.5,
        "use_covar_heatmap": covar,
        "estimate_occlusion_map": occlusion,
    }
    gen = Generator(3, 2, 8, 32, 2, 1, pixelwise_flow_predictor_params=flow, skips=skips).eval()
    rp = RegionPredictor(8, 2, 3, 32, 2, 0.1, estimate_affine=True, scale_factor=0.5, pca_based=True).eval()
    x = torch.rand(2, 3, 32, 32)
    params = rp(x)
    out = gen(x, params, params)
    assert out["prediction"].shape == (2, 3, 32, 32)
    assert ("occlusion_map" in out) == occlusion
    # identical source and driving regions: every candidate motion is the identity
    grid = torch.stack(
        torch.meshgrid(torch.linspace(-1, 1, 16), torch.linspace(-1, 1, 16), indexing="xy"), -1
    )
    assert torch.allclose(out["optical_flow"], grid.expand(2, 16, 16, 2), atol=1e-5)


def test_generator_cached_source_features_give_same_output(tiny_models):
    x = torch.rand(1, 3, 64, 64)
    d = torch.rand(3, 3, 64, 64)
    with torch.no_grad():
        src = tiny_models.region_predictor(x)
        drv = tiny_models.region_predictor(d)
        direct = tiny_models.generator(
            x.expand(3, -1, -1, -1),
            drv,
            {k: v.expand(3, *v.shape[1:]) for k, v in src.items() if k not in ("u", "d")},
        )["prediction"]
        feats = tiny_models.generator.encode(x)
        cached = tiny_models.generator(
            x,
            drv,
            {k: v.expand(3, *v.shape[1:]) for k, v in src.items() if k != "u" and k != "d"},
            source_features=feats,
        )["prediction"]
    assert torch.allclose(direct, cached, atol=1e-6)


def test_avd_network_shapes_and_covar():
    avd = AVDNetwork(4, 8, 4).eval()
    params = {"shift": torch.rand(3, 4, 2), "affine": torch.rand(3, 4, 2, 2) + torch.eye(2)}
    out = avd(params, params)
    assert out["shift"].shape == (3, 4, 2)
    assert torch.allclose(out["covar"], out["affine"] @ out["affine"].transpose(-1, -2))
    assert avd.decoder[0].in_features == 12


def test_eval_is_deterministic(tiny_models):
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        a = tiny_models.region_predictor(x)["shift"]
        b = tiny_models.region_predictor(x)["shift"]
    assert torch.equal(a, b)
