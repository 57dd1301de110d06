"""`mraa evaluate`: the benchmark's metric forms, video pairing and errors, and the done-when checks on real
photos (face and body keypoints, face identity) and on synthetic figures (exact keypoints)."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

from mraa.cli import main
from mraa.data.synthetic import SynthConfig, write_dataset
from mraa.data.video_io import read_image, read_video, write_frame_folder, write_video
from mraa.evaluation.metrics import aed_squared_terms, akd_frame_terms, mkr_frame_terms

from .conftest import ROOT

NAN = np.nan
ASTRONAUT = ROOT / "tests" / "data" / "prepare" / "astronaut.jpg"
HOPPER = ROOT / "tests" / "data" / "evaluate" / "grace_hopper.jpg"


def pan_clip(photo: np.ndarray, frames: int = 2, step: int = 3, size: int = 224) -> np.ndarray:
    """A short clip made from one photo: a square window panning diagonally, (T, size, size, 3)."""
    return np.stack([photo[t * step : t * step + size, t * step : t * step + size] for t in range(frames)])


def shifted(clip: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """The clip's content moved dx right and dy down (edges repeated), same size."""
    padded = np.pad(clip, ((0, 0), (dy, 0), (dx, 0), (0, 0)), mode="edge")
    return padded[:, : clip.shape[1], : clip.shape[2]]


def evaluate(capsys, generated, reference, *extra) -> dict:
    code = main(["evaluate", "--generated", str(generated), "--reference", str(reference), "--quiet", *extra])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def evaluate_error(capsys, generated, reference, *extra) -> str:
    code = main(["evaluate", "--generated", str(generated), "--reference", str(reference), "--quiet", *extra])
    assert code == 2
    return capsys.readouterr().err


# ----------------------------------------------------------------------------- the benchmark's forms
def test_benchmark_forms_by_hand():
    """Per frame, then over frames: AKD the mean |dx|, |dy| over keypoints in both; MKR the share missing;
    AED the squared distance."""
    reference = np.array([[[0, 0], [3, 4]], [[1, 1], [NAN, NAN]], [[NAN, NAN], [NAN, NAN]]])  # (3, 2, 2)
    generated = np.array([[[0, 0], [0, 0]], [[NAN, NAN], [5, 5]], [[2, 2], [2, 2]]])
    # frame 0: |d| = 0, 0, 3, 4 -> 1.75; frame 1: no common keypoint; frame 2: no reference keypoint
    assert akd_frame_terms(reference, generated) == (1.75, 1)
    assert mkr_frame_terms(reference, generated) == (1.0, 2)  # frame 0: 0/2 missing, frame 1: 1/1
    embeddings = np.array([[0.0, 0.0], [1.0, 1.0], [NAN, NAN]])
    assert aed_squared_terms(embeddings, np.array([[3.0, 4.0], [1.0, 1.0], [0.0, 0.0]])) == (25.0, 2)


# ----------------------------------------------------------------------------- pairing and errors
@pytest.fixture()
def clips(tmp_path):
    """Two folders of videos (a: a 3-frame mp4, b: a 2-frame frame folder) and a lossless copy folder."""
    ramp = np.linspace(0, 255, 32)
    image = np.stack(np.broadcast_arrays(ramp[None, :], ramp[:, None], 128 + 0 * ramp[None, :]), -1)
    a = np.stack([np.roll(image, 2 * t, axis=1) for t in range(3)]).astype(np.uint8)  # smooth: mp4 keeps it
    b = 255 - a[:2]
    for folder in ("reference", "generated"):
        (tmp_path / folder).mkdir()
        write_frame_folder(tmp_path / folder / "a", a)
        write_frame_folder(tmp_path / folder / "b", b)
    return tmp_path


def test_l1_over_folders_matched_by_name_and_rows(clips, capsys):
    generated = clips / "generated"
    write_video(clips / "a.mp4", read_video(generated / "a"))  # an mp4 matches the frame folder "a"
    shutil.rmtree(generated / "a")
    (clips / "a.mp4").rename(generated / "a.mp4")
    (generated / "notes.txt").write_text("unrelated")
    out = clips / "rows.csv"
    summary = evaluate(capsys, generated, clips / "reference", "--metrics", "l1", "--out", str(out))
    assert summary["num_videos"] == 2 and summary["num_frames"] == 5
    assert 0 < summary["l1"] < 0.03  # a: mp4 compression; b: exact
    lines = out.read_text().splitlines()
    assert lines[0] == "name,num_frames,l1" and lines[1].startswith("a,3,") and lines[2] == "b,2,0.0"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("drop_frame", "frame counts differ: generated .* has 2 frames, reference .* has 3"),
        ("resize", "frame sizes differ: generated 16x16, reference 32x32"),
        ("rename", "no generated video for a; no reference video for c"),
    ],
)
def test_mismatches_are_clear_errors(clips, capsys, change, message):
    generated = clips / "generated"
    frames = read_video(generated / "a")
    shutil.rmtree(generated / "a")
    if change == "drop_frame":
        write_frame_folder(generated / "a", frames[:2])
    elif change == "resize":
        write_frame_folder(generated / "a", frames[:, :16, :16])
    else:
        write_frame_folder(generated / "c", frames)
    assert re.search(message, evaluate_error(capsys, generated, clips / "reference", "--metrics", "l1"))


