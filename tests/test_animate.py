"""Animation API and `mraa animate` on a tiny random model and a generated video with audio."""

import subprocess

import imageio_ffmpeg
import numpy as np
import pytest
import torch

from mraa.animate import Animator, background_schedule, fuse_conv_bn
from mraa.checkpoint import export_safetensors, save_checkpoint
from mraa.cli import main
from mraa.data.video_io import probe_video, read_video, write_image, write_video
from mraa.errors import MRAAError


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """A tiny checkpoint (+ config inside), a source image and a 6-frame driving video with audio."""
    from mraa.config import load_config
    from mraa.models import build_models

    from .conftest import ROOT

    root = tmp_path_factory.mktemp("anim")
    cfg = load_config(ROOT / "configs" / "tiny.yaml")
    torch.manual_seed(0)
    models = build_models(cfg.model_params)
    save_checkpoint(root / "ck.pth", models, cfg, include=("generator", "region_predictor", "bg_predictor"))
    save_checkpoint(root / "ck_avd.pth", models, cfg)
    export_safetensors(models, cfg, root / "export")
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (72, 90, 3), dtype=np.uint8) for _ in range(6)]
    write_video(root / "silent.mp4", frames, fps=12)
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    subprocess.run(
        [ffmpeg, "-y", "-loglevel", "error", "-i", str(root / "silent.mp4"), "-f", "lavfi", "-i",
         "sine=frequency=440:duration=1", "-c:v", "copy", "-c:a", "aac", "-shortest", str(root / "driving.mp4")],
        check=True,
    )  # fmt: skip
    write_image(root / "source.png", frames[0])
    rgba = np.dstack([frames[1][:40, :40], np.full((40, 40), 128, np.uint8)])
    write_image(root / "rgba.png", rgba)
    return root


def _run(media, *extra):
    out = media / "out.mp4"
    out.unlink(missing_ok=True)
    argv = ["animate", "--source", str(media / "source.png"), "--driving", str(media / "driving.mp4"),
            "--output", str(out), "--checkpoint", str(media / "ck.pth"), "--quiet", *extra]  # fmt: skip
    return main(argv), out


def test_cli_writes_video_with_frames_fps_size_audio(media, capsys):
    code, out = _run(media, "--visualize")
    assert code == 0
    frames = read_video(out)
    assert frames.shape == (6, 64, 64, 3)
    info = probe_video(out)
    assert info.fps == pytest.approx(12) and info.has_audio
    viz = read_video(media / "out_visualization.mp4")
    assert viz.shape == (6, 256, 3 * 256 + 2 * 2, 3)  # three 64-px panels enlarged 4x, 2-px gaps
    text = capsys.readouterr().out
    assert "mode: relative (default for this checkpoint)" in text


@pytest.mark.parametrize("mode", ["standard", "relative", "avd"])
def test_cli_modes(media, mode, capsys):
    code, out = _run(media, "--mode", mode, "--fps", "5", "--batch-size", "4")
    assert code == 0 and read_video(out).shape[0] == 6
    assert probe_video(out).fps == pytest.approx(5)


@pytest.mark.parametrize("background", ["left", "right:0.05", "rotate:2", "driving", "1,0,0.1,0,1,0"])
def test_cli_backgrounds(media, background):
    code, _ = _run(media, "--background", background)
    assert code == 0


def test_avd_is_default_when_trained(media, capsys):
    out = media / "avd.mp4"
    argv = ["animate", "--source", str(media / "rgba.png"), "--driving", str(media / "silent.mp4"), "--output",
            str(out), "--checkpoint", str(media / "ck_avd.pth"), "--quiet", "--crop"]  # fmt: skip
    assert main(argv) == 0
    assert "mode: avd" in capsys.readouterr().out
    assert not probe_video(out).has_audio


