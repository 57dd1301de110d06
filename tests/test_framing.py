"""Subject framing, crop plans, paste-back, best frame, `mraa crop`, `mraa info` and framed animation.

The real photo is the public-domain NASA astronaut portrait (tests/data/prepare/astronaut.jpg, from
scikit-image). Driving videos are made here by moving that photo or from our synthetic figures.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from mraa.cli import main
from mraa.data.prepare.detectors import Box, box_iou
from mraa.data.video_io import probe_video, read_image, read_video, write_image, write_video
from mraa.framing import (
    Compositor,
    best_frame,
    feather_mask,
    find_subject,
    frame_driving,
    frame_source,
    paste_back,
    plan_crops,
    region_mask,
    smooth_boxes,
    track_driving,
)

pytest.importorskip("cv2")
DATA = Path(__file__).parent / "data" / "prepare"
FACE = Box(86.0, 30.0, 140.0, 84.0)  # the astronaut's face as a person would draw it (approximately)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return read_image(DATA / "astronaut.jpg")


def place(image: np.ndarray, width: int, height: int, x: int, y: int, fill=(128, 128, 128)) -> np.ndarray:
    canvas = np.empty((height, width, 3), np.uint8)
    canvas[:] = fill
    canvas[y : y + image.shape[0], x : x + image.shape[1]] = image
    return canvas


def shifted(box: Box, dx: float, dy: float) -> Box:
    return Box(box.x0 + dx, box.y0 + dy, box.x1 + dx, box.y1 + dy)


# ----------------------------------------------------------------------------- detection
def test_face_found_on_the_real_photo(astronaut):
    subject = find_subject(astronaut, "face")
    assert subject is not None and subject.detector == "face"
    assert box_iou(subject.box, FACE) > 0.6
    framed = frame_source(astronaut, "face")
    box = framed.box
    assert box.width == box.height and box.x0 >= 0 and box.x1 <= 256 and box.y0 >= 0 and box.y1 <= 256
    assert box.x0 <= FACE.x0 and box.x1 >= FACE.x1 and box.y0 <= FACE.y0 and box.y1 >= FACE.y1
    assert framed.messages == []


@pytest.mark.parametrize("width,height,x,y", [(300, 480, 22, 150), (560, 300, 250, 30)])
def test_portrait_and_landscape_sources(astronaut, width, height, x, y):
    canvas = place(astronaut, width, height, x, y)
    reference = find_subject(astronaut, "face").box
    for framing in ("face", "upper_body"):
        framed = frame_source(canvas, framing)
        face = shifted(reference, x, y)
        if framing == "face":
            assert box_iou(framed.subject, face) > 0.8
        else:  # the face's box, or with body landmarks installed the person's, whose head holds the face
            assert framed.how in ("face", "pose") and box_iou(framed.head.clip(width, height), face) > 0.15
            assert (
                framed.head.x0 <= face.x0 + 5 and framed.head.x1 >= face.x1 - 5 and framed.head.y0 <= face.y0
            )
        box = framed.box
        assert box.width == box.height <= min(width, height)
        assert box.x0 >= 0 and box.x1 <= width and box.y0 >= 0 and box.y1 <= height
    # the upper-body square is larger than the face square and holds it
    face, upper = frame_source(canvas, "face").box, frame_source(canvas, "upper_body").box
    assert upper.width > 1.8 * face.width and upper.y0 <= face.y0 and upper.x0 <= face.x0


@pytest.mark.parametrize("framing", ["full_body", "upper_body"])
def test_synthetic_figure_at_known_offset_and_scale(framing):
    """HOG and the face cascade do not see our synthetic figures (no face, not a pedestrian); the
    plain-background silhouette finder does, and the body framings fall back to it."""
    from PIL import Image

    from mraa.data.synthetic import SynthConfig, render_video

    cfg = SynthConfig(
        size=96, num_frames=2, figure_types=("humanoid",), backgrounds=("flat",), camera_motion=0
    )
    video, parts = render_video(3, 0, cfg, return_parts=True)
    frame, labels = video[0], parts.labels[0]
    ys, xs = np.nonzero(labels)
    scale, (ox, oy) = 3, (310, 70)
    big = np.asarray(Image.fromarray(frame).resize((96 * scale, 96 * scale), Image.NEAREST))
    canvas = place(big, 720, 480, ox, oy, fill=frame[0, 0])
    truth = Box(
        ox + xs.min() * scale, oy + ys.min() * scale, ox + (xs.max() + 1) * scale, oy + (ys.max() + 1) * scale
    )
    subject = find_subject(canvas, framing)
    assert subject is not None and subject.detector == "foreground"
    assert box_iou(subject.box, truth) >= 0.8
    box = frame_source(canvas, framing).box
    assert box.width == box.height and box.y0 <= truth.y0 + 0.05 * truth.height
    if framing == "full_body":  # the whole figure inside, with the TaiChi margin
        assert box.x0 <= truth.x0 and box.x1 >= truth.x1 and box.y1 >= truth.y1


def test_no_subject_gives_a_centre_crop_and_one_message():
    noise = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    for framing in ("face", "upper_body", "full_body"):
        framed = frame_source(noise, framing)
        assert framed.how == "center" and framed.box == Box(40.0, 0.0, 280.0, 240.0)
        assert len(framed.messages) == 1 and "centre crop" in framed.messages[0]


def test_exif_rotated_photo_is_framed_upright(astronaut, tmp_path):
    """Needs video_io.read_image to apply the EXIF orientation (issue 17)."""
    from PIL import Image

    probe = tmp_path / "probe.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.new("RGB", (4, 2)).save(probe, exif=exif)
    if read_image(probe).shape[:2] != (4, 2):
        pytest.skip("video_io.read_image does not apply EXIF orientation yet (issue 17)")
    path = tmp_path / "rotated.jpg"
    Image.fromarray(np.rot90(astronaut, 1).copy()).save(path, exif=exif, quality=95)  # stored on its side
    upright = read_image(path)
    assert upright.shape == astronaut.shape
    framed = frame_source(upright, "face")
    assert box_iou(framed.subject, find_subject(astronaut, "face").box) > 0.7


# ----------------------------------------------------------------------------- tracks
def test_jittery_track_gives_a_smooth_box():
    rng = np.random.default_rng(0)
    t = np.arange(60, dtype=np.float64)
    cx, cy, side = 200 + 2.0 * t, 150 + 0.5 * t, 100 + 0.3 * t
    jitter = rng.uniform(-8, 8, (60, 3))
    boxes = [
        Box(x - s / 2, y - s / 2, x + s / 2, y + s / 2) if i % 7 else None  # every 7th frame missed
        for i, (x, y, s) in enumerate(zip(cx + jitter[:, 0], cy + jitter[:, 1], side + jitter[:, 2]))
    ]
    smooth = smooth_boxes(boxes, sigma=3.0)
    raw_centres = np.array([b.center[0] for b in boxes if b is not None])
    centres = np.array([b.center[0] for b in smooth])
    sizes = np.array([b.width for b in smooth])
    assert np.abs(np.diff(raw_centres, 2)).max() > 8
    assert np.abs(np.diff(centres, 2)).max() < 1.5 and np.abs(np.diff(sizes, 2)).max() < 1.5
    assert np.abs(centres[10:-10] - cx[10:-10]).max() < 4  # follows the true motion


def test_one_box_per_shot_and_leaving_warning(astronaut):
    frames = [place(astronaut, 400, 300, 40 + 2 * i, 20, fill=(30, 30, 30)) for i in range(12)]
    frames += [np.full((300, 400, 3), 220, np.uint8)] * 6  # a cut to an empty shot
    track = track_driving(frames, "face", every=2)
    assert track.cuts == [12]
    framing = frame_driving(track, "face")
    assert framing.shots == [(0, 12), (12, 18)]
    assert framing.how == ["track", "center"] and len(framing.messages) == 1
    first = framing.boxes[0]
    for i in range(0, 12, 2):  # the one box holds the face in every frame of the shot
        face = shifted(FACE, 40 + 2 * i, 20)
        assert first.x0 <= face.x0 and first.x1 >= face.x1 and first.y0 <= face.y0 and first.y1 >= face.y1
    # the subject walks out on the right: the face is lost for the last frames
    leaving = [place(astronaut, 800, 300, 150 + 30 * i, 20, fill=(30, 30, 30))[:, :400] for i in range(14)]
    messages = frame_driving(track_driving(leaving, "face", every=2), "face").messages
    assert any("leaves the frame" in m or "lost" in m for m in messages)


# ----------------------------------------------------------------------------- paste-back
def test_paste_back_changes_nothing_outside_the_mask():
    rng = np.random.default_rng(1)
    source = rng.integers(0, 255, (121, 97, 3), dtype=np.uint8)  # odd sizes
    crop = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    box = Box(20.0, 30.0, 80.0, 90.0)
    out = paste_back(source, crop, box)
    weight = np.zeros(source.shape[:2], np.float32)
    weight[30:90, 20:80] = feather_mask(60, 60)
    assert np.array_equal(out[weight == 0], source[weight == 0])
    assert (out[weight > 0.99] != source[weight > 0.99]).any()
    compositor = Compositor(source, box)
    frame = compositor(crop)
    assert frame.shape == (120, 96, 3)
    assert np.array_equal(frame[:30], source[:30, :96]) and np.array_equal(frame[:, :20], source[:120, :20])
    masked = paste_back(source, crop, box, mask=np.zeros((16, 16)))
    assert np.array_equal(masked, source)
    assert Compositor(source, box, output_size=(64, 48))(crop).shape == (48, 64, 3)
    # narrowed to the subject by region heatmaps: one region in the crop's top-left quarter
    yy, xx = np.mgrid[0:32, 0:32]
    heat = np.exp(-((yy - 6.0) ** 2 + (xx - 6.0) ** 2) / 8.0)[None]
    subject = region_mask(heat / heat.sum())
    assert subject[6, 6] == 1.0 and subject[28, 28] == 0.0
    narrowed = paste_back(source, crop, box, mask=subject)
    assert np.array_equal(narrowed[75:90, 65:80], source[75:90, 65:80])  # far from the region: the source
    assert (narrowed[38:46, 28:36] != source[38:46, 28:36]).any()


# ----------------------------------------------------------------------------- best frame
def test_best_frame_is_the_closest_pose():
    rng = np.random.default_rng(2)
    source = rng.uniform(-0.5, 0.5, (5, 2))
    driving = rng.uniform(-0.8, 0.8, (9, 5, 2))
    driving[6] = 0.5 * source + 0.2  # same pose, other scale and place
    assert best_frame(source, driving) == 6


# ----------------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def media(tmp_path_factory, astronaut):
    """A portrait photo (odd width), a talking-head-like driving clip made by moving the photo, with audio."""
    import imageio_ffmpeg

    root = tmp_path_factory.mktemp("framing")
    portrait = place(astronaut[:, 20:231], 211, 320, 0, 40, fill=(90, 90, 90))
    write_image(root / "portrait.png", portrait)
    frames = []
    for i in range(6):
        dx, dy = int(round(6 * np.sin(i / 2))), int(round(3 * np.cos(i / 3)))
        frames.append(place(astronaut, 320, 264, 40 + dx, 4 + dy, fill=(90, 90, 90)))
    write_video(root / "silent.mp4", frames, fps=10)
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(root / "silent.mp4"),
           "-f", "lavfi", "-i", "sine=frequency=440:duration=0.6", "-c:v", "copy", "-c:a", "aac", "-shortest",
           str(root / "talk.mp4")]  # fmt: skip
    subprocess.run(cmd, check=True)
    return root


def test_crop_command_prints_json(media, capsys):
    preview = media / "preview.png"
    argv = ["crop", "--source", str(media / "portrait.png"), "--driving", str(media / "talk.mp4"),
            "--crop", "face", "--crop-preview", str(preview)]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    data = json.loads(out[: out.rindex("}") + 1])
    assert data["crop"] == "face" and data["model_framing"] == "none"
    assert data["source"]["size"] == [211, 320] and data["source"]["how"] == "face"
    x0, y0, x1, y1 = data["source"]["box"]
    assert x1 - x0 == y1 - y0 and 20 <= y0 <= 46  # the whole head (hair from y 46) with a little room
    assert data["driving"]["num_frames"] == 6 and len(data["driving"]["shots"]) == 1
    assert data["driving"]["shots"][0]["how"] == "track"
    assert read_image(preview).shape[0] == 256


def test_info_on_the_shipped_model(capsys):
    from mraa.animate import default_checkpoint

    assert main(["info"]) == 0
    out = capsys.readouterr().out
    digest = hashlib.sha256(default_checkpoint().read_bytes()).hexdigest()
    assert f"sha256: {digest}" in out
    assert "regions: 10; background motion: affine" in out and "AVD network: trained" in out
    assert "synth64.yaml" in out


def test_info_counts_official_parameters():
    """The counts of a full-size vox256 model equal the official ones (docs/design numbers)."""
    import torch

    from mraa.config import load_config
    from mraa.model_info import config_shapes, count_parameters

    shapes = config_shapes(load_config(Path(__file__).parents[1] / "configs" / "vox256.yaml"))
    counts = {
        name: count_parameters({k: torch.empty(s, device="meta") for k, s in state.items()})
        for name, state in shapes.items()
    }
    assert counts == {
        "generator": 45_575_391,
        "region_predictor": 14_146_728,
        "bg_predictor": 6_282_438,
        "avd_network": 2_290_620,
    }


def test_plan_from_python(media):
    source = read_image(media / "portrait.png")
    plan = plan_crops(source, iter(read_video(media / "talk.mp4")), "upper_body", fps=10)
    assert plan.source.how in ("face", "pose") and plan.driving.how == ["track"]
    assert probe_video(media / "talk.mp4").num_frames == plan.driving.shots[-1][1]


# ----------------------------------------------------------------------------- framed animation
def _check_pasted(path: Path, media: Path) -> np.ndarray:
    frames = read_video(path)
    info = probe_video(path)
    assert frames.shape == (6, 320, 210, 3)  # the portrait's 211x320, trimmed to even dimensions
    assert info.fps == pytest.approx(10) and info.has_audio
    portrait = read_image(media / "portrait.png")[:, :210]
    far = np.abs(frames[:, :30].astype(int) - portrait[None, :30].astype(int))  # the canvas above the photo
    assert far.mean() < 2  # unchanged up to H.264 rounding
    return frames


def test_animate_face_crop_paste_back_cli(media, capsys):
    out, preview = media / "out.mp4", media / "boxes.png"
    argv = ["animate", "--source", str(media / "portrait.png"), "--driving", str(media / "talk.mp4"),
            "--crop", "face", "--paste-back", "--output", str(out), "--crop-preview", str(preview),
            "--quiet"]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "trained only on synthetic figures" in text and "--checkpoint vox256.pth" in text
    _check_pasted(out, media)
    assert read_image(preview).shape[0] == 256


def test_animate_face_crop_paste_back_python(media):
    from mraa.animate import Animator
    from mraa.pipeline import animate_file

    animator = Animator.from_checkpoint()
    result = animate_file(animator, media / "portrait.png", media / "talk.mp4", media / "py.mp4", crop="face",
                          paste_back=True, best_frame=True, mode="relative", progress=False)  # fmt: skip
    assert result.frames == 6
    _check_pasted(result.output, media)


def test_animate_dry_run_and_output_size(media, capsys):
    argv = ["animate", "--source", str(media / "portrait.png"), "--driving", str(media / "talk.mp4"),
            "--output", str(media / "dry.mp4"), "--crop", "upper-body", "--dry-run"]  # fmt: skip
    assert main(argv) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["crop"] == "upper_body" and data["source"]["how"] in ("face", "pose")
    assert not (media / "dry.mp4").exists()
    sized = media / "sized.mp4"
    argv = ["animate", "--source", str(media / "portrait.png"), "--driving", str(media / "talk.mp4"),
            "--output", str(sized), "--output-size", "96x72", "--best-frame", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    assert read_video(sized).shape == (6, 72, 96, 3)
    argv[-4:] = ["--output-size", "big", "--quiet"]
    assert main(argv) == 2
    assert "WIDTHxHEIGHT" in capsys.readouterr().err