def test_folder_pairing_ignores_other_files_but_not_pictures(clips, capsys):
    """As docs/evaluation.md says: a .jpg, .json and dotfiles beside the videos are ignored; a .png (a strip)
    or a subfolder (a frame folder) is a video and needs its partner."""
    from PIL import Image

    generated = clips / "generated"
    Image.new("RGB", (8, 8)).save(generated / "photo.jpg")
    (generated / "rows.json").write_text("{}")
    (generated / ".hidden").mkdir()
    assert evaluate(capsys, generated, clips / "reference", "--metrics", "l1")["num_videos"] == 2
    Image.new("RGB", (8, 8)).save(generated / "labels.png")
    (generated / "run-foo").mkdir()
    err = evaluate_error(capsys, generated, clips / "reference", "--metrics", "l1")
    assert "no reference video for labels, run-foo" in err


def test_bad_arguments(clips, capsys):
    reference = clips / "reference"
    assert "a is one video, the other a folder of videos" in evaluate_error(
        capsys, reference / "a", reference
    )
    assert "--out must end in .csv or .jsonl" in evaluate_error(
        capsys, reference, reference, "--metrics", "l1", "--out", str(clips / "rows.txt")
    )
    assert "unknown metric(s) fid" in evaluate_error(capsys, reference, reference, "--metrics", "l1,fid")
    assert "--reference not found" in evaluate_error(capsys, reference, clips / "nope")
    assert "no metadata.json" in evaluate_error(
        capsys, reference, reference, "--metrics", "akd", "--keypoints", "synthetic"
    )
    assert not (clips / "rows.txt").exists()


def test_missing_pose_extra_names_it(clips, capsys, monkeypatch):
    from mraa import pose

    monkeypatch.setattr(pose, "pose_available", lambda: False)
    err = evaluate_error(
        capsys, clips / "generated", clips / "reference", "--metrics", "akd", "--keypoints", "body"
    )
    assert "'pose' extra" in err and "ai-edge-litert" in err


# ----------------------------------------------------------------------------- synthetic: exact keypoints
@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "data"
    cfg = SynthConfig(size=64, num_frames=4, figure_types=("humanoid", "quadruped"))
    write_dataset(root, num_train=1, num_test=2, seed=3, cfg=cfg, fmt="png", progress=False)
    moved = root.parent / "moved"
    moved.mkdir()
    for video in sorted((root / "test").iterdir()):
        write_frame_folder(moved / video.name, shifted(read_video(video), 6, 0))
    return root, moved


def test_synthetic_keypoints_are_exact(synthetic, capsys):
    """Against itself everything is 0; a copy moved 6 px right gives AKD_euclidean 6 (benchmark form 3, as
    |dy| = 0 is averaged in), with no part lost."""
    root, moved = synthetic
    flags = ("--metrics", "l1,akd,mkr", "--keypoints", "synthetic")
    same = evaluate(capsys, root / "test", root / "test", *flags)
    assert same["l1"] == same["akd"] == same["akd_euclidean"] == same["mkr"] == 0.0
    assert same["counts"]["akd_euclidean"] > 8 * 2  # several parts in each of 8 frames
    shift = evaluate(capsys, moved, root / "test", *flags)
    assert shift["akd_euclidean"] == pytest.approx(6.0, abs=0.3)
    assert shift["akd"] == pytest.approx(3.0, abs=0.15) and shift["mkr"] == 0.0


def test_synthetic_mp4_dataset_against_itself_is_exactly_zero(tmp_path, capsys):
    """`mraa synth` writes mp4 by default: its lossy frames against themselves still give AKD 0 and MKR 0 (the
    parts are searched for with the reference file's pixels, not the lossless re-render's)."""
    root = tmp_path / "data"
    cfg = SynthConfig(size=64, num_frames=4, figure_types=("humanoid", "quadruped"))
    write_dataset(root, num_train=1, num_test=2, seed=3, cfg=cfg, fmt="mp4", progress=False)
    same = evaluate(capsys, root / "test", root / "test", "--metrics", "akd,mkr", "--keypoints", "synthetic")
    assert same["akd"] == same["akd_euclidean"] == same["mkr"] == 0.0 and same["counts"]["akd"] == 8


