"""Pure functions from person detections to chunks: tracking, splitting, square crops.

A *track* is a float array of shape (T, 4) holding one ``(x0, y0, x1, y1)`` box per frame of a shot,
with NaN rows where the main person is not known to be visible.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from mraa.boxes import Box, box_iou


class Span(NamedTuple):
    """Frames ``[start, end)`` of a video."""

    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start


class CropBox(NamedTuple):
    """A square crop: top-left corner ``(x0, y0)`` and side ``size``, in source pixels."""

    x0: int
    y0: int
    size: int


@dataclass
class _Track:
    frames: list[int]
    boxes: list[Box]

    @property
    def score(self) -> float:
        # size times persistence: the presenter is big and always there, passers-by are neither
        return float(sum(box.height for box in self.boxes))


def _link_tracks(
    detections: Mapping[int, Sequence[Sequence[float]]], looked: Sequence[int], min_iou: float
) -> list[_Track]:
    """Link the boxes of consecutive looked-at frames greedily by overlap (best pairs first) into tracks."""
    tracks: list[_Track] = []
    for frame in looked:
        boxes = [Box(*map(float, b)) for b in detections[frame]]
        pairs = sorted(
            ((box_iou(t.boxes[-1], b), ti, bi) for ti, t in enumerate(tracks) for bi, b in enumerate(boxes)),
            reverse=True,
        )
        used_tracks: set[int] = set()
        used_boxes: set[int] = set()
        for iou, ti, bi in pairs:
            if iou < min_iou:
                break
            if ti in used_tracks or bi in used_boxes:
                continue
            used_tracks.add(ti)
            used_boxes.add(bi)
            tracks[ti].frames.append(frame)
            tracks[ti].boxes.append(boxes[bi])
        tracks.extend(_Track([frame], [box]) for bi, box in enumerate(boxes) if bi not in used_boxes)
    return tracks


def track_main_person(
    detections: Mapping[int, Sequence[Sequence[float]]],
    start: int,
    end: int,
    max_gap: int = 10,
    hold: int = 0,
    min_iou: float = 0.3,
) -> np.ndarray:
    """Follow the main person through frames ``[start, end)`` of one shot.

    Boxes on consecutive looked-at frames are linked greedily by overlap into tracks; the track with the
    largest sum of box heights (big and persistent) is the main person. Between two of its boxes at most
    ``max_gap`` frames apart the box is interpolated linearly; longer gaps stay unknown.

    Args:
        detections: boxes per looked-at frame; frames absent were not looked at (an empty list means
            looked at, nobody found). Frames outside ``[start, end)`` are ignored.
        start, end: the shot's frame range.
        max_gap: longest interpolated stretch between two boxes of the track, in frames.
        hold: at the shot's first and last frames, copy the nearest box up to this many frames when no
            frame in between was looked at (covers the frames a sparse detector skipped).
        min_iou: smallest overlap for a box to continue a track.

    Returns:
        Float array (end - start, 4) of boxes, NaN rows where the person is unknown.
    """
    length = max(0, end - start)
    track = np.full((length, 4), np.nan)
    looked = sorted(f for f in detections if start <= f < end)
    tracks = _link_tracks(detections, looked, min_iou)
    if not tracks:
        return track
    main = max(tracks, key=lambda t: t.score)
    frames = np.asarray(main.frames) - start
    boxes = np.asarray(main.boxes, dtype=np.float64)  # (N, 4)
    track[frames] = boxes
    for (fa, fb), (ba, bb) in zip(zip(frames[:-1], frames[1:]), zip(boxes[:-1], boxes[1:])):
        if 1 < fb - fa <= max_gap:
            weights = (np.arange(fa + 1, fb) - fa)[:, None] / (fb - fa)
            track[fa + 1 : fb] = ba + weights * (bb - ba)
    first_looked, last_looked = looked[0] - start, looked[-1] - start
    if frames[0] == first_looked and 0 < frames[0] <= hold:
        track[: frames[0]] = boxes[0]
    if frames[-1] == last_looked and 0 < length - 1 - frames[-1] <= hold:
        track[frames[-1] + 1 :] = boxes[-1]
    return track


def _runs(mask: np.ndarray) -> list[Span]:
    """Maximal runs of True in a 1-D boolean array."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    changes = np.flatnonzero(np.diff(padded))
    return [Span(int(a), int(b)) for a, b in zip(changes[0::2], changes[1::2])]


def smooth_track(track: np.ndarray, window: int) -> np.ndarray:
    """Moving average of a (T, 4) track over ``window`` frames, within each run of known boxes."""
    if window <= 1:
        return track.copy()
    out = track.copy()
    half = window // 2
    for run in _runs(~np.isnan(track).any(axis=1)):
        values = track[run.start : run.end]
        cumsum = np.concatenate([np.zeros((1, 4)), np.cumsum(values, axis=0)])
        index = np.arange(run.length)
        lo = np.maximum(index - half, 0)
        hi = np.minimum(index + half + 1, run.length)
        out[run.start : run.end] = (cumsum[hi] - cumsum[lo]) / (hi - lo)[:, None]
    return out


