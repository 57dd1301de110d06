"""Framing on real photos with hand-labelled heads (tests/data/photos, public domain: see its README), the
box rules that never cut the head, seamless paste-back, the leaving warning, and photo defaults."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from mraa.data.prepare.detectors import Box
from mraa.data.video_io import read_image
from mraa.framing import (
    UPPER_RULE,
    crop_resize,
    draw_crop_preview,
    feather_mask,
    frame_driving,
    frame_source,
    framing_from_crop,
    needs_framing,
    paste_back,
    place_box,
    plan_crops,
    track_driving,
)
from mraa.framing.boxes import contains, full_body_box, head_rule_box

pytest.importorskip("cv2")
PHOTOS = Path(__file__).parent / "data" / "photos"
HEADS = {name: Box(*map(float, box)) for name, box in json.loads((PHOTOS / "heads.json").read_text()).items()}


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    return {name: read_image(PHOTOS / name) for name in HEADS}


# ----------------------------------------------------------------------------- every head stays whole
@pytest.mark.parametrize("crop", ["face", "upper_body", "full_body", "center"])
@pytest.mark.parametrize("name", sorted(HEADS))
def test_every_framing_keeps_the_labelled_head(photos, name, crop):
    image = photos[name]
    framed = frame_source(image, crop)
    box = framed.box
    assert box.width == box.height, (name, crop, box)
    assert contains(box, HEADS[name]), (
        f"{crop} crop {tuple(box)} cuts the head {tuple(HEADS[name])} of {name}"
    )
    if framed.fit != "padded":
        assert box.x0 >= 0 and box.y0 >= 0 and box.x1 <= image.shape[1] and box.y1 <= image.shape[0]
    assert framed.how != "center" or crop == "center", framed.messages  # a subject was found


@pytest.mark.parametrize("name", sorted(HEADS))
def test_without_body_landmarks_every_framing_keeps_the_head(photos, name, monkeypatch):
    """The fallback when the pose extra is missing or finds no one: face box + body proportions."""
    from mraa.framing import body

    monkeypatch.setattr(body, "_landmarks", lambda image: None)
    for crop in ("face", "upper_body", "full_body"):
        framed = frame_source(photos[name], crop)
        assert framed.how != "pose" and contains(framed.box, HEADS[name]), (crop, framed)


def test_crop_preview_shows_the_head_inside_the_source_box(photos):
    """The preview's red rectangle is drawn where the source box is, and the labelled head is inside it."""
    name = "astronaut_portrait.jpg"
    image = photos[name]
    plan = plan_crops(image, [image, image], "upper_body")
    preview = draw_crop_preview(plan, image, height=256)
    scale = 256 / image.shape[0]
    x0, y0, x1, y1 = (round(v * scale) for v in plan.source.box)
    red = (preview[..., 0] > 200) & (preview[..., 1] < 100) & (preview[..., 2] < 100)
    cy = (y0 + y1) // 2
    assert red[cy, max(0, x0 - 2) : x0 + 3].any() and red[cy, x1 - 4 : x1 + 1].any()  # its sides
    assert red[max(0, y0 - 2) : y0 + 3, (x0 + x1) // 2].any()  # its top
    head = HEADS[name]
    assert x0 <= head.x0 * scale and y0 <= head.y0 * scale and x1 >= head.x1 * scale
    # the head the crop keeps is outlined in white inside the red box
    hx0, hy0, hx1, hy1 = (round(v * scale) for v in plan.source.head)
    white = preview.min(axis=2) > 240
    assert white[(hy0 + hy1) // 2, max(0, hx0 - 1) : hx0 + 2].any() and x0 <= hx0 and hx1 <= x1


# ----------------------------------------------------------------------------- box rules
def test_the_issue_cases_keep_the_head():
    """The cases from the issue: a 720x1280 half-length portrait (head with hair y 120-465) in upper-body
    framing, and a 600x704 seated full-length portrait (head y 12-180) in full-body framing."""
    head = Box(220.0, 120.0, 500.0, 465.0)
    box, fit = place_box(head_rule_box(head, UPPER_RULE), head, 720, 1280)
    assert fit == "lower part given up" and box.width == box.height == 720
    assert contains(box, head) and box.y0 <= head.y0 - 0.15 * head.height  # headroom above the hair
    seated = Box(60.0, 12.0, 560.0, 704.0)
    head = Box(230.0, 12.0, 370.0, 180.0)
    box, fit = place_box(full_body_box(seated), head, 600, 704)
    assert contains(box, head) and box.y0 == 0 and box.height == 600 and fit == "lower part given up"


def test_padding_when_the_head_cannot_fit():
    """A head taller than the image is wide: the square reaches past the border (padded by reflection)."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (200, 80, 3), dtype=np.uint8)
    head = Box(5.0, 40.0, 75.0, 150.0)  # 110 px tall in an 80 px wide image
    box, fit = place_box(head_rule_box(head, UPPER_RULE), head, 80, 200)
    assert fit == "padded" and box.width == box.height >= 110 and contains(box, head)
    assert box.x0 < 0 and box.x1 > 80
    crop = crop_resize(image, box, (int(box.height), int(box.width)))
    left = int(-box.x0)
    inside = crop[int(head.y0 - box.y0), left : left + 80]
    assert np.array_equal(inside, image[int(head.y0), :80])  # the image itself, unscaled
    assert np.array_equal(crop[int(head.y0 - box.y0), left - 1], image[int(head.y0), 0])  # mirrored


def test_a_box_that_fits_is_not_moved():
    head = Box(100.0, 100.0, 140.0, 150.0)
    ideal = head_rule_box(head, UPPER_RULE)  # 180 px square from y 87.5
    box, fit = place_box(ideal, head, 1000, 1000)
    assert fit == "inside" and abs(box.y0 - ideal.y0) <= 1 and abs(box.width - ideal.width) <= 1


# ----------------------------------------------------------------------------- paste-back
def _seam_and_elsewhere(out: np.ndarray, edge: int, columns: slice) -> tuple[float, float]:
    """Mean absolute vertical step across rows edge-3..edge+3 (the box edge) vs over the rest of the box."""
    steps = np.abs(np.diff(out.astype(np.float32), axis=0))[:, columns].mean(axis=(1, 2))
    return float(steps[edge - 3 : edge + 3].max()), float(np.median(steps[20 : edge - 30]))


def test_paste_back_has_no_seam_across_the_subject():
    """A box whose bottom edge crosses the subject (a textured figure running off the box), the animated
    crop 40 grey levels brighter: the feathered edge step is no larger than the texture's own, while a
    hard-edged paste shows the seam."""
    rng = np.random.default_rng(0)
    source = np.full((300, 240, 3), 60, np.uint8)
    texture = rng.integers(0, 40, (300, 100, 3))
    source[:, 70:170] = (120 + texture).astype(np.uint8)  # the subject: a tall textured figure
    box = Box(20.0, 0.0, 220.0, 200.0)  # top on the image border, bottom edge inside, across the figure
    animated = np.clip(source[0:200, 20:220].astype(np.int16) + 40, 0, 255).astype(np.uint8)
    soft = paste_back(source, animated, box)
    hard = paste_back(source, animated, box, feather=0.004)
    seam, elsewhere = _seam_and_elsewhere(soft, 200, slice(80, 160))
    hard_seam, _ = _seam_and_elsewhere(hard, 200, slice(80, 160))
    assert hard_seam > 1.5 * elsewhere  # the test can see a seam
    assert seam <= 1.1 * elsewhere, (seam, elsewhere)
    # the top edge lies on the image border: not feathered, the animated crop reaches row 0
    assert np.array_equal(soft[0, 100], animated[0, 80])


def test_feather_only_on_inner_edges_and_padded_paste():
    mask = feather_mask(100, 100, 0.1, (False, True, False, True))
    assert mask[0, 50] == 1.0 and mask[50, 0] == 1.0 and mask[99, 50] < 0.05 and mask[50, 99] < 0.05
    rng = np.random.default_rng(2)
    source = rng.integers(0, 255, (120, 100, 3), dtype=np.uint8)
    crop = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    out = paste_back(source, crop, Box(-20.0, 30.0, 60.0, 110.0))  # reaches past the left border
    assert out.shape == source.shape
    assert np.array_equal(out[:, 60:], source[:, 60:]) and np.array_equal(out[:30], source[:30])
    assert (out[60:80, 0:10] != source[60:80, 0:10]).any()  # the crop reaches the border


# ----------------------------------------------------------------------------- leaving warning
def test_face_filling_driving_clip_gives_no_warning(photos):
    """A talking-head clip whose face fills the frame (as VoxCeleb's) does not leave it."""
    from PIL import Image

    portrait = photos["astronaut_portrait.jpg"]
    frames = []
    for i in range(8):
        dx, dy = round(4 * np.sin(i / 2)), round(3 * np.cos(i / 3))
        face = portrait[10 + dy : 230 + dy, 80 + dx : 300 + dx]  # the head and neck fill the frame
        frames.append(np.asarray(Image.fromarray(face).resize((256, 256), Image.BILINEAR)))
    for crop in ("face", "upper_body", "full_body"):
        track = track_driving(frames, crop, every=2)
        assert any(s is not None for s in track.subjects), crop
        assert frame_driving(track, crop).messages == [], crop


# ----------------------------------------------------------------------------- defaults for photos
def test_auto_does_not_squash_a_portrait(photos, tmp_path):
    assert framing_from_crop("auto", "none", (384, 512)) == "center"
    assert framing_from_crop("auto", "none", (512, 512)) == "none"
    assert framing_from_crop("auto", "face", (384, 512)) == "face"
    assert framing_from_crop("none", "none", (384, 512)) == "none"
    model = SimpleNamespace(config=None, image_size=(64, 64))  # a model without a framing
    square = photos["cameraman.jpg"]
    assert needs_framing(model, "auto", source=square) == (None, False)  # square: resized as it is
    wide = np.pad(square, ((0, 0), (256, 256), (0, 0)), constant_values=128)  # its centre square: the photo
    assert needs_framing(model, "auto", source=wide) == (None, True)
    # the portrait's centred square (y 64-448) would cut the hair (from y 12): a framed centre crop
    options, center = needs_framing(model, "auto", source=PHOTOS / "astronaut_portrait.jpg")
    assert options is not None and options.crop == "center" and not center
    framed = frame_source(photos["astronaut_portrait.jpg"], "center")
    assert contains(framed.box, HEADS["astronaut_portrait.jpg"]) and framed.box.y0 == 0


def test_shipped_model_defaults_on_a_portrait_photo(photos, tmp_path, capsys):
    """With the shipped model and the CLI defaults (--crop auto), a portrait photo is centre-cropped around its head (not
    squashed) and animated in relative mode; the shipped sample keeps avd."""
    from mraa.animate import DEFAULT_MODEL_DIR, Animator
    from mraa.cli import main
    from mraa.data.video_io import probe_video, write_video
    from mraa.framing import default_mode_for, prepare_framing

    portrait = photos["astronaut_portrait.jpg"]
    driving = tmp_path / "nod.mp4"
    write_video(driving, [np.roll(portrait, (0, 3 * i), (0, 1)) for i in range(4)], fps=10)
    animator = Animator.from_checkpoint()
    assert animator.shipped_model and animator.default_mode() == "avd"
    assert default_mode_for(animator, DEFAULT_MODEL_DIR / "source.png") == "avd"
    assert default_mode_for(animator, PHOTOS / "astronaut_portrait.jpg") == "relative"
    framed, center = prepare_framing(animator, PHOTOS / "astronaut_portrait.jpg", str(driving), "auto")
    assert framed is not None and framed.crop == "center"
    expected = crop_resize(portrait, frame_source(portrait, "center").box, (64, 64))
    assert np.array_equal(framed.source_crop, expected)  # the head-keeping square, not the squashed photo
    out = tmp_path / "out.mp4"
    argv = ["animate", "--source", str(PHOTOS / "astronaut_portrait.jpg"), "--driving", str(driving),
            "--output", str(out), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    assert "mode: relative (default for a photo)" in capsys.readouterr().out
    assert probe_video(out).num_frames == 4
