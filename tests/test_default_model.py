"""The model shipped with mraa (src/mraa/assets/default): it loads, animates the shipped sample in-process,
and `mraa animate` without --checkpoint uses it and says so."""

import json

import pytest
import torch

from mraa.animate import DEFAULT_MODEL_DIR, Animator, default_checkpoint
from mraa.cli import main
from mraa.data.video_io import probe_video, read_video

from .conftest import ROOT

pytestmark = pytest.mark.skipif(
    not (DEFAULT_MODEL_DIR / "model.safetensors").is_file(), reason="this build has no shipped default model"
)


def test_shipped_files_are_small_and_complete():
    files = {p.name: p.stat().st_size for p in DEFAULT_MODEL_DIR.iterdir()}
    assert {"model.safetensors", "config.yaml", "source.png", "driving.mp4"} <= set(files)
    assert sum(files.values()) < 30 * 2**20


def test_shipped_model_animates_the_sample_in_process():
    from mraa.cli._common import driving_frames, load_source

    animator = Animator.from_checkpoint(default_checkpoint(), batch_size=8)
    assert animator.has_trained_avd and animator.default_mode() == "avd"
    source, _ = load_source(DEFAULT_MODEL_DIR / "source.png", animator.image_size, crop=False)
    frames = list(driving_frames(DEFAULT_MODEL_DIR / "driving.mp4", animator.image_size, crop=False))[:8]
    out = animator.animate(source, torch.cat(frames), mode="avd")
    assert out.shape == (8, 3, *animator.image_size)
    assert out.min() >= 0 and out.max() <= 1
    # the animation follows the driving motion: frames differ from each other and from the source
    assert (out[0] - out[-1]).abs().mean() > 1e-3


def test_animate_without_checkpoint_uses_the_shipped_model(tmp_path, capsys):
    out = tmp_path / "out.mp4"
    argv = ["animate", "--source", str(DEFAULT_MODEL_DIR / "source.png"), "--driving",
            str(DEFAULT_MODEL_DIR / "driving.mp4"), "--output", str(out), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    assert "using the model shipped with mraa" in capsys.readouterr().out
    assert read_video(out).shape[0] == len(read_video(DEFAULT_MODEL_DIR / "driving.mp4"))
    assert probe_video(out).fps == pytest.approx(probe_video(DEFAULT_MODEL_DIR / "driving.mp4").fps)


def test_reported_quality_beats_the_no_motion_baseline():
    report = json.loads((ROOT / "benchmarks" / "default_model.json").read_text())
    assert report["reconstruction_l1"] < report["no_motion_baseline_l1"]


def _reconstruct(animator, video):
    """Self-reenactment of a (T, H, W, 3) uint8 video from its first frame: (L1, no-motion baseline L1)."""
    frames = torch.from_numpy(video).permute(0, 3, 1, 2).float() / 255
    out = animator.animate(frames[:1], frames, mode="standard", background="driving")
    return (out - frames).abs().mean().item(), (frames - frames[:1]).abs().mean().item()


def test_shipped_model_reconstructs_unseen_synthetic_videos():
    """Fresh videos from a seed the model never saw (one of each figure type): motion is captured."""
    from mraa.data.synthetic import SynthConfig, render_video

    animator = Animator.from_checkpoint(default_checkpoint(), batch_size=8)
    cfg = SynthConfig(size=animator.image_size[0], num_frames=16)
    errors, baselines = zip(*(_reconstruct(animator, render_video(4242, i, cfg)) for i in range(3)))
    assert sum(errors) < 0.8 * sum(baselines), (errors, baselines)


def test_still_background_reproduces_the_source():
    """Driving with the source itself and a still background gives the source back (no dark frame border)."""
    from mraa.cli._common import load_source

    animator = Animator.from_checkpoint(default_checkpoint())
    source, _ = load_source(DEFAULT_MODEL_DIR / "source.png", animator.image_size, crop=False)
    out = animator.animate(source, source.expand(2, -1, -1, -1), mode="standard")
    assert (out - source).abs().mean() < 0.012
    border = torch.cat([out[..., 0, :], out[..., -1, :], out[..., :, 0], out[..., :, -1]], dim=-1)
    edge = torch.cat([source[..., 0, :], source[..., -1, :], source[..., :, 0], source[..., :, -1]], dim=-1)
    assert (border - edge).abs().mean() < 0.05


def test_demo_command_writes_its_outputs(tmp_path):
    assert main(["demo", "--out", str(tmp_path / "demo"), "--quiet"]) == 0
    assert (tmp_path / "demo" / "animation.mp4").is_file()
    assert (tmp_path / "demo" / "visualization.mp4").is_file()
    assert (tmp_path / "demo" / "segmentation" / "overlay.png").is_file()
    assert main(["demo", "--out", str(tmp_path / "demo"), "--quiet"]) == 0  # `make demo` again