def split_into_chunks(
    track: np.ndarray,
    min_person_height: float = 384,
    max_shift: float = 0.2,
    max_scale_change: float = 0.25,
    start: int = 0,
) -> list[Span]:
    """Cut a shot's track into chunks where the person is visible, big enough and near where they began.

    A frame qualifies when its box is known and at least ``min_person_height`` tall. Each run of
    qualifying frames is split greedily: a chunk ends at the first frame whose box center is more than
    ``max_shift`` times the chunk's first box height away from that box's center, or whose height
    differs from it by more than a factor ``1 + max_scale_change``. No length filter is applied here.

    Args:
        track: (T, 4) boxes of one shot, NaN where unknown.
        min_person_height: smallest box height in pixels.
        max_shift: largest center displacement as a fraction of the person's height.
        max_scale_change: largest relative change of box height within a chunk.
        start: frame number of ``track[0]`` in the video (added to the returned spans).

    Returns:
        Chunk spans in video frame numbers, in order.
    """
    heights = track[:, 3] - track[:, 1]
    centers = (track[:, :2] + track[:, 2:]) / 2.0  # (T, 2)
    qualifies = ~np.isnan(track).any(axis=1)
    qualifies[qualifies] = heights[qualifies] >= min_person_height
    max_log_scale = math.log1p(max_scale_change)
    chunks = []
    for run in _runs(qualifies):
        first = run.start
        for t in range(run.start + 1, run.end):
            shift = float(np.hypot(*(centers[t] - centers[first])))
            rescale = abs(math.log(heights[t] / heights[first]))
            if shift > max_shift * heights[first] or rescale > max_log_scale:
                chunks.append(Span(start + first, start + t))
                first = t
        chunks.append(Span(start + first, start + run.end))
    return chunks


def square_crop_box(boxes: np.ndarray, frame_size: tuple[int, int], crop_scale: float = 1.2) -> CropBox:
    """One square crop for a whole chunk: it holds every box and keeps the person's scale fixed.

    The side is ``crop_scale`` times the largest box side (at least the union of all boxes), centered
    on the union of the boxes, then shrunk to fit the frame if needed and shifted inside it.

    Args:
        boxes: (N, 4) boxes of the chunk's frames (no NaN).
        frame_size: (height, width) of the source frames.
        crop_scale: margin factor around the person.

    Returns:
        ``CropBox(x0, y0, size)`` in integer source pixels, inside the frame.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    height, width = frame_size
    ux0, uy0 = boxes[:, 0].min(), boxes[:, 1].min()
    ux1, uy1 = boxes[:, 2].max(), boxes[:, 3].max()
    largest = max((boxes[:, 2] - boxes[:, 0]).max(), (boxes[:, 3] - boxes[:, 1]).max())
    side = max(crop_scale * largest, ux1 - ux0, uy1 - uy0)
    size = int(min(round(side), height, width))
    x0 = int(round((ux0 + ux1) / 2.0 - size / 2.0))
    y0 = int(round((uy0 + uy1) / 2.0 - size / 2.0))
    x0 = min(max(x0, 0), width - size)
    y0 = min(max(y0, 0), height - size)
    return CropBox(x0, y0, size)


@dataclass
class PlannedChunk:
    """A chunk to write: its frames ``[start, end)`` of shot ``shot`` and its square crop."""

    shot: int
    start: int
    end: int
    crop: CropBox

    @property
    def num_frames(self) -> int:
        return self.end - self.start


def plan_chunks(
    track: np.ndarray,
    shot: int,
    shot_start: int,
    frame_size: tuple[int, int],
    min_frames: int = 64,
    min_person_height: float = 384,
    max_shift: float = 0.2,
    max_scale_change: float = 0.25,
    crop_scale: float = 1.2,
    size: int = 384,
) -> tuple[list[PlannedChunk], Counter]:
    """Chunks of one shot with their crops, dropping those too short or needing upscaling.

    Returns:
        The kept chunks and a Counter of dropped ones by reason (``too_short``, ``needs_upscaling``).
    """
    kept: list[PlannedChunk] = []
    dropped: Counter = Counter()
    for span in split_into_chunks(track, min_person_height, max_shift, max_scale_change, start=shot_start):
        if span.length < min_frames:
            dropped["too_short"] += 1
            continue
        crop = square_crop_box(track[span.start - shot_start : span.end - shot_start], frame_size, crop_scale)
        if crop.size < size:
            dropped["needs_upscaling"] += 1
            continue
        kept.append(PlannedChunk(shot, span.start, span.end, crop))
    return kept, dropped