def test_synthetic_reference_must_be_the_dataset_video(synthetic, capsys, tmp_path):
    root, moved = synthetic
    err = evaluate_error(capsys, root / "test", moved, "--metrics", "akd", "--keypoints", "synthetic")
    assert "no metadata.json" in err
    copy = tmp_path / "data"
    shutil.copytree(root, copy)
    name = sorted(p.name for p in (root / "test").iterdir())[0]
    shutil.rmtree(copy / "test" / name)
    shutil.copytree(moved / name, copy / "test" / name)  # the reference is no longer the dataset's video
    err = evaluate_error(capsys, copy / "test", copy / "test", "--metrics", "akd", "--keypoints", "synthetic")
    assert f"reference {name} differs from the synthetic video of that name" in err


# ----------------------------------------------------------------------------- real photos
@pytest.fixture(scope="module")
def portraits(tmp_path_factory):
    """Clips from real photos, as generated/<name> against reference/<name>: the astronaut against herself
    (same), the astronaut moved 8 px right and down (moved), and Grace Hopper against the astronaut (other)."""
    root = tmp_path_factory.mktemp("portraits")
    astronaut = pan_clip(read_image(ASTRONAUT))
    generated = {"same": astronaut, "moved": shifted(astronaut, 8, 8), "other": pan_clip(read_image(HOPPER))}
    (root / "generated").mkdir()
    (root / "reference").mkdir()
    for name, frames in generated.items():
        write_frame_folder(root / "generated" / name, frames)
        write_frame_folder(root / "reference" / name, astronaut)
    return root


def per_video(capsys, root, *flags) -> dict:
    out = root / "rows.jsonl"
    summary = evaluate(capsys, root / "generated", root / "reference", "--out", str(out), *flags)
    rows = {row["name"]: row for row in map(json.loads, out.read_text().splitlines())}
    assert summary["num_videos"] == 3 and summary["num_frames"] == 3 * 2
    return rows


def test_face_done_when(portraits, capsys):
    """Self: all 0. Moved 8 px right and down: AKD about 8 (|dx| = |dy| = 8), MKR 0. Another person: a larger
    AED than the same person moved."""
    pytest.importorskip(
        "dlib", reason="the 'metrics' extra (dlib-bin, face_recognition_models) is not installed"
    )
    rows = per_video(capsys, portraits, "--keypoints", "face")
    same, moved, other = rows["same"], rows["moved"], rows["other"]
    assert same["l1"] == same["akd"] == same["mkr"] == same["aed"] == same["aed_euclidean"] == 0.0
    assert same["akd_count"] == 2 and same["aed_count"] == 2  # a face in both frames
    assert moved["akd"] == pytest.approx(8.0, abs=1.0) and moved["mkr"] == 0.0
    assert moved["akd_euclidean"] == pytest.approx(8.0 * 2**0.5, abs=1.5)
    assert other["aed"] > 5 * moved["aed"] and other["aed_euclidean"] > 0.6 > moved["aed_euclidean"]
    assert other["aed"] >= other["aed_euclidean"] ** 2  # mean of squares >= square of the mean


def test_body_done_when(portraits, capsys):
    pytest.importorskip("ai_edge_litert", reason="the 'pose' extra is not installed")
    rows = per_video(capsys, portraits, "--metrics", "akd,mkr", "--keypoints", "body")
    assert rows["same"]["akd"] == rows["same"]["mkr"] == 0.0 and rows["same"]["akd_euclidean_count"] >= 2 * 8
    assert rows["moved"]["akd"] == pytest.approx(8.0, abs=2.0) and rows["moved"]["mkr"] <= 0.1
    assert "aed" not in rows["same"]


def test_png_strips_match_frame_folders(clips, capsys):
    """`mraa reconstruct --format png --layout prediction` writes one strip per video: a folder of strips is a
    folder of videos, matched with the reference's frame folders by name."""
    from mraa.data.video_io import write_image

    strips = clips / "strips"
    strips.mkdir()
    for name in ("a", "b"):
        write_image(
            strips / f"{name}.png", np.concatenate(list(read_video(clips / "reference" / name)), axis=1)
        )
    summary = evaluate(capsys, strips, clips / "reference", "--metrics", "l1")
    assert summary["num_videos"] == 2 and summary["num_frames"] == 5 and summary["l1"] == 0.0


def test_synthetic_keypoints_sub_pixel():
    """A figure moved 2.5 px right (the mean of 2- and 3-pixel shifts) is found 2.5 px right, within 0.2 px."""
    from mraa.data.synthetic import render_video
    from mraa.evaluation.synthetic_keypoints import SyntheticTruth

    frames, parts = render_video(0, 1_000_001, SynthConfig(size=64, num_frames=2), return_parts=True)
    truth = SyntheticTruth(frames, parts.labels, parts.centers)
    moved = (np.roll(frames, 2, axis=2).astype(float) + np.roll(frames, 3, axis=2)) / 2
    offsets = truth.generated_keypoints(moved.round().astype(np.uint8)) - truth.reference_keypoints()
    assert np.isfinite(offsets).any()
    assert np.nanmedian(offsets[..., 0]) == pytest.approx(2.5, abs=0.2)
    assert np.nanmedian(np.abs(offsets[..., 1])) < 0.2
