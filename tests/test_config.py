import logging

import pytest

from mraa.config import (
    MRAAConfig,
    apply_overrides,
    config_from_dict,
    load_config,
    save_config,
    to_dict,
)
from mraa.errors import MRAAError

from .conftest import CASE_A, ROOT

FULL = ["vox256", "taichi256", "mgif256", "ted384", "ted-youtube384"]


@pytest.mark.parametrize("name", [*FULL, "tiny"])
def test_our_configs_load_strictly(name):
    cfg = load_config(ROOT / "configs" / f"{name}.yaml", strict=True)
    assert isinstance(cfg, MRAAConfig)


def test_pad_defaults_to_three_when_absent():
    vox = load_config(ROOT / "configs" / "vox256.yaml")
    taichi = load_config(ROOT / "configs" / "taichi256.yaml")
    assert vox.model_params.region_predictor_params.pad == 3
    assert taichi.model_params.region_predictor_params.pad == 0


def test_partial_sections_get_defaults():
    mgif = load_config(ROOT / "configs" / "mgif256.yaml")
    jitter = mgif.dataset_params.augmentation_params.jitter_param
    assert jitter.hue == 0.5 and jitter.brightness == 0.0
    assert mgif.dataset_params.pairs_list is None
    assert mgif.dataset_params.augmentation_params.crop_param.size == (256, 256)
    assert mgif.train_params.use_sync_bn is False
    assert mgif.model_params.bg_predictor_params.bg_type == "zero"


def test_case_a_config_loads():
    if not CASE_A.exists():
        pytest.skip("no shared reference")
    cfg = load_config(CASE_A / "config.yaml", strict=True)
    assert cfg.model_params.num_regions == 5
    assert cfg.dataset_params.frame_shape == (64, 64, 3)


def test_unknown_key_warns_or_raises(caplog):
    data = {"model_params": {"num_regions": 3, "bogus": 1}}
    with caplog.at_level(logging.WARNING):
        cfg = config_from_dict(data)
    assert cfg.model_params.num_regions == 3
    assert "model_params.bogus" in caplog.text
    with pytest.raises(MRAAError, match="model_params.bogus"):
        config_from_dict(data, strict=True)


@pytest.mark.parametrize(
    "data, key",
    [
        ({"model_params": {"num_regions": "ten"}}, "model_params.num_regions"),
        ({"model_params": {"estimate_affine": 1}}, "model_params.estimate_affine"),
        ({"train_params": {"lr": "fast"}}, "train_params.lr"),
        ({"train_params": {"scales": 1}}, "train_params.scales"),
        ({"model_params": {"region_predictor_params": [1]}}, "model_params.region_predictor_params"),
        ({"model_params": {"bg_predictor_params": {"bg_type": "spin"}}}, "bg_type"),
    ],
)
def test_wrong_types_name_the_key(data, key):
    with pytest.raises(MRAAError, match=key.replace(".", r"\.")):
        config_from_dict(data)


def test_yaml_scientific_without_dot_is_a_number():
    cfg = config_from_dict({"train_params": {"lr": "2e-4"}})
    assert cfg.train_params.lr == pytest.approx(2e-4)


def test_save_load_round_trip(tmp_path):
    cfg = load_config(ROOT / "configs" / "ted-youtube384.yaml")
    save_config(cfg, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml", strict=True) == cfg


def test_overrides():
    cfg = apply_overrides(MRAAConfig(), ["train_params.batch_size=4", "model_params.num_regions=7"])
    assert cfg.train_params.batch_size == 4 and cfg.model_params.num_regions == 7
    with pytest.raises(MRAAError):
        apply_overrides(MRAAConfig(), ["train_params.batch_size"])
    with pytest.raises(MRAAError, match="nope"):
        apply_overrides(MRAAConfig(), ["train_params.nope=1"])


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(MRAAError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model_params: [unclosed")
    with pytest.raises(MRAAError, match="cannot parse"):
        load_config(bad)


def test_to_dict_is_plain():
    data = to_dict(MRAAConfig())
    assert isinstance(data["train_params"]["scales"], list)
