"""Reconstruction evaluation: L1 / baseline bookkeeping, AKD/MKR/AED maths, extractor registry, the
`mraa reconstruct` command, and the offline dlib face extractors on a real photograph."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from mraa.animate import Animator
from mraa.checkpoint import save_checkpoint
from mraa.cli import main
from mraa.data.frames_dataset import FramesDataset
from mraa.data.video_io import read_image, read_video, write_frame_folder, write_video
from mraa.errors import MRAAError
from mraa.evaluation import (
    average_euclidean_distance,
    average_keypoint_distance,
    load_identity_extractor,
    load_keypoint_extractor,
    missing_keypoint_rate,
    reconstruct_dataset,
    reconstruct_video,
    register_keypoint_extractor,
)
from mraa.evaluation.metrics import aed_terms, akd_terms, mkr_terms
from mraa.visualize import tensor_to_uint8

from .conftest import ROOT

NAN = np.nan
ASTRONAUT = ROOT / "tests" / "data" / "prepare" / "astronaut.jpg"


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny checkpoint whose background predictor moves (random fc) and a dataset with two test videos:
    ``a.mp4`` (5 frames) and ``b`` (a folder of 3 lossless PNG frames)."""
    from mraa.config import load_config
    from mraa.models import build_models

    root = tmp_path_factory.mktemp("evaluate")
    cfg = load_config(ROOT / "configs" / "tiny.yaml")
    torch.manual_seed(0)
    models = build_models(cfg.model_params)
    with torch.no_grad():  # the bg predictor starts at the identity; make it predict some motion
        models.bg_predictor.fc.weight.normal_(0, 0.05)
    save_checkpoint(root / "ck.pth", models, cfg)
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    frames_a = [np.roll(base, 2 * t, axis=1) for t in range(5)]
    frames_b = [rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(3)]
    data = root / "data"
    (data / "test").mkdir(parents=True)
    write_video(data / "test" / "a.mp4", frames_a)
    write_frame_folder(data / "test" / "b", frames_b)
    return {"root": root, "data": data, "cfg": cfg, "frames_b": np.stack(frames_b)}


@pytest.fixture(scope="module")
def animator(setup):
    return Animator.from_checkpoint(setup["root"] / "ck.pth", batch_size=2)


@pytest.fixture(scope="module")
def dataset(setup):
    return FramesDataset(setup["data"], frame_shape=(64, 64, 3), is_train=False)


def _video(dataset, index):
    return dataset.get_video(index)["video"].permute(1, 0, 2, 3)  # (T, 3, H, W)


def _baseline(video):
    """No-motion L1 by hand: frame 0 against every frame, mean over pixels then frames."""
    array = video.numpy().astype(np.float64)
    return float(np.mean([np.abs(array[0] - frame).mean() for frame in array]))


@pytest.fixture(scope="module")
def prediction_b(animator, dataset):
    """Reconstruction of the 3-frame video ``b`` (two batches: 2 + 1 frames)."""
    return reconstruct_video(animator, _video(dataset, 1))


