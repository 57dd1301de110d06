"""Upper- and full-body framing from body landmarks (:mod:`mraa.pose`, mediapipe BlazePose, the ``pose``
extra), where they are installed and a pose is found; :func:`mraa.framing.find_subject` falls back to the
face box and body proportions otherwise."""

from __future__ import annotations

import logging

import numpy as np

from mraa.data.prepare.detectors import Box
from mraa.framing.boxes import UPPER_RULE, full_body_box, head_rule_box

log = logging.getLogger(__name__)

FACE_POINTS = list(range(11))  # nose, eyes, ears, mouth (BlazePose order)
SHOULDERS, HIPS = (11, 12), (23, 24)
FEET = (27, 28, 29, 30, 31, 32)  # ankles, heels, toes
VISIBLE = 0.5  # BlazePose visibility above which a landmark counts
# a head (with hair) is ~3.5 eye-to-mouth distances tall; the eyes sit ~0.5 of it below the crown
HEAD_PER_EYE_MOUTH = 3.5
TORSO_STOP = 0.75  # upper body ends this far from the shoulders to the hips (TED: head to mid-torso)

_DETECTOR: list = []


def _landmarks(image: np.ndarray):
    """The body landmarks of the most prominent person, or None (no pose extra, or no person)."""
    try:
        from mraa.pose import PoseDetector, pose_available
    except ImportError:
        return None
    if not pose_available():
        return None
    if not _DETECTOR:
        _DETECTOR.append(PoseDetector())
    return _DETECTOR[0](image)


def _mean(points: np.ndarray, indices, visible: np.ndarray) -> np.ndarray | None:
    chosen = [i for i in indices if visible[i]]
    return points[chosen].mean(axis=0) if chosen else None


def head_from_landmarks(points: np.ndarray, visible: np.ndarray) -> Box | None:
    """The head with hair from the face landmarks (eyes and mouth; ears widen it), or None."""
    eyes, mouth = _mean(points, (2, 5), visible), _mean(points, (9, 10), visible)
    if eyes is None or mouth is None:
        return None
    height = HEAD_PER_EYE_MOUTH * float(np.linalg.norm(mouth - eyes))
    face = points[[i for i in FACE_POINTS if visible[i]]]
    cx = float((face[:, 0].min() + face[:, 0].max()) / 2)
    half = max(0.4 * height, float(face[:, 0].max() - face[:, 0].min()) / 2 * 1.2)
    top = float(eyes[1]) - 0.5 * height
    return Box(cx - half, top, cx + half, top + height)


def body_subject(image: np.ndarray, framing: str, face_head: Box | None):
    """A :class:`~mraa.framing.detect.Subject` from body landmarks for ``upper_body`` / ``full_body``, or
    None (no pose extra, no person, or not enough of the body visible for the framing)."""
    from mraa.framing.detect import Subject

    if framing not in ("upper_body", "full_body"):
        return None
    found = _landmarks(image)
    if found is None:
        return None
    points, visible = np.asarray(found.points, np.float64), np.asarray(found.visibility) > VISIBLE
    head = face_head or head_from_landmarks(points, visible)
    shoulders = _mean(points, SHOULDERS, visible)
    if head is None or shoulders is None:
        return None
    seen = points[visible]
    person = Box(min(float(seen[:, 0].min()), head.x0), head.y0,
                 max(float(seen[:, 0].max()), head.x1), max(float(seen[:, 1].max()), head.y1))  # fmt: skip
    if framing == "full_body":
        if _mean(points, FEET, visible) is None:
            return None  # feet not seen: the proportions from the head know as much
        return Subject(person, full_body_box(person), "pose", head)
    crop = head_rule_box(head, UPPER_RULE)
    hips = _mean(points, HIPS, visible)
    if hips is not None and hips[1] > shoulders[1]:
        stop = shoulders[1] + TORSO_STOP * (hips[1] - shoulders[1])
        side = float(np.clip(stop - crop.y0, 2.8 * head.height, 4.5 * head.height))
        cx = (head.x0 + head.x1) / 4.0 + shoulders[0] / 2.0
        crop = Box(cx - side / 2, crop.y0, cx + side / 2, crop.y0 + side)
    return Subject(person, crop, "pose", head)
