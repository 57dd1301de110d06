"""Parity with the official implementation (shared/reference/parity/caseA) and the parity script on
variant configs (other region counts, pad left out, bg types, no skips, no covariance heatmaps, the
regression head, scale factor 1), built here with random weights."""

import copy

import pytest
import torch
import yaml

from mraa.config import config_from_dict, to_dict
from mraa.geometry import Transform
from mraa.models import build_models
from mraa.parity import compare, compute_case

from .conftest import CASE_A, ROOT, require_case_a

SCRIPT = ROOT / "scripts" / "check_parity.py"


def _run_script(case_dir, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("check_parity", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    code = module.main([str(case_dir)])
    return code, capsys.readouterr().out.strip().splitlines()


def test_case_a_all_keys_within_tolerance(capsys):
    require_case_a()
    code, lines = _run_script(CASE_A, capsys)
    assert lines[-1].startswith("parity: 64/64 keys within tolerance"), lines[-1]
    assert code == 0


def test_case_a_modes_through_the_animator():
    require_case_a()
    from mraa.animate import Animator

    ref = torch.load(CASE_A / "io.pt", weights_only=True)
    animator = Animator.from_checkpoint(CASE_A / "checkpoint.pth", CASE_A / "config.yaml", batch_size=3)
    for mode in ("standard", "relative", "avd"):
        out = animator.animate(ref["input/source"], ref["input/driving"], mode=mode, progress=False)
        assert (out - ref[f"anim/{mode}/prediction"]).abs().max() < 2e-4, mode


BASE = {
    "dataset_params": {"frame_shape": [32, 32, 3]},
    "model_params": {
        "num_regions": 3,
        "num_channels": 3,
        "estimate_affine": True,
        "revert_axis_swap": True,
        "bg_predictor_params": {
            "block_expansion": 4,
            "max_features": 16,
            "num_blocks": 2,
            "bg_type": "affine",
        },
        "region_predictor_params": {
            "temperature": 0.1,
            "block_expansion": 4,
            "max_features": 16,
            "scale_factor": 0.5,
            "num_blocks": 2,
            "pca_based": True,
            "pad": 0,
        },
        "generator_params": {
            "block_expansion": 4,
            "max_features": 16,
            "num_down_blocks": 2,
            "num_bottleneck_blocks": 1,
            "skips": True,
            "pixelwise_flow_predictor_params": {
                "block_expansion": 4,
                "max_features": 16,
                "num_blocks": 2,
                "scale_factor": 0.5,
                "use_covar_heatmap": True,
                "estimate_occlusion_map": True,
            },
        },
        "avd_network_params": {"id_bottle_size": 8, "pose_bottle_size": 4},
    },
}

VARIANTS = {
    "pad_absent_4_regions": {"model_params.num_regions": 4, "model_params.region_predictor_params.pad": None},
    "bg_zero": {"model_params.bg_predictor_params.bg_type": "zero"},
    "bg_shift": {"model_params.bg_predictor_params.bg_type": "shift"},
    "bg_perspective": {"model_params.bg_predictor_params.bg_type": "perspective"},
    "no_skips": {"model_params.generator_params.skips": False},
    "no_covar_heatmap": {
        "model_params.generator_params.pixelwise_flow_predictor_params.use_covar_heatmap": False
    },
    "regression_head": {"model_params.region_predictor_params.pca_based": False},
    "scale_one": {"model_params.region_predictor_params.scale_factor": 1},
}


def _variant_case(tmp_path, updates):
    data = copy.deepcopy(BASE)
    for dotted, value in updates.items():
        node = data
        *parents, last = dotted.split(".")
        for key in parents:
            node = node[key]
        if value is None:
            node.pop(last)
        else:
            node[last] = value
    cfg = config_from_dict(data, strict=True)
    torch.manual_seed(5)
    models = build_models(cfg.model_params)
    with torch.no_grad():  # move the heads away from their identity initialisation
        for _, module in models.items():
            for name, p in module.named_parameters():
                if name.startswith(("fc.", "jacobian.")):
                    p.add_(torch.randn_like(p) * 0.05)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg)))
    torch.save({name: m.state_dict() for name, m in models.items()}, tmp_path / "checkpoint.pth")
    g = torch.Generator().manual_seed(0)
    transform = Transform(2, 0.05, 0.005, 5, generator=g)
    inputs = {
        "input/source": torch.rand(1, 3, 32, 32, generator=g),
        "input/driving": torch.rand(3, 3, 32, 32, generator=g),
        "eq/source": torch.rand(2, 3, 32, 32, generator=g),
        "eq/driving": torch.rand(2, 3, 32, 32, generator=g),
        "eq/theta": transform.theta,
        "eq/control_params": transform.control_params,
        "eq/control_points": transform.control_points,
    }
    torch.save(inputs, tmp_path / "io.pt")
    _, ours = compute_case(tmp_path)
    torch.save(ours, tmp_path / "io.pt")  # becomes the reference for the script
    return cfg, ours


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_parity_script_handles_variant_configs(variant, tmp_path, capsys):
    cfg, ours = _variant_case(tmp_path, VARIANTS[variant])
    expected_keys = {
        "rp/source/shift",
        "bg/params",
        "recon/prediction",
        "anim/avd/prediction",
        "anim/relative/movement_scale",
        "eq/loss/equivariance_shift",
        "eq/loss/equivariance_affine",
    }
    assert expected_keys <= set(ours)
    assert ("rp/source/u" in ours) == cfg.model_params.region_predictor_params.pca_based
    code, lines = _run_script(tmp_path, capsys)
    assert code == 0 and lines[-1].startswith(f"parity: {len(ours)}/{len(ours)} keys"), lines[-1]
    # a perturbed reference must fail
    broken = dict(ours)
    broken["recon/prediction"] = broken["recon/prediction"] + 1e-3
    failing = [key for key, _, _, ok in compare(broken, ours) if not ok]
    assert failing == ["recon/prediction"]


def test_parity_script_fails_on_a_wrong_reference(tmp_path, capsys):
    _, ours = _variant_case(tmp_path, {})
    ours["anim/avd/prediction"] = ours["anim/avd/prediction"] + 1e-3
    torch.save(ours, tmp_path / "io.pt")
    code, lines = _run_script(tmp_path, capsys)
    assert code == 1 and "worst anim/avd/prediction" in lines[-1]
    assert torch.is_grad_enabled()  # the script leaves autograd as it found it


def test_compare_reports_missing_and_misshaped_keys():
    ref = {"a": torch.zeros(2), "b": torch.zeros(3)}
    rows = {key: ok for key, _, _, ok in compare(ref, {"a": torch.zeros(3)})}
    assert rows == {"a": False, "b": False}
