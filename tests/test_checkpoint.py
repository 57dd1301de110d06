import pytest
import torch

from mraa.checkpoint import (
    export_safetensors,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from mraa.cli import main
from mraa.config import apply_overrides, save_config
from mraa.errors import MRAAError
from mraa.models import build_models

from .conftest import CASE_A


def _official_file(models, path, with_avd=True):
    data = {name: module.state_dict() for name, module in models.items() if with_avd or name != "avd_network"}
    data["epoch_reconstruction"] = 3
    torch.save(data, path)
    return path


def test_official_layout_round_trip(tiny_cfg, tiny_models, tmp_path):
    path = _official_file(tiny_models, tmp_path / "ck.pth")
    fresh = build_models(tiny_cfg.model_params)
    data = load_checkpoint(path, fresh)
    assert data["epoch_reconstruction"] == 3
    for name, module in fresh.items():
        for key, value in module.state_dict().items():
            assert torch.equal(value, getattr(tiny_models, name).state_dict()[key])


def test_case_a_checkpoint_loads_strictly():
    if not CASE_A.exists():
        pytest.skip("no shared reference")
    from mraa.config import load_config

    cfg = load_config(CASE_A / "config.yaml")
    models = build_models(cfg.model_params)
    kernel = models.region_predictor.down.weight.clone()
    load_checkpoint(CASE_A / "checkpoint.pth", models)
    # our anti-aliasing kernel is exactly the official constructor's
    assert torch.equal(kernel, models.region_predictor.down.weight)


def test_mismatch_names_keys_and_suggests(tiny_cfg, tiny_models, tmp_path):
    path = _official_file(tiny_models, tmp_path / "ck.pth")
    other = build_models(apply_overrides(tiny_cfg, ["model_params.num_regions=4"]).model_params)
    with pytest.raises(MRAAError, match="num_regions"):
        load_checkpoint(path, other)
    no_occ = build_models(
        apply_overrides(
            tiny_cfg,
            ["model_params.generator_params.pixelwise_flow_predictor_params.estimate_occlusion_map=false"],
        ).model_params
    )
    with pytest.raises(MRAAError, match="occlusion"):
        load_checkpoint(path, no_occ)


class Evil:
    """An arbitrary class: loading it needs full unpickling."""


def test_unsafe_pickle_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"generator": Evil()}, path)
    with pytest.raises(MRAAError, match="unsafe"):
        read_checkpoint(path)


def test_corrupt_and_missing(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(MRAAError, match="corrupt|cannot read"):
        read_checkpoint(bad)
    with pytest.raises(MRAAError, match="not found"):
        read_checkpoint(tmp_path / "nope.pth")
    torch.save({"something": 1}, tmp_path / "other.pth")
    with pytest.raises(MRAAError, match="not an MRAA checkpoint"):
        read_checkpoint(tmp_path / "other.pth")


def test_safetensors_export_round_trip(tiny_cfg, tiny_models, tmp_path):
    path = export_safetensors(tiny_models, tiny_cfg, tmp_path / "export")
    assert path.name == "model.safetensors" and (tmp_path / "export" / "config.yaml").is_file()
    fresh = build_models(tiny_cfg.model_params)
    load_checkpoint(path, fresh)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        fresh.eval()
        assert torch.equal(fresh.region_predictor(x)["shift"], tiny_models.region_predictor(x)["shift"])


def test_save_checkpoint_has_config_and_is_atomic(tiny_cfg, tiny_models, tmp_path):
    path = save_checkpoint(
        tmp_path / "00000001-cpk-reconstruction.pth", tiny_models, tiny_cfg, epoch_reconstruction=1
    )
    data = read_checkpoint(path)
    assert data["config"]["model_params"]["num_regions"] == 2
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_export_cli(tiny_cfg, tiny_models, tmp_path, capsys):
    ck = _official_file(tiny_models, tmp_path / "ck.pth")
    save_config(tiny_cfg, tmp_path / "tiny.yaml")
    assert (
        main(
            [
                "export",
                "--checkpoint",
                str(ck),
                "--config",
                str(tmp_path / "tiny.yaml"),
                "--output",
                str(tmp_path / "out"),
            ]
        )
        == 0
    )
    assert (tmp_path / "out" / "model.safetensors").is_file()
    assert (
        main(
            [
                "export",
                "--checkpoint",
                str(tmp_path / "missing.pth"),
                "--config",
                str(tmp_path / "tiny.yaml"),
                "--output",
                str(tmp_path / "out2"),
            ]
        )
        == 2
    )
    assert "error:" in capsys.readouterr().err


def test_export_defaults_to_the_shipped_model_and_reads_exports(tiny_cfg, tiny_models, tmp_path, capsys):
    from mraa.animate import default_checkpoint

    assert main(["export", "--output", str(tmp_path / "shipped")]) == 0  # no --checkpoint, no --config
    assert "using the model shipped with mraa" in capsys.readouterr().out
    shipped, exported = read_checkpoint(default_checkpoint()), read_checkpoint(tmp_path / "shipped")
    assert set(exported) == set(shipped)
    assert all(torch.equal(exported["generator"][k], v) for k, v in shipped["generator"].items())
    # a safetensors export is a valid --checkpoint too, its config.yaml travelling with it
    assert (
        main(["export", "--checkpoint", str(tmp_path / "shipped"), "--output", str(tmp_path / "again")]) == 0
    )
    assert (tmp_path / "again" / "config.yaml").read_text() == (
        tmp_path / "shipped" / "config.yaml"
    ).read_text()
    # an official .pth stores no config: --config is then needed
    ck = _official_file(tiny_models, tmp_path / "ck.pth")
    assert main(["export", "--checkpoint", str(ck), "--output", str(tmp_path / "official")]) == 2
    assert "stores no config: pass --config" in capsys.readouterr().err
