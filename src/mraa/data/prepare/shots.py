"""Shot (camera cut) detection with PySceneDetect's content detector, fed frame by frame.

Frames are pushed one at a time so the same decoding pass can also run the person detector; the
detector sees a copy shrunk to about 256 px wide, as PySceneDetect's own pipeline does.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, NamedTuple

import numpy as np

from mraa.data.prepare.detectors import DETECT_EXTRA_HINT, require_cv2
from mraa.errors import MRAAError

log = logging.getLogger(__name__)

SCENE_WIDTH = 256  # width the content detector works at


class Shot(NamedTuple):
    """Frames ``[start, end)`` filmed without a cut."""

    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start


def require_scenedetect() -> Any:
    """Import PySceneDetect or raise an MRAAError saying how to install it."""
    require_cv2()
    try:
        import scenedetect
    except ImportError:
        raise MRAAError(
            "shot detection needs PySceneDetect: "
            f"{DETECT_EXTRA_HINT} (or pip install --no-deps scenedetect click platformdirs)"
        ) from None
    return scenedetect


class ShotDetector:
    """Incremental cut detector: ``push`` every frame in order, then ``shots(num_frames)``.

    Args:
        threshold: PySceneDetect ``ContentDetector`` threshold (weighted HSV + edge change, 0-255);
            0 or less turns cut detection off (the whole video is one shot).
        min_shot_frames: a cut closer than this to the previous one is merged away (flash filter).
        fps: frame rate (PySceneDetect's timecodes need one; it does not change the result).
    """

    def __init__(self, threshold: float = 27.0, min_shot_frames: int = 15, fps: float = 25.0) -> None:
        self.enabled = threshold > 0
        self.fps = float(fps) if fps and fps > 0 else 25.0
        self.cuts: list[int] = []
        self.num_frames = 0
        self._scale: float | None = None
        if self.enabled:
            scenedetect = require_scenedetect()
            self._timecode = scenedetect.FrameTimecode
            self._detector = scenedetect.ContentDetector(
                threshold=threshold, min_scene_len=int(min_shot_frames)
            )

    def push(self, frame: np.ndarray) -> None:
        """Feed the next RGB frame (uint8 HxWx3)."""
        index = self.num_frames
        self.num_frames += 1
        if not self.enabled:
            return
        cv2 = require_cv2()
        height, width = frame.shape[:2]
        if self._scale is None:
            self._scale = min(1.0, SCENE_WIDTH / width)
        small = frame
        if self._scale < 1.0:
            size = (max(1, round(width * self._scale)), max(1, round(height * self._scale)))
            small = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        bgr = np.ascontiguousarray(small[:, :, ::-1])
        found = self._detector.process_frame(self._timecode(index, self.fps), bgr)
        self.cuts.extend(int(tc.frame_num) for tc in found)

    def shots(self) -> list[Shot]:
        """Shots covering every frame pushed so far (call once, after the last frame)."""
        if self.enabled and self.num_frames:
            found = self._detector.post_process(self._timecode(self.num_frames - 1, self.fps))
            self.cuts.extend(int(tc.frame_num) for tc in found)
        bounds = sorted({c for c in self.cuts if 0 < c < self.num_frames})
        edges = [0, *bounds, self.num_frames]
        return [Shot(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def detect_shots(
    frames: Iterable[np.ndarray], threshold: float = 27.0, min_shot_frames: int = 15, fps: float = 25.0
) -> list[Shot]:
    """Split a sequence of RGB frames into shots at camera cuts.

    Args:
        frames: uint8 HxWx3 frames in order (a list or a streaming iterator).
        threshold: content-change threshold; 0 or less means no cut detection.
        min_shot_frames: shortest shot PySceneDetect may produce.
        fps: frame rate of the video.

    Returns:
        Consecutive ``Shot(start, end)`` ranges covering all frames.
    """
    detector = ShotDetector(threshold, min_shot_frames, fps)
    for frame in frames:
        detector.push(frame)
    return detector.shots()
