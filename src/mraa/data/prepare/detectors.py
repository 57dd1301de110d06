"""Person boxes for dataset preparation: the detectors (from :mod:`mraa.detection`, shared with subject
framing; re-exported here) and precomputed boxes: boxes from any other detector brought as one JSON or CSV
file per video (:class:`PrecomputedBoxes`)."""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mraa.boxes import Box, box_iou
from mraa.detection import (
    BOXES,
    DETECT_EXTRA_HINT,
    DETECTORS,
    DetectorFactory,
    HaarUpperBodyDetector,
    HogPeopleDetector,
    PersonDetector,
    build_detector,
    detector_names,
    register_detector,
    require_cv2,
)
from mraa.errors import MRAAError

# Box lives in mraa.boxes and the detectors in mraa.detection (shared with subject framing); dataset
# preparation's names stay importable from here
__all__ = [
    "BOXES", "DETECTORS", "DETECT_EXTRA_HINT", "Box", "DetectorFactory", "HaarUpperBodyDetector",
    "HogPeopleDetector", "PersonDetector", "PrecomputedBoxes", "box_iou", "build_detector",
    "detections_to_json", "detector_names", "load_boxes_csv", "load_boxes_json", "register_detector",
    "require_cv2",
]  # fmt: skip

log = logging.getLogger(__name__)

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
