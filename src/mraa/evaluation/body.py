"""Offline body keypoints in the 18-point layout of the body benchmark (the ``body`` extractor).

The benchmark detected bodies with an OpenPose-style network (COCO, 18 keypoints, CMU order). mraa uses
BlazePose (:mod:`mraa.pose`, 33 landmarks) and maps its landmarks to those 18 points. 17 have a BlazePose
landmark of the same name; the neck has none and is the midpoint of the two shoulders (detected when both
are). A landmark counts as detected when its visibility is at least :data:`MIN_VISIBILITY` and it lies
inside the frame: the benchmark's detector reported no keypoint that it could not see.
"""

from __future__ import annotations

import numpy as np

from mraa.pose import LANDMARK_NAMES, PoseDetector

# the benchmark's 18 keypoints (OpenPose COCO order) -> the BlazePose landmark; None = derived
COCO18 = (
    ("nose", "nose"),
    ("neck", None),  # no BlazePose landmark: midpoint of left_shoulder and right_shoulder
    ("right_shoulder", "right_shoulder"),
    ("right_elbow", "right_elbow"),
    ("right_wrist", "right_wrist"),
    ("left_shoulder", "left_shoulder"),
    ("left_elbow", "left_elbow"),
    ("left_wrist", "left_wrist"),
    ("right_hip", "right_hip"),
    ("right_knee", "right_knee"),
    ("right_ankle", "right_ankle"),
    ("left_hip", "left_hip"),
    ("left_knee", "left_knee"),
    ("left_ankle", "left_ankle"),
    ("right_eye", "right_eye"),
    ("left_eye", "left_eye"),
    ("right_ear", "right_ear"),
    ("left_ear", "left_ear"),
)
COCO18_NAMES = tuple(name for name, _ in COCO18)
MIN_VISIBILITY = 0.5
_INDEX = {name: i for i, name in enumerate(LANDMARK_NAMES)}


def to_coco18(points: np.ndarray, visibility: np.ndarray, height: int, width: int) -> np.ndarray:
    """BlazePose landmarks (33, 2) and visibilities (33,) -> (18, 2) benchmark keypoints, NaN where missing."""
    seen = (visibility >= MIN_VISIBILITY) & (points >= 0).all(axis=1)
    seen &= (points[:, 0] < width) & (points[:, 1] < height)
    kept = np.where(seen[:, None], points.astype(np.float64), np.nan)  # (33, 2)
    out = np.full((len(COCO18), 2), np.nan)
    for i, (_, source) in enumerate(COCO18):
        if source is not None:
            out[i] = kept[_INDEX[source]]
    out[1] = (kept[_INDEX["left_shoulder"]] + kept[_INDEX["right_shoulder"]]) / 2  # NaN unless both seen
    return out


class BodyKeypoints:
    """``body`` keypoint extractor: 18 benchmark keypoints from BlazePose, (N, 18, 2) pixels, NaN missing."""

    name = "body"
    num_keypoints = len(COCO18)

    def __init__(self) -> None:
        self.detector = PoseDetector()  # MRAAError naming the extra when LiteRT is missing

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        frames = np.asarray(frames)
        out = np.full((len(frames), len(COCO18), 2), np.nan)
        for i, frame in enumerate(frames):
            found = self.detector(np.ascontiguousarray(frame))
            if found is not None:
                out[i] = to_coco18(found.points, found.visibility, *frame.shape[:2])
        return out
