"""Display orientation of video frames: the display matrix (or older ``rotate`` tag) phones write, applied as
ffmpeg's players apply it, so a portrait phone video is read upright. Used by the frame reader
(:mod:`mraa.data.video_io`) and the dataset decoder (:mod:`mraa.data.frames_dataset`)."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np

log = logging.getLogger(__name__)

Orientation = tuple[int, bool]  # (k, flip): np.rot90(np.fliplr(frame) if flip else frame, k)
UPRIGHT: Orientation = (0, False)


def display_orientation(matrix: Iterable[int] | None, name: str = "video") -> Orientation:
    """How to turn stored frames upright from a display matrix (9 int32, 16.16 fixed point), as ffmpeg does.

    A displayed pixel ``(x', y')`` shows the stored pixel ``(x, y)`` with ``x' = m0 x + m3 y``,
    ``y' = m1 x + m4 y`` (then shifted into the frame). Rotations by multiples of 90 degrees and mirror
    images are applied; any other angle is ignored with a warning.
    """
    if matrix is None:
        return UPRIGHT
    m = np.asarray(list(matrix), dtype=np.float64)
    if m.size != 9:
        return UPRIGHT
    linear = np.array([[m[0], m[3]], [m[1], m[4]]]) / 65536.0  # (x', y') = linear @ (x, y)
    scale = np.sqrt(abs(np.linalg.det(linear)))
    if not np.isfinite(scale) or scale == 0:
        return UPRIGHT
    rounded = np.round(linear / scale)
    if np.abs(linear / scale - rounded).max() > 0.02 or abs(np.linalg.det(rounded)) != 1:
        angle = np.degrees(np.arctan2(linear[1, 0], linear[0, 0]))
        log.warning("%s: a display rotation of %.1f degrees is not a multiple of 90: ignored", name, angle)
        return UPRIGHT
    probe = np.arange(6).reshape(2, 3)  # a tiny asymmetric picture, moved as the matrix says
    ys, xs = np.indices(probe.shape)
    moved_x, moved_y = rounded @ np.stack([xs.ravel(), ys.ravel()])
    moved_x, moved_y = moved_x - moved_x.min(), moved_y - moved_y.min()
    displayed = np.empty((int(moved_y.max()) + 1, int(moved_x.max()) + 1), dtype=probe.dtype)
    displayed[moved_y.astype(int), moved_x.astype(int)] = probe.ravel()
    for flip in (False, True):
        for k in range(4):
            if np.array_equal(orient_frame(probe, (k, flip)), displayed):
                return k, flip
    return UPRIGHT  # not reached: the 8 candidates are all the rotations and mirror images


def orient_frame(frame: np.ndarray, orientation: Orientation) -> np.ndarray:
    """A frame (H, W, ...) turned by ``orientation`` (see :func:`display_orientation`); a view."""
    k, flip = orientation
    if flip:
        frame = np.fliplr(frame)
    return np.rot90(frame, k) if k else frame


def frame_orientation(frame, name: str = "video", stream=None) -> Orientation:
    """The orientation given by a decoded PyAV frame's display matrix, or else by the ``rotate`` tag of its
    ``stream`` (older FFmpeg builds export that instead); upright when there is neither."""
    try:
        for data in frame.side_data:
            if "DISPLAYMATRIX" in str(data.type).upper():
                return display_orientation(np.frombuffer(bytes(data), dtype="<i4"), name)
    except (AttributeError, TypeError, ValueError):  # an old PyAV without side data
        pass
    try:
        rotate = float(getattr(stream, "metadata", {}).get("rotate", 0))  # degrees clockwise to display
    except (TypeError, ValueError):
        return UPRIGHT
    quarters = round(rotate / 90)
    if abs(rotate - 90 * quarters) > 1:
        log.warning("%s: a rotation of %g degrees is not a multiple of 90: ignored", name, rotate)
        return UPRIGHT
    return (-quarters) % 4, False
