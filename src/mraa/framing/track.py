"""Driving videos: the subject tracked over time, camera cuts, and one crop box per shot."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from mraa.boxes import Box
from mraa.errors import MRAAError
from mraa.framing.boxes import center_box, check_framing, place_box
from mraa.framing.detect import find_subject

CUT_THRESHOLD = 30.0  # mean absolute difference (0..255) of 16x16 grey thumbnails that marks a camera cut
EDGE = 0.01  # a subject box within this fraction of the frame's size from a side touches that side


def _thumb(frame: np.ndarray) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(frame).convert("L").resize((16, 16), Image.BILINEAR), np.float32)


@dataclass
class DrivingTrack:
    """Per-frame subject crops of a driving video (None where not looked at or not found) and its cuts."""

    width: int
    height: int
    crops: list[Box | None] = field(default_factory=list)
    subjects: list[Box | None] = field(default_factory=list)  # the detected face / person per frame
    heads: list[Box | None] = field(default_factory=list)  # the head with hair per frame
    cuts: list[int] = field(default_factory=list)  # first frame of every shot after the first

    @property
    def num_frames(self) -> int:
        return len(self.crops)


def track_driving(
    frames: Iterable[np.ndarray], framing: str, every: int = 1, cuts: list[int] | None = None
) -> DrivingTrack:
    """Detect the subject every ``every`` frames and find camera cuts (one pass over the frames).

    ``cuts``, when given, is the list the cut indices are appended to (so a caller sees them as they come).
    """
    check_framing(framing)
    track: DrivingTrack | None = None
    previous = None
    for index, frame in enumerate(frames):
        if track is None:
            track = DrivingTrack(frame.shape[1], frame.shape[0], cuts=[] if cuts is None else cuts)
        thumb = _thumb(frame)
        if previous is not None and float(np.abs(thumb - previous).mean()) > CUT_THRESHOLD:
            track.cuts.append(index)
        previous = thumb
        looked = framing != "none" and (index % every == 0 or (track.cuts and track.cuts[-1] == index))
        subject = find_subject(frame, framing) if looked else None
        track.crops.append(subject.crop if subject else None)
        track.subjects.append(subject.box if subject else None)
        track.heads.append(subject.head if subject else None)
    if track is None:
        raise MRAAError("the driving video has no frames")
    return track


def _interpolate(values: np.ndarray) -> np.ndarray:
    """Fill NaN rows of (T, C) by linear interpolation (constant beyond the ends)."""
    t = np.arange(len(values))
    out = values.copy()
    for c in range(values.shape[1]):
        known = ~np.isnan(values[:, c])
        out[:, c] = np.interp(t, t[known], values[known, c])
    return out


def smooth_boxes(boxes: Sequence[Box | None], sigma: float = 3.0) -> list[Box] | None:
    """Per-frame boxes with centre and size smoothed by a Gaussian of ``sigma`` frames (gaps interpolated).

    Returns None when no box is known. The second difference of the result is bounded by that of the
    Gaussian kernel times the jitter, so per-frame detector noise does not reach the crop.
    """
    if not any(b is not None for b in boxes):
        return None
    rows = [[*b.center, b.width, b.height] if b is not None else [np.nan] * 4 for b in boxes]
    values = _interpolate(np.asarray(rows, np.float64))  # (T, 4): cx, cy, w, h
    if sigma > 0 and len(values) > 1:
        radius = int(math.ceil(3 * sigma))
        kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
        kernel /= kernel.sum()
        padded = np.pad(values, ((radius, radius), (0, 0)), mode="edge")
        values = np.stack([np.convolve(padded[:, c], kernel, mode="valid") for c in range(4)], axis=1)
    return [Box(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2) for cx, cy, w, h in values]


@dataclass
class DrivingFraming:
    """One crop box per shot of the driving video: ``shots[i] = (start, end)``, ``boxes[i]``."""

    shots: list[tuple[int, int]]
    boxes: list[Box]
    how: list[str]
    messages: list[str] = field(default_factory=list)

    def box_at(self, index: int) -> Box:
        for (start, end), box in zip(self.shots, self.boxes):
            if start <= index < end:
                return box
        return self.boxes[-1]


def frame_driving(track: DrivingTrack, crop: str, aspect: float = 1.0, sigma: float = 3.0) -> DrivingFraming:
    """One box per shot: the union of the smoothed per-frame crops of the shot (as crop-video.py's tube
    box), made to the model's aspect and fitted into the frame. Shots without a subject get a centre crop."""
    w, h, n = track.width, track.height, track.num_frames
    bounds = [0, *track.cuts, n]
    shots = [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
    result = DrivingFraming(shots, [], [])
    for start, end in shots:
        if crop in ("none", "center"):
            box = Box(0.0, 0.0, float(w), float(h)) if crop == "none" else center_box(w, h, aspect)
            result.boxes.append(box)
            result.how.append(crop)
            continue
        smoothed = smooth_boxes(track.crops[start:end], sigma)
        if smoothed is None:
            result.boxes.append(center_box(w, h, aspect))
            result.how.append("center")
            result.messages.append(
                f"no {crop.replace('_', ' ')} found in driving frames {start}-{end - 1}: using a centre crop"
            )
            continue
        union = Box(min(b.x0 for b in smoothed), min(b.y0 for b in smoothed),
                    max(b.x1 for b in smoothed), max(b.y1 for b in smoothed))  # fmt: skip
        heads = [b for b in track.heads[start:end] if b is not None]
        head = Box(min(b.x0 for b in heads), min(b.y0 for b in heads),
                   max(b.x1 for b in heads), max(b.y1 for b in heads)) if heads else None  # fmt: skip
        result.boxes.append(place_box(union, head, w, h, aspect)[0])
        result.how.append("track")
        result.messages += _leaving_messages(track, start, end)
    return result


def _sides(box: Box, width: int, height: int) -> set[str]:
    """The sides of the frame that ``box`` touches."""
    mx, my = EDGE * width, EDGE * height
    sides = {
        "left": box.x0 <= mx,
        "top": box.y0 <= my,
        "right": box.x1 >= width - mx,
        "bottom": box.y1 >= height - my,
    }
    return {side for side, touching in sides.items() if touching}


def _leaving_messages(track: DrivingTrack, start: int, end: int) -> list[str]:
    """One warning when the tracked subject really leaves the frame: its head (else its detected box) ends
    the shot touching a side of the frame it did not touch when first seen (in the last two looks), or it
    is lost for the shot's last fifth after being seen. A face that fills the frame touches the same sides
    all along, and one jittery detection touching a side does not count: no warning."""
    boxes = [h if h is not None else s for h, s in zip(track.heads[start:end], track.subjects[start:end])]
    seen = [(i, b) for i, b in enumerate(boxes) if b is not None]
    if not seen:
        return []
    length = end - start
    if seen[-1][0] < length - max(5, length // 5):
        return [f"the subject is lost after driving frame {start + seen[-1][0]}: it may have left the frame"]
    first = _sides(seen[0][1], track.width, track.height)
    if len(seen) >= 3:
        ends = [_sides(b, track.width, track.height) - first for _, b in seen[-2:]]
        new = ends[0] & ends[1]
        if new:
            return [f"the subject reaches the {min(new)} edge of the frame around driving frame "
                    f"{start + seen[-2][0]}: it may be leaving, and the crop may cut it off"]  # fmt: skip
    return []
