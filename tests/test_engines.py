"""Engines (mraa.inference.engines) behind the Animator, and loading that reads a checkpoint once."""

import argparse

import pytest
import safetensors.torch
import torch

from mraa.checkpoint import DEFAULT_MODEL_DIR, export_safetensors, load_model, save_checkpoint
from mraa.errors import MRAAError
from mraa.inference.animator import Animator
from mraa.inference.engines import TorchEngine


@pytest.fixture
def count_reads(monkeypatch):
    """Counts of the checkpoint file reads: ``torch.load`` (.pth) and safetensors' ``load_file``."""
    counts = {"torch.load": 0, "load_file": 0}

    def counted(name, real):
        def read(*args, **kwargs):
            counts[name] += 1
            return real(*args, **kwargs)

        return read

    monkeypatch.setattr(torch, "load", counted("torch.load", torch.load))
    monkeypatch.setattr(safetensors.torch, "load_file", counted("load_file", safetensors.torch.load_file))
    return counts


def test_from_checkpoint_reads_a_pth_once(tiny_cfg, tiny_models, tmp_path, count_reads):
    path = save_checkpoint(tmp_path / "run.pth", tiny_models, tiny_cfg)
    animator = Animator.from_checkpoint(path, fuse=False)
    assert count_reads == {"torch.load": 1, "load_file": 0}
    assert torch.equal(animator.models.generator.final.weight, tiny_models.generator.final.weight)
    assert animator.config == tiny_cfg


def test_the_shipped_model_and_an_export_are_read_once(tiny_cfg, tiny_models, tmp_path, count_reads):
    shipped = Animator.from_checkpoint()
    assert count_reads["load_file"] == 1 and shipped.shipped_model
    folder = export_safetensors(tiny_models, tiny_cfg, tmp_path / "export").parent
    loaded = load_model(folder)  # a folder: its model.safetensors and config.yaml
    assert count_reads == {"torch.load": 0, "load_file": 2}
    assert not loaded.shipped and loaded.config == tiny_cfg


def test_web_and_cli_exports_read_the_checkpoint_once(tiny_cfg, tiny_models, tmp_path, count_reads):
    from mraa.cli import export as export_cli
    from mraa.export.web import load_models

    path = save_checkpoint(tmp_path / "run.pth", tiny_models, tiny_cfg)
    models, cfg, mode = load_models(path, None)
    assert count_reads["torch.load"] == 1 and cfg == tiny_cfg and mode == "avd"
    args = argparse.Namespace(
        checkpoint=str(path), config=None, output=str(tmp_path / "out"), format="safetensors", overwrite=False
    )
    assert export_cli.run(args) == 0
    assert count_reads["torch.load"] == 2  # one more read for the export


def test_load_model_names_a_checkpoint_without_config(tiny_models, tmp_path):
    path = save_checkpoint(tmp_path / "bare.pth", tiny_models)
    with pytest.raises(MRAAError, match="carries no config"):
        load_model(path)
    assert (DEFAULT_MODEL_DIR / "model.safetensors").is_file()


class RecordingEngine:
    """An engine that records the calls the Animator makes and delegates them to a TorchEngine."""

    def __init__(self, inner: TorchEngine) -> None:
        self.inner, self.calls = inner, []
        self.device, self.models, self.precision, self.prepacked = inner.device, inner.models, "fp32", False
        self.moves_background = inner.moves_background

    def __getattr__(self, name):  # encode_source, regions, render, background, avd
        method = getattr(self.inner, name)

        def call(*args, **kwargs):
            self.calls.append(name)
            return method(*args, **kwargs)

        return call


def test_the_animator_runs_on_any_engine(tiny_cfg, tiny_models):
    source, driving = torch.rand(1, 3, 64, 64), torch.rand(3, 3, 64, 64)
    engine = RecordingEngine(TorchEngine(tiny_models, fuse=False))
    animator = Animator(engine, tiny_cfg.animate_params, config=tiny_cfg)
    out = animator.animate(source, driving, mode="avd", background="driving")
    reference = Animator(tiny_models, tiny_cfg.animate_params, config=tiny_cfg, fuse=False)
    assert torch.allclose(
        out, reference.animate(source, driving, mode="avd", background="driving"), atol=1e-5
    )
    assert engine.calls[0] == "encode_source" and engine.calls.count("render") == 3
    assert {"regions", "avd", "background"} <= set(engine.calls)


def test_engine_options_need_networks(tiny_cfg, tiny_models):
    engine = TorchEngine(tiny_models, fuse=False)
    with pytest.raises(TypeError, match="precision"):
        Animator(engine, tiny_cfg.animate_params, precision="bf16")
    with pytest.raises(MRAAError, match="backend must be torch or onnxruntime"):
        Animator(tiny_models, tiny_cfg.animate_params, backend="tensorrt")
