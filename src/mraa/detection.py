"""Offline person and face detectors shared by subject framing (:mod:`mraa.framing.detect`) and dataset
preparation (:mod:`mraa.data.prepare`): a small detector interface, the built-in OpenCV detectors and a
registry by name.

A detector is anything with ``detect(frame) -> list[Box]`` where ``frame`` is a uint8 HxWx3 RGB array
and boxes are ``(x0, y0, x1, y1)`` in pixels of that frame. Detectors are registered by name
(``haar-upperbody``, ``hog``) and built with :func:`build_detector`.

The built-in detectors use OpenCV (``pip install 'mraa[detect]'``) and the model files that ship
inside its wheel, so nothing is downloaded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from mraa.boxes import Box, box_iou
from mraa.errors import MRAAError

log = logging.getLogger(__name__)

DETECT_EXTRA_HINT = "pip install 'mraa[detect]'"


@runtime_checkable
class PersonDetector(Protocol):
    """Finds people in one RGB frame (uint8 HxWx3) and returns their boxes in that frame's pixels."""

    def detect(self, frame: np.ndarray) -> list[Box]: ...


def require_cv2() -> Any:
    """Import OpenCV or raise an MRAAError naming the extra that provides it."""
    try:
        import cv2
    except ImportError:
        raise MRAAError(f"dataset preparation needs OpenCV: {DETECT_EXTRA_HINT}") from None
    if not hasattr(cv2, "CascadeClassifier") or not hasattr(cv2, "HOGDescriptor"):
        raise MRAAError(
            f"this OpenCV ({cv2.__version__}) has no cascade/HOG detectors; "
            f"install the pinned one: {DETECT_EXTRA_HINT}"
        )
    return cv2


def _downscale(frame: np.ndarray, max_height: int) -> tuple[np.ndarray, float]:
    """Shrink a frame to at most ``max_height`` rows; returns the image and the scale applied."""
    cv2 = require_cv2()
    height, width = frame.shape[:2]
    if max_height <= 0 or height <= max_height:
        return frame, 1.0
    scale = max_height / height
    size = (max(1, round(width * scale)), max_height)
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA), scale


class HaarUpperBodyDetector:
    """Upper-body boxes extrapolated from OpenCV's Haar face cascades (frontal, then profile).

    Suited to presenters facing the camera (TED-style videos). Each face box of size ``fw`` x ``fh``
    becomes an upper-body box ``body_width`` face-widths wide, starting ``head_margin`` face-heights
    above the face and ``body_height`` face-heights tall, clipped to the frame. It misses people seen
    from behind, very small faces and strong head turns beyond profile.

    Args:
        min_person_height: smallest body box worth finding, in frame pixels (sets the smallest face).
        max_height: frames taller than this are shrunk before detection (speed), but never so much
            that the smallest wanted face falls below about 30 px.
        use_profile: also try the profile cascade (both directions) when no frontal face is found.
    """

    def __init__(
        self,
        min_person_height: float = 0,
        max_height: int = 360,
        use_profile: bool = True,
        body_width: float = 3.2,
        body_height: float = 4.5,
        head_margin: float = 0.5,
        min_neighbors: int = 5,
    ) -> None:
        cv2 = require_cv2()
        folder = Path(cv2.data.haarcascades)
        self.frontal = cv2.CascadeClassifier(str(folder / "haarcascade_frontalface_default.xml"))
        self.profile = (
            cv2.CascadeClassifier(str(folder / "haarcascade_profileface.xml")) if use_profile else None
        )
        if self.frontal.empty() or (self.profile is not None and self.profile.empty()):
            raise MRAAError(f"OpenCV's Haar cascade files are missing from {folder}; {DETECT_EXTRA_HINT}")
        self.min_person_height = float(min_person_height)
        self.max_height = int(max_height)
        self.body_width = float(body_width)
        self.body_height = float(body_height)
        self.head_margin = float(head_margin)
        self.min_neighbors = int(min_neighbors)

    def detect_faces(self, frame: np.ndarray) -> list[Box]:
        """Face boxes in frame pixels."""
        cv2 = require_cv2()
        # a face smaller than this would give a body box below min_person_height (20% slack for jitter)
        min_face = 0.8 * self.min_person_height / self.body_height
        # shrink for speed, but keep the smallest wanted face about 30 px (Haar's window is 24 px)
        target = (
            max(self.max_height, round(frame.shape[0] * 30.0 / min_face)) if min_face > 0 else self.max_height
        )
        small, scale = _downscale(frame, target)
        gray = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY))
        min_size = max(20, int(min_face * scale))
        if min_size >= min(gray.shape):
            return []
        params = {"scaleFactor": 1.1, "minNeighbors": self.min_neighbors, "minSize": (min_size, min_size)}
        found = [tuple(r) for r in self.frontal.detectMultiScale(gray, **params)]
        if not found and self.profile is not None:
            found = [tuple(r) for r in self.profile.detectMultiScale(gray, **params)]
            width = gray.shape[1]
            for x, y, w, h in self.profile.detectMultiScale(np.ascontiguousarray(gray[:, ::-1]), **params):
                found.append((width - x - w, y, w, h))
        faces: list[Box] = []
        for x, y, w, h in sorted(
            found, key=lambda r: -r[2] * r[3]
        ):  # largest first; drop overlapping repeats
            face = Box(float(x / scale), float(y / scale), float((x + w) / scale), float((y + h) / scale))
            if all(box_iou(face, kept) < 0.3 for kept in faces):
                faces.append(face)
        return faces

    def detect(self, frame: np.ndarray) -> list[Box]:
        """Upper-body boxes in frame pixels, one per face found."""
        height, width = frame.shape[:2]
        boxes = []
        for face in self.detect_faces(frame):
            center_x = (face.x0 + face.x1) / 2.0
            half_w = self.body_width * face.width / 2.0
            top = face.y0 - self.head_margin * face.height
            body = Box(center_x - half_w, top, center_x + half_w, top + self.body_height * face.height)
            boxes.append(body.clip(width, height))
        return boxes


