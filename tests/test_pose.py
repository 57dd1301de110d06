"""Offline body landmarks (mraa.pose): BlazePose model files run with LiteRT, on a real photograph."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from mraa.data.video_io import read_image
from mraa.errors import MRAAError
from mraa.pose import LANDMARK_NAMES, NUM_LANDMARKS, BodyLandmarks, detector_anchors, pose_available

from .conftest import ROOT

ASTRONAUT = ROOT / "tests" / "data" / "prepare" / "astronaut.jpg"  # public domain (NASA), 256x256, upper body
INDEX = {name: i for i, name in enumerate(LANDMARK_NAMES)}


@pytest.fixture(scope="module")
def detector():
    if not pose_available():
        pytest.skip("the 'pose' extra (ai-edge-litert) is not installed")
    from mraa.pose import PoseDetector

    return PoseDetector()


def test_anchor_layout():
    """28x28 and 14x14 maps with 2 anchors a cell, then 7x7 with 6: 2254 centres inside the unit square."""
    anchors = detector_anchors()
    assert anchors.shape == (2254, 2)
    assert np.allclose(anchors[0], [0.5 / 28, 0.5 / 28]) and np.allclose(anchors[2], [1.5 / 28, 0.5 / 28])
    assert np.allclose(anchors[1568], [0.5 / 14, 0.5 / 14]) and np.allclose(anchors[-1], [6.5 / 7, 6.5 / 7])


def test_landmarks_on_a_real_photo(detector):
    """The astronaut: nose on her face (dlib's face box is centred near (110, 62)), eyes above the nose,
    shoulders below and on the correct sides, all visible; a shifted photo moves every upper-body landmark by
    the shift; a blank frame has no person."""
    photo = read_image(ASTRONAUT)
    found = detector(photo)
    assert isinstance(found, BodyLandmarks)
    assert found.points.shape == (NUM_LANDMARKS, 2) and found.points.dtype == np.float32
    assert found.visibility.shape == (NUM_LANDMARKS,) and found.visibility.dtype == np.float32
    assert ((found.visibility >= 0) & (found.visibility <= 1)).all()
    nose, left_eye, right_eye = (found.points[INDEX[n]] for n in ("nose", "left_eye", "right_eye"))
    left_shoulder, right_shoulder = (
        found.points[INDEX["left_shoulder"]],
        found.points[INDEX["right_shoulder"]],
    )
    assert np.hypot(*(nose - [110, 62])) < 12
    assert left_eye[1] < nose[1] and right_eye[1] < nose[1] and right_eye[0] < nose[0] < left_eye[0]
    assert left_shoulder[1] > nose[1] + 30 and right_shoulder[1] > nose[1] + 30
    assert right_shoulder[0] < nose[0] < left_shoulder[0]  # the person's left is on the image's right
    upper = [INDEX[n] for n in LANDMARK_NAMES[:13]]  # face and shoulders
    assert (found.visibility[upper] > 0.9).all()

    padded = np.pad(photo, ((8, 8), (8, 8), (0, 0)), mode="edge")
    shifted = padded[:-16, :-16]  # content moved 8 px right and 8 px down, same size
    moved = detector(np.ascontiguousarray(shifted))
    assert moved is not None
    offsets = moved.points[upper] - found.points[upper]
    assert np.allclose(np.median(offsets, axis=0), [8, 8], atol=1.5)
    assert detector(np.full((120, 90, 3), 128, np.uint8)) is None


def test_bad_input_and_missing_extra(detector, monkeypatch):
    with pytest.raises(MRAAError, match="uint8 RGB"):
        detector(np.zeros((32, 32), np.uint8))
    from mraa import pose

    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)
    monkeypatch.setattr(pose, "pose_available", lambda: False)
    with pytest.raises(MRAAError, match=r"'pose' extra.*ai-edge-litert"):
        pose.PoseDetector()


@pytest.mark.skipif(not pose_available(), reason="needs the pose extra")
def test_making_a_detector_prints_nothing():
    """LiteRT's C++ "Created TensorFlow Lite XNNPACK delegate" line must not reach the user's terminal."""
    import subprocess

    code = "from mraa.pose import PoseDetector; PoseDetector()"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stderr == "" and result.stdout == ""