@pytest.mark.parametrize(
    "change, message",
    [
        ({"--source": "missing.png"}, "source not found"),
        ({"--driving": "missing.mp4"}, "driving not found"),
        ({"--output": "nodir/out.mp4"}, "output directory does not exist"),
        ({"--device": "cuda:7" if not torch.cuda.is_available() else "tpu"}, "device"),
        ({"--background": "sideways"}, "unknown background"),
        ({"--checkpoint": "broken.pth"}, "corrupt"),
        ({"--driving": "empty"}, "no image frames"),
    ],
)
def test_cli_errors_are_one_line_and_leave_no_output(media, change, message, capsys):
    (media / "broken.pth").write_bytes(b"garbage")
    (media / "empty").mkdir(exist_ok=True)
    args = {
        "--source": "source.png",
        "--driving": "driving.mp4",
        "--output": "bad.mp4",
        "--checkpoint": "ck.pth",
    }
    args.update(change)
    argv = ["animate", "--quiet"]
    for key, value in args.items():
        argv += [key, value if key == "--device" else str(media / value)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (media / "bad.mp4").exists()
    assert not list(media.glob(".mraa-tmp-bad-*"))


def test_mismatched_config_is_one_line(media, tmp_path, capsys):
    from .conftest import ROOT

    argv = ["animate", "--source", str(media / "source.png"), "--driving", str(media / "driving.mp4"),
            "--output", str(tmp_path / "o.mp4"), "--checkpoint", str(media / "ck.pth"),
            "--config", str(ROOT / "configs" / "vox256.yaml"), "--quiet"]  # fmt: skip
    assert main(argv) == 2
    assert "does not match the config" in capsys.readouterr().err


def test_api_streaming_equals_batch_and_safetensors(media):
    animator = Animator.from_checkpoint(media / "export" / "model.safetensors", batch_size=4)
    source = torch.rand(1, 3, 64, 64)
    driving = torch.rand(7, 3, 64, 64)
    full = animator.animate(source, driving, mode="relative")
    streamed = torch.cat(
        [b.prediction for b in animator.animate_iter(source, iter(driving.unbind(0)), "relative")]
    )
    assert full.shape == (7, 3, 64, 64)
    assert torch.allclose(full, streamed, atol=1e-6)


def test_cached_pipeline_equals_plain_per_frame_loop(media):
    """The batched, cached, BN-fused pipeline gives the same frames as the official-style per-frame loop."""
    from mraa.animate import animation_region_params

    fast = Animator.from_checkpoint(media / "ck_avd.pth", batch_size=3)
    plain = Animator.from_checkpoint(media / "ck_avd.pth", batch_size=1, fuse=False)
    models = plain.models
    source = torch.rand(1, 3, 64, 64)
    driving = torch.rand(5, 3, 64, 64)
    for mode in ("standard", "relative", "avd"):
        with torch.no_grad():
            src = models.region_predictor(source)
            first = models.region_predictor(driving[:1])
            expected = []
            for i in range(5):
                drv = models.region_predictor(driving[i : i + 1])
                params = animation_region_params(src, drv, first, mode, models.avd_network)
                expected.append(models.generator(source, params, src)["prediction"])
        got = fast.animate(source, driving, mode=mode)
        assert (got - torch.cat(expected)).abs().max() < 2e-4, mode


def test_background_schedule_parsing(tmp_path):
    assert background_schedule("still").params(torch.arange(3), torch.device("cpu"), torch.float32) is None
    left = background_schedule("left:0.1").params(torch.arange(3), torch.device("cpu"), torch.float32)
    assert torch.allclose(left[:, 0, 2], torch.tensor([0.0, 0.1, 0.2]))
    rot = background_schedule("rotate:90").params(torch.tensor([1]), torch.device("cpu"), torch.float32)
    assert torch.allclose(rot[0, :2, :2], torch.tensor([[0.0, -1.0], [1.0, 0.0]]), atol=1e-6)
    schedule = np.stack([np.eye(3)[:2] * (i + 1) for i in range(4)])
    np.save(tmp_path / "s.npy", schedule)
    params = background_schedule(str(tmp_path / "s.npy")).params(
        torch.tensor([0, 3, 9]), torch.device("cpu"), torch.float32
    )
    assert params[:, 0, 0].tolist() == [1.0, 4.0, 4.0]  # the last matrix holds after the schedule ends
    with pytest.raises(MRAAError):
        background_schedule("1,2,3")
    with pytest.raises(MRAAError):
        background_schedule(str(tmp_path / "missing.npy"))


def test_still_background_is_identity_of_generator(tiny_models):
    """A still background equals passing no bg params, as in the paper's animation."""
    animator = Animator(tiny_models, fuse=False)
    source = torch.rand(1, 3, 64, 64)
    driving = torch.rand(2, 3, 64, 64)
    a = animator.animate(source, driving, mode="standard", background="still")
    b = animator.animate(source, driving, mode="standard", background="0.5,0,0,0,0.5,0")  # a zoom
    assert not torch.allclose(a, b)
    c = animator.animate(source, driving, mode="standard", background="1,0,0,0,1,0")
    assert torch.allclose(a, c, atol=1e-6)


def _biased_bg_models(tiny_models, bias):
    """The tiny models with a background predictor that outputs the constant affine ``bias`` (2x3, flat)."""
    import copy

    models = copy.deepcopy(tiny_models)
    with torch.no_grad():
        models.bg_predictor.fc.weight.zero_()
        models.bg_predictor.fc.bias.copy_(torch.tensor(bias))
    return models


def test_still_background_source_uses_the_predictors_own_estimate(tiny_models):
    """still_background=source: a still background is bg_predictor(source, source); motions compose on it."""
    bias = [0.9, 0.05, 0.02, -0.03, 0.95, 0.01]
    models = _biased_bg_models(tiny_models, bias)
    source = torch.rand(1, 3, 64, 64)
    driving = torch.rand(3, 3, 64, 64)
    calibrated = Animator(models, fuse=False, still_background="source")
    official = Animator(models, fuse=False)  # default from AnimateParams: identity
    assert official.still_background == "identity"
    explicit = ",".join(str(v) for v in bias)
    still = calibrated.animate(source, driving, mode="standard", background="still")
    assert torch.allclose(
        still, official.animate(source, driving, mode="standard", background=explicit), atol=1e-6
    )
    assert not torch.allclose(still, official.animate(source, driving, mode="standard", background="still"))
    # a moving background is applied on top of the reference: R @ T(t)
    reference = torch.eye(3)
    reference[:2] = torch.tensor(bias).view(2, 3)
    shifts = background_schedule("left:0.1").params(torch.arange(3), torch.device("cpu"), torch.float32)
    schedule = (reference @ shifts).numpy()
    moving = calibrated.animate(source, driving, mode="standard", background="left:0.1")
    from mraa.animate import BackgroundMotion

    expected = official.animate(
        source,
        driving,
        mode="standard",
        background=BackgroundMotion("schedule", matrices=torch.from_numpy(schedule)),
    )
    assert torch.allclose(moving, expected, atol=1e-6)


def test_still_background_from_config_and_bad_values(tiny_models, tiny_cfg):
    import copy

    from mraa.config import config_from_dict, to_dict

    cfg = copy.deepcopy(tiny_cfg)
    cfg.animate_params.still_background = "source"
    assert Animator(tiny_models, cfg.animate_params, fuse=False).still_background == "source"
    assert config_from_dict(to_dict(cfg)).animate_params.still_background == "source"  # round trip
    with pytest.raises(MRAAError, match="still background"):
        Animator(tiny_models, fuse=False, still_background="zoom")
    data = to_dict(cfg)
    data["animate_params"]["still_background"] = "zoom"
    with pytest.raises(MRAAError, match="still_background"):
        config_from_dict(data)


def test_cli_still_background_option(media, capsys):
    code, out = _run(media, "--still-background", "source", "--mode", "standard")
    assert code == 0 and read_video(out).shape[0] == 6
    assert "relative to the source's own estimate" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        _run(media, "--still-background", "zoom")


def test_fuse_conv_bn_matches(tiny_models):
    import copy

    x = torch.rand(2, 3, 64, 64)
    fused = fuse_conv_bn(copy.deepcopy(tiny_models.region_predictor)).eval()
    with torch.no_grad():
        assert torch.allclose(fused(x)["heatmap"], tiny_models.region_predictor(x)["heatmap"], atol=1e-5)