class HogPeopleDetector:
    """Full-body pedestrian boxes from OpenCV's HOG + linear SVM people detector.

    Finds standing people seen whole; it misses upper-body shots (most TED framing).

    Args:
        max_height: frames taller than this are shrunk before detection (speed).
        min_score: SVM score below which a detection is dropped.
    """

    def __init__(self, min_person_height: float = 0, max_height: int = 480, min_score: float = 0.3) -> None:
        cv2 = require_cv2()
        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        self.max_height = int(max_height)
        self.min_score = float(min_score)

    def detect(self, frame: np.ndarray) -> list[Box]:
        small, scale = _downscale(frame, self.max_height)
        if small.shape[0] < 128 or small.shape[1] < 64:  # smaller than the HOG window
            return []
        rects, weights = self.hog.detectMultiScale(small, winStride=(8, 8), padding=(8, 8), scale=1.05)
        height, width = frame.shape[:2]
        boxes = []
        for (x, y, w, h), score in zip(rects, np.ravel(weights)):
            if score >= self.min_score:
                box = Box(float(x / scale), float(y / scale), float((x + w) / scale), float((y + h) / scale))
                boxes.append(box.clip(width, height))
        return boxes


DetectorFactory = Callable[..., PersonDetector]
DETECTORS: dict[str, DetectorFactory] = {}
BOXES = "boxes"  # the name under which precomputed boxes are chosen (not a per-frame detector)


def register_detector(name: str, factory: DetectorFactory) -> None:
    """Make a detector available by name (for ``--detector``). Factories take ``min_person_height``."""
    if name == BOXES:
        raise MRAAError(f"the detector name {BOXES!r} is reserved for precomputed boxes")
    DETECTORS[name] = factory


def detector_names() -> list[str]:
    """Names accepted by ``--detector``, including ``boxes`` for precomputed boxes."""
    return [*DETECTORS, BOXES]


def build_detector(name: str, **kwargs: Any) -> PersonDetector:
    """Construct a registered detector by name, e.g. ``build_detector("haar-upperbody")``."""
    if name not in DETECTORS:
        raise MRAAError(f"unknown detector {name!r}; choose from {', '.join(detector_names())}")
    return DETECTORS[name](**kwargs)


register_detector("haar-upperbody", HaarUpperBodyDetector)
register_detector("hog", HogPeopleDetector)