@pytest.fixture(scope="module")
def png_report(animator, dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("png")
    report = reconstruct_dataset(
        animator, dataset, out_dir=out, format="png", layout="prediction", progress=False
    )
    return report, out


# ----------------------------------------------------------------------------- reconstruction
def test_reconstruct_video_matches_the_official_computation(setup, animator, dataset, prediction_b):
    """The cached, batched path equals generator(source, driving params, source params, bg(source, driving))
    on the unfused networks, and the background motion is used."""
    from mraa.checkpoint import load_checkpoint
    from mraa.models import build_models

    models = build_models(setup["cfg"].model_params)
    load_checkpoint(setup["root"] / "ck.pth", models)
    models.eval()
    video = _video(dataset, 1)
    assert prediction_b.shape == video.shape
    with torch.no_grad():  # every frame against frame 0, all frames in one batch
        source = video[:1].expand_as(video)
        bg_params = models.bg_predictor(source, video)
        expected = models.generator(
            source, models.region_predictor(video), models.region_predictor(source), bg_params=bg_params
        )["prediction"]
    torch.testing.assert_close(prediction_b, expected, atol=1e-4, rtol=0)
    without_bg = reconstruct_video(animator, video[:1], use_bg=False)
    assert (without_bg - prediction_b[:1]).abs().max() > 1e-3


def test_report_fields_baseline_and_png_strips(setup, dataset, png_report, prediction_b):
    report, out = png_report
    assert [v.name for v in report.videos] == ["a.mp4", "b"]
    assert [v.num_frames for v in report.videos] == [5, 3]
    assert [v.output for v in report.videos] == ["a.png", "b.png"]
    videos = [_video(dataset, i) for i in range(2)]
    # the folder video is lossless: its baseline straight from the frames that were written
    frames_b = setup["frames_b"].astype(np.float64) / 255.0
    assert report.videos[1].baseline_l1 == pytest.approx(np.mean(np.abs(frames_b - frames_b[:1])), abs=1e-6)
    for video, result in zip(videos, report.videos):
        assert result.baseline_l1 == pytest.approx(_baseline(video), abs=1e-6)
    assert report.videos[1].l1 == pytest.approx((prediction_b - videos[1]).abs().mean().item(), abs=1e-6)
    assert report.l1 == pytest.approx((report.videos[0].l1 + report.videos[1].l1) / 2)
    assert report.l1_frames == pytest.approx((5 * report.videos[0].l1 + 3 * report.videos[1].l1) / 8)
    assert report.baseline_l1 == pytest.approx(np.mean([_baseline(v) for v in videos]), abs=1e-6)
    assert report.akd is report.mkr is report.aed is None
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["num_videos"] == 2 and saved["num_frames"] == 8
    assert saved["l1"] == pytest.approx(report.l1) and saved["use_bg"] is True
    assert saved["videos"][1]["baseline_l1"] == pytest.approx(report.videos[1].baseline_l1)
    assert read_image(out / "a.png").shape == (64, 5 * 64, 3)
    strip = read_image(out / "b.png")  # the official strip layout: the reconstruction, frames side by side
    np.testing.assert_array_equal(strip, np.concatenate(list(tensor_to_uint8(prediction_b)), axis=1))
    assert "over 2 videos (8 frames" in report.summary()


def _perfect(animator, monkeypatch, scale=1.0):
    """Make the model "render" the driving frame times ``scale`` (1: a perfect reconstruction)."""
    monkeypatch.setattr(animator, "region_params", lambda frames: {"frames": frames})
    monkeypatch.setattr(
        animator, "render", lambda state, params, bg=None: {"prediction": params["frames"] * scale}
    )


def test_perfect_reconstruction_has_zero_l1(animator, dataset, monkeypatch):
    _perfect(animator, monkeypatch)
    report = reconstruct_dataset(animator, dataset, use_bg=False, progress=False)
    assert report.l1 == 0.0 and report.l1_frames == 0.0
    assert report.baseline_l1 > 0.1  # random frames differ from the first one


def test_fake_extractors_through_the_pipeline(animator, dataset, monkeypatch):
    """Prediction all black; a keypoint "detector" that finds nothing in black frames and an identity that is
    the mean brightness: AKD has no pairs, MKR is 1, AED equals the mean brightness = the L1 to black."""
    _perfect(animator, monkeypatch, scale=0.0)

    def keypoints(frames):
        means = frames.reshape(len(frames), -1).mean(axis=1)
        out = np.stack([means, np.zeros_like(means)], axis=-1)[:, None, :]  # (N, 1, 2)
        out[means == 0] = np.nan
        return out

    def identity(frames):
        return np.stack([frames.reshape(len(frames), -1).mean(axis=1) / 255.0, np.zeros(len(frames))], axis=1)

    report = reconstruct_dataset(
        animator,
        dataset,
        use_bg=False,
        progress=False,
        keypoint_extractor=keypoints,
        identity_extractor=identity,
    )
    assert report.akd is None and report.akd_euclidean is None and report.mkr == 1.0
    assert report.aed_euclidean == pytest.approx(report.l1_frames, abs=1e-6)
    brightness = _video(dataset, 0).double().mean(dim=(1, 2, 3))  # (T,) per-frame mean
    assert report.videos[0].aed_euclidean == pytest.approx(brightness.mean().item(), abs=1e-6)
    assert report.videos[0].aed == pytest.approx((brightness**2).mean().item(), abs=1e-6)  # squared
    assert report.videos[0].counts["mkr"] == 5 and report.videos[0].counts["aed"] == 5
    assert "AKD n/a; MKR 1.0000; AED" in report.summary()


def test_extractor_with_wrong_shape_is_a_clear_error(animator, dataset):
    with pytest.raises(MRAAError, match=r"expected \(N, P, 2\)"):
        reconstruct_dataset(
            animator, dataset, progress=False, keypoint_extractor=lambda f: np.zeros((len(f), 3))
        )


# ----------------------------------------------------------------------------- metric maths
class TestMetricMaths:
    driving = np.array([[[0, 0], [3, 4]], [[1, 1], [NAN, NAN]]], dtype=float)  # (N=2, P=2, 2)

    def test_akd_over_keypoints_detected_in_both(self):
        reconstruction = np.array([[[0, 0], [0, 0]], [[1, 2], [5, 5]]], dtype=float)
        assert akd_terms(self.driving, reconstruction) == (6.0, 3)  # distances 0, 5, 1
        assert average_keypoint_distance(self.driving, reconstruction) == pytest.approx(2.0)
        assert missing_keypoint_rate(self.driving, reconstruction) == 0.0

    def test_missing_keypoints(self):
        reconstruction = np.array([[[0, 0], [NAN, 7]], [[1, 2], [5, 5]]], dtype=float)
        assert average_keypoint_distance(self.driving, reconstruction) == pytest.approx(0.5)  # 0 and 1
        assert mkr_terms(self.driving, reconstruction) == (1, 3)
        assert missing_keypoint_rate(self.driving, reconstruction) == pytest.approx(1 / 3)

    def test_nothing_to_compare_is_none(self):
        empty = np.full((2, 2, 2), NAN)
        assert average_keypoint_distance(empty, self.driving) is None
        assert missing_keypoint_rate(empty, self.driving) is None

    def test_aed(self):
        driving = np.array([[0, 0], [1, 1], [NAN, NAN]])
        reconstruction = np.array([[3, 4], [1, 1], [0, 0]])
        assert aed_terms(driving, reconstruction) == (5.0, 2)
        assert average_euclidean_distance(driving, reconstruction) == pytest.approx(2.5)


# ----------------------------------------------------------------------------- registry
def make_fake_keypoints():
    """A factory reachable as ``tests.test_evaluate:make_fake_keypoints``: one keypoint at the brightest pixel."""

    def extract(frames):
        gray = frames.astype(float).sum(axis=-1).reshape(len(frames), -1)
        index = gray.argmax(axis=1)
        width = frames.shape[2]
        return np.stack([index % width, index // width], axis=-1)[:, None, :].astype(float)

    return extract


def test_registry_name_module_and_unknown():
    register_keypoint_extractor("fake-test", make_fake_keypoints)
    frames = np.zeros((2, 4, 5, 3), np.uint8)
    frames[1, 3, 2] = 255
    np.testing.assert_array_equal(load_keypoint_extractor("fake-test")(frames)[1], [[2, 3]])
    with pytest.raises(MRAAError, match="module path.*allowed explicitly"):
        load_keypoint_extractor("tests.test_evaluate:make_fake_keypoints")
    extractor = load_keypoint_extractor("tests.test_evaluate:make_fake_keypoints", allow_custom=True)
    assert extractor(frames).shape == (2, 1, 2)
    assert extractor.name == "tests.test_evaluate:make_fake_keypoints"
    with pytest.raises(MRAAError, match="unknown keypoints extractor 'nope'.*dlib-face"):
        load_keypoint_extractor("nope")
    with pytest.raises(MRAAError, match="has no attribute"):
        load_identity_extractor("tests.test_evaluate:missing_factory", allow_custom=True)
    with pytest.raises(MRAAError, match="no arguments"):  # os:system takes a command: refused unrun
        load_identity_extractor("os:system", allow_custom=True)


def test_missing_dlib_names_the_extra(monkeypatch):
    from mraa.evaluation import dlib_face

    dlib_face.shared_analyzer.cache_clear()
    monkeypatch.setitem(sys.modules, "dlib", None)  # import dlib -> ImportError
    try:
        with pytest.raises(MRAAError, match=r"'metrics' extra.*dlib-bin"):
            load_keypoint_extractor("dlib-face")
    finally:
        dlib_face.shared_analyzer.cache_clear()


# ----------------------------------------------------------------------------- CLI
def test_cli_writes_videos_and_metrics(setup, tmp_path, capsys):
    out = tmp_path / "recon"
    argv = ["reconstruct", "--checkpoint", str(setup["root"] / "ck.pth"), "--data", str(setup["data"]),
            "--out", str(out), "--quiet", "--metrics", "l1,akd,mkr",
            "--keypoints", "tests.test_evaluate:make_fake_keypoints", "--allow-custom-extractor",
            "--num-videos", "1", "--batch-size", "3"]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "L1 " in text and "over 1 video (5 frames" in text and "AKD" in text and "AED" not in text
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["num_videos"] == 1 and saved["keypoints"] == "tests.test_evaluate:make_fake_keypoints"
    assert saved["mkr"] == 0.0 and saved["akd"] is not None and saved["videos"][0]["output"] == "a.mp4"
    assert read_video(out / "a.mp4").shape == (5, 64, 64 * 2 + 2, 3)  # driving | reconstruction, 2-pixel gap


def test_cli_no_bg_without_output(setup, tmp_path, capsys):
    argv = ["reconstruct", "--checkpoint", str(setup["root"] / "ck.pth"), "--data", str(setup["data"]), "--no-bg",
            "--quiet", "--num-videos", "1", "--format", "gif", "--layout", "prediction"]  # fmt: skip
    assert main(argv) == 0
    assert "no-motion baseline" in capsys.readouterr().out


def test_cli_says_when_the_model_is_worse_than_no_motion(setup, animator, monkeypatch, capsys):
    argv = ["reconstruct", "--checkpoint", str(setup["root"] / "ck.pth"), "--data", str(setup["data"]),
            "--quiet", "--num-videos", "1"]  # fmt: skip
    monkeypatch.setattr("mraa.cli.reconstruct.load_animator", lambda *args, **kwargs: animator)
    _perfect(animator, monkeypatch, scale=0.0)  # black frames: far worse than holding the first frame
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "note: L1 " in out and "is not below the no-motion baseline" in out
    _perfect(animator, monkeypatch)
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "L1 0.0000" in out and "note:" not in out


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--metrics", "l1,fid"], "unknown metric(s) fid"),
        (["--num-videos", "0"], "--num-videos must be at least 1"),
        (["--metrics", "akd", "--keypoints", "nope"], "unknown keypoints extractor 'nope'"),
        (["--metrics", "akd", "--keypoints", "synthetic"], "work with mraa evaluate"),
        (["--metrics", "akd"], "--metrics akd needs --keypoints"),
        (["--metrics", "aed"], "--metrics aed needs --identity"),
        (["--metrics", "akd", "--keypoints", "os:system"], "--allow-custom-extractor"),
        (["--batch-size", "0"], "--batch-size must be at least 1"),
        (["--format", "png", "--fps", "0"], "--fps must be positive"),
    ],
)
def test_cli_argument_errors(setup, extra, message, capsys):
    argv = [
        "reconstruct",
        "--checkpoint",
        str(setup["root"] / "ck.pth"),
        "--data",
        str(setup["data"]),
        *extra,
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1


def test_cli_data_errors(setup, tmp_path, capsys):
    checkpoint = str(setup["root"] / "ck.pth")
    assert main(["reconstruct", "--checkpoint", checkpoint, "--data", str(tmp_path / "missing")]) == 2
    assert "dataset folder not found" in capsys.readouterr().err
    (tmp_path / "only_train" / "train").mkdir(parents=True)
    assert main(["reconstruct", "--checkpoint", checkpoint, "--data", str(tmp_path / "only_train")]) == 2
    assert "has no test/ folder" in capsys.readouterr().err


# ----------------------------------------------------------------------------- dlib face extractors
@pytest.fixture(scope="module")
def dlib_face():
    pytest.importorskip(
        "dlib", reason="the 'metrics' extra (dlib-bin, face_recognition_models) is not installed"
    )
    from mraa.evaluation import dlib_face as module

    try:
        module.models_dir()
    except MRAAError as exc:
        pytest.skip(str(exc))
    return load_keypoint_extractor("dlib-face"), load_identity_extractor("dlib-face")


def test_dlib_face_on_a_real_photo(dlib_face):
    """The astronaut's face (a 44-pixel box around (110, 62) in the 256x256 photo): 68 landmarks on it, shifted
    landmarks when the photo is shifted, the same identity when mirrored, nothing on a blank frame."""
    keypoints, identity = dlib_face
    photo = read_image(ASTRONAUT)
    shifted = np.roll(photo, (4, 6), axis=(0, 1))  # 6 px right, 4 px down
    blank = np.full_like(photo, 128)
    frames = np.stack([photo, shifted, blank, photo[:, ::-1]])
    points = keypoints(frames)  # (4, 68, 2)
    assert points.shape == (4, 68, 2)
    assert np.isfinite(points[[0, 1, 3]]).all() and np.isnan(points[2]).all()
    assert (points[0, :, 0] > 75).all() and (points[0, :, 0] < 145).all()
    assert (points[0, :, 1] > 30).all() and (points[0, :, 1] < 100).all()
    assert average_keypoint_distance(points[:1], points[1:2]) == pytest.approx(np.hypot(6, 4), abs=1.5)
    assert missing_keypoint_rate(points[:1], points[2:3]) == 1.0
    embeddings = identity(frames)  # (4, 128): detection is cached from the keypoint call
    assert embeddings.shape == (4, 128) and np.isnan(embeddings[2]).all()
    assert 0 < average_euclidean_distance(embeddings[:1], embeddings[3:]) < 0.6  # same person, mirrored
