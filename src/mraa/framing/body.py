"""Upper- and full-body framing from body landmarks (:mod:`mraa.pose`, mediapipe BlazePose, the ``pose``
extra), where they are installed and a pose is found; :func:`mraa.framing.find_subject` falls back to the
face box and body proportions otherwise."""

from __future__ import annotations

import logging

import numpy as np

from mraa.boxes import Box
from mraa.framing.boxes import UPPER_RULE, full_body_box, head_rule_box

log = logging.getLogger(__name__)

FACE_POINTS = list(range(11))  # nose, eyes, ears, mouth (BlazePose order)
SHOULDERS, HIPS = (11, 12), (23, 24)
VISIBLE = 0.5  # BlazePose visibility above which a landmark counts
# a head (with hair) is ~3.5 eye-to-mouth distances tall; the eyes sit ~0.5 of it below the crown
HEAD_PER_EYE_MOUTH = 3.5
EYES_BELOW_TOP = 0.6  # the eyes are half a head below the crown; 0.6 leaves room for hair piled up
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
    """The head with hair from the face landmarks (eyes and mouth give its height; in profile, when the
    nose is beyond both ears, it reaches half a head behind the ears), or None."""
    eyes, mouth = _mean(points, (2, 5), visible), _mean(points, (9, 10), visible)
    if eyes is None or mouth is None:
        return None
    height = HEAD_PER_EYE_MOUTH * float(np.linalg.norm(mouth - eyes))
    face = points[[i for i in FACE_POINTS if visible[i]]]
    x0, x1 = float(face[:, 0].min()) - 0.1 * height, float(face[:, 0].max()) + 0.1 * height
    ears = [points[i, 0] for i in (7, 8) if visible[i]]
    if ears and visible[0] and points[0, 0] < min(ears):  # facing left: the back of the head is right
        x1 = max(x1, max(ears) + 0.5 * height)
    elif ears and visible[0] and points[0, 0] > max(ears):
        x0 = min(x0, min(ears) - 0.5 * height)
    cx, half = (x0 + x1) / 2, max(0.4 * height, (x1 - x0) / 2)
    top = float(eyes[1]) - EYES_BELOW_TOP * height
    return Box(cx - half, top, cx + half, top + height)


def _inside(point: np.ndarray, box: Box) -> bool:
    return box.x0 <= point[0] <= box.x1 and box.y0 <= point[1] <= box.y1


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
    pose_head = head_from_landmarks(points, visible)
    head = face_head
    if head is None or (pose_head is not None and not _inside(points[0], head)):
        head = pose_head  # no face, or the face box is elsewhere than the body's nose: trust the body
    shoulders, hips = _mean(points, SHOULDERS, visible), _mean(points, HIPS, visible)
    if head is None or shoulders is None:
        return None
    if framing == "full_body":
        if hips is None:
            return None  # too little of the body seen: the proportions from the head know as much
        # every landmark, seen or not: BlazePose places hidden or out-of-frame legs and feet where the
        # body implies them, so a figure cut by the border asks for a crop past it (then given up)
        person = Box(min(float(points[:, 0].min()), head.x0), head.y0,
                     max(float(points[:, 0].max()), head.x1), max(float(points[:, 1].max()), head.y1))  # fmt: skip
        return Subject(person, full_body_box(person), "pose", head)
    seen = points[visible]
    person = Box(min(float(seen[:, 0].min()), head.x0), head.y0,
                 max(float(seen[:, 0].max()), head.x1), max(float(seen[:, 1].max()), head.y1))  # fmt: skip
    crop = head_rule_box(head, UPPER_RULE)
    if hips is not None and hips[1] > shoulders[1]:
        stop = shoulders[1] + TORSO_STOP * (hips[1] - shoulders[1])
        side = float(np.clip(stop - crop.y0, 2.8 * head.height, 4.5 * head.height))
        cx = (head.x0 + head.x1) / 4.0 + shoulders[0] / 2.0
        crop = Box(cx - side / 2, crop.y0, cx + side / 2, crop.y0 + side)
    return Subject(person, crop, "pose", head)
