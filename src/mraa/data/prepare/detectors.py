"""Person boxes for dataset preparation: a small detector interface, offline defaults, precomputed boxes.

A detector is anything with ``detect(frame) -> list[Box]`` where ``frame`` is a uint8 HxWx3 RGB array
and boxes are ``(x0, y0, x1, y1)`` in pixels of that frame. Detectors are registered by name
(``haar-upperbody``, ``hog``) and built with :func:`build_detector`. Boxes from any other detector can
be brought as one JSON or CSV file per video (:class:`PrecomputedBoxes`).

The built-in detectors use OpenCV (``pip install 'mraa[detect]'``) and the model files that ship
inside its wheel, so nothing is downloaded.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from mraa.boxes import Box as Box  # boxes live in mraa.boxes; re-exported here
from mraa.boxes import box_iou as box_iou
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


# ---------------------------------------------------------------------------------------------------------
# precomputed boxes


def _parse_box(value: Any, where: str) -> Box:
    try:
        coords = [float(v) for v in value]
    except (TypeError, ValueError):
        raise MRAAError(f"{where}: a box must be 4 numbers x0,y0,x1,y1, got {value!r}") from None
    if len(coords) != 4:
        raise MRAAError(f"{where}: a box must be 4 numbers x0,y0,x1,y1, got {value!r}")
    box = Box(*coords)
    if not all(np.isfinite(coords)) or box.width <= 0 or box.height <= 0:
        raise MRAAError(f"{where}: a box needs x1 > x0 and y1 > y0, got {value!r}")
    return box


def _parse_frame(key: Any, where: str) -> int:
    try:
        frame = int(str(key).strip())
    except ValueError:
        raise MRAAError(f"{where}: frame numbers must be integers, got {key!r}") from None
    if frame < 0:
        raise MRAAError(f"{where}: negative frame number {frame}")
    return frame


def load_boxes_json(path: str | os.PathLike) -> dict[int, list[Box]]:
    """Read ``{"frames": {"0": [x0, y0, x1, y1], "5": [[...], [...]], "9": []}}``.

    A frame maps to one box, a list of boxes, or ``[]`` (looked at, nobody there). Frames left out
    were not looked at and are interpolated from their neighbours.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise MRAAError(f"cannot read boxes file {path}: {exc}") from None
    frames = data.get("frames") if isinstance(data, dict) else None
    if not isinstance(frames, dict):
        raise MRAAError(f'{path}: expected a JSON object {{"frames": {{"0": [x0, y0, x1, y1], ...}}}}')
    result: dict[int, list[Box]] = {}
    for key, value in frames.items():
        where = f"{path} frame {key}"
        frame = _parse_frame(key, where)
        if not isinstance(value, list):
            raise MRAAError(f"{where}: expected a box or a list of boxes, got {value!r}")
        if value and not isinstance(value[0], list):
            value = [value]
        result[frame] = [_parse_box(box, where) for box in value]
    return result


def load_boxes_csv(path: str | os.PathLike) -> dict[int, list[Box]]:
    """Read CSV rows ``frame,x0,y0,x1,y1`` (optional header; several rows per frame for several people).

    A row holding only the frame number (``12,,,,``) means: looked at, nobody there.
    """
    path = Path(path)
    result: dict[int, list[Box]] = {}
    try:
        with open(path, newline="") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise MRAAError(f"cannot read boxes file {path}: {exc}") from None
    for line, row in enumerate(rows, start=1):
        cells = [cell.strip() for cell in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if line == 1 and cells[0].lower() == "frame":
            continue
        where = f"{path} line {line}"
        frame = _parse_frame(cells[0], where)
        boxes = result.setdefault(frame, [])
        if any(cells[1:]):
            boxes.append(_parse_box(cells[1:5] if len(cells) >= 5 else cells[1:], where))
    return result


class PrecomputedBoxes:
    """Person boxes brought from elsewhere: ``DIR/<video stem>.json`` or ``DIR/<video stem>.csv``.

    For a frame folder the stem is the folder name. See :func:`load_boxes_json` and
    :func:`load_boxes_csv` for the two formats; frame numbers count from 0 in decoding order.
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise MRAAError(f"boxes folder not found: {self.folder}")

    def find(self, video: str | os.PathLike, video_id: str | None = None) -> Path | None:
        """The boxes file for a video (``<video_id>.*`` first when given, then ``<stem>.*``), or None."""
        stem = Path(video).name if Path(video).is_dir() else Path(video).stem
        names = [video_id, stem] if video_id and video_id != stem else [stem]
        for name in names:
            for suffix in (".json", ".csv"):
                candidate = self.folder / f"{name}{suffix}"
                if candidate.is_file():
                    return candidate
        return None

    def load(self, video: str | os.PathLike) -> dict[int, list[Box]]:
        """Boxes per looked-at frame of ``video``; raises MRAAError when its file is missing or bad."""
        path = self.find(video)
        if path is None:
            raise MRAAError(
                f"no boxes file for {Path(video).name} in {self.folder} (expected <name>.json or .csv)"
            )
        return load_boxes_json(path) if path.suffix == ".json" else load_boxes_csv(path)


def detections_to_json(detections: Mapping[int, Sequence[Box]]) -> dict[str, list[list[float]]]:
    """The ``"frames"`` object of the JSON boxes format (rounded to 0.1 px)."""
    return {
        str(f): [[round(float(v), 1) for v in box] for box in boxes]
        for f, boxes in sorted(detections.items())
    }
