"""Offline subject detectors (OpenCV Haar faces, HOG people, a plain-background silhouette) and the
subject (head, person, framing square) they give for a framing."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from mraa.boxes import Box, box_iou
from mraa.errors import MRAAError
from mraa.framing.boxes import (
    FACE_RULE,
    HEADS_PER_PERSON,
    UPPER_RULE,
    check_framing,
    full_body_box,
    head_from_face,
    head_from_person,
    head_rule_box,
    person_from_head,
    person_from_hog,
)

log = logging.getLogger(__name__)

DETECT_SIZE = 480  # images are shrunk to at most this many pixels on their long side before detection


def _shrink(image: np.ndarray, limit: int = DETECT_SIZE) -> tuple[np.ndarray, float]:
    from PIL import Image

    h, w = image.shape[:2]
    scale = min(1.0, limit / max(h, w))
    if scale == 1.0:
        return image, 1.0
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR)), scale


def _scaled(box: Box, scale: float) -> Box:
    return Box(box.x0 / scale, box.y0 / scale, box.x1 / scale, box.y1 / scale)


_DETECTORS: dict[str, object] = {}


def _has_cv2() -> bool:
    import importlib.util

    return importlib.util.find_spec("cv2") is not None


def _cv2():
    """OpenCV, or an MRAAError naming the extra that provides it."""
    try:
        import cv2
    except ImportError:
        raise MRAAError(
            "subject framing (--crop face/upper-body/full-body) needs OpenCV: pip install 'mraa[detect]'"
        ) from None
    # detection is small work: OpenCV's own thread pool gains little, and a process that forks later (a
    # ProcessPoolExecutor, a DataLoader) deadlocks in the child when that pool exists
    if cv2.getNumThreads() != 1:
        cv2.setNumThreads(1)
    return cv2


def _detector(name: str):
    """Cached OpenCV detectors (building the cascade takes ~30 ms)."""
    if name not in _DETECTORS:
        _cv2()
        from mraa.data.prepare.detectors import HaarUpperBodyDetector, HogPeopleDetector

        factory = {"face": lambda: HaarUpperBodyDetector(max_height=DETECT_SIZE), "hog": HogPeopleDetector}
        _DETECTORS[name] = factory[name]()
    return _DETECTORS[name]


def detect_faces(image: np.ndarray, min_size: int = 20) -> list[Box]:
    """Frontal (else profile) face boxes, most confident first (OpenCV Haar cascades, ``levelWeights``).

    Ranking by confidence rather than size matters: hard edges (a photo pasted on a plain canvas) can give
    a large weak false detection around a real face.
    """
    cv2 = _cv2()
    detector = _detector("face")
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    params = {
        "scaleFactor": 1.1,
        "minNeighbors": 5,
        "minSize": (min_size, min_size),
        "outputRejectLevels": True,
    }
    found: list[tuple[float, Box]] = []
    passes = [(detector.frontal, False)]
    if detector.profile is not None:
        passes += [(detector.profile, False), (detector.profile, True)]
    width = gray.shape[1]
    for cascade, mirrored in passes:
        if found and cascade is detector.profile:
            break
        rects, _, weights = cascade.detectMultiScale3(
            np.ascontiguousarray(gray[:, ::-1] if mirrored else gray), **params
        )
        for (x, y, w, h), weight in zip(rects, np.ravel(weights)):
            x = width - x - w if mirrored else x
            found.append((float(weight), Box(float(x), float(y), float(x + w), float(y + h))))
    faces: list[Box] = []
    for _, face in sorted(found, key=lambda item: -item[0]):
        if all(box_iou(face, kept) < 0.3 for kept in faces):
            faces.append(face)
    return faces


def detect_people(image: np.ndarray) -> list[Box]:
    """Whole standing people (OpenCV HOG), largest first; the boxes include HOG's window padding."""
    boxes = [b for b in _detector("hog").detect(image) if b.height > 0]
    return sorted(boxes, key=lambda b: -b.width * b.height)


def detect_foreground(image: np.ndarray) -> Box | None:
    """The box of what differs from a plain background (estimated on the image border), or None.

    Works for studio shots, cartoons and our synthetic figures on flat backgrounds; returns None when the
    border is not uniform (a real scene) or nothing / almost everything differs from it.
    """
    found = _foreground(image)
    return None if found is None else found[0]


def _foreground(image: np.ndarray) -> tuple[Box, Box] | None:
    """:func:`detect_foreground`'s box and the head of an upright figure in it: the top 1/7.5 of the box,
    as wide as the silhouette is there."""
    cv2 = _cv2()
    small, scale = _shrink(image, 256)
    pixels = small.astype(np.int16)
    border = np.concatenate([pixels[:2].reshape(-1, 3), pixels[-2:].reshape(-1, 3),
                             pixels[:, :2].reshape(-1, 3), pixels[:, -2:].reshape(-1, 3)])  # fmt: skip
    background = np.median(border, axis=0)
    border_spread = np.percentile(np.abs(border - background).max(axis=1), 90)
    if border_spread > 24:
        return None
    mask = (np.abs(pixels - background).max(axis=2) > max(30.0, 3 * border_spread)).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    if not 0.003 < mask.mean() < 0.8:
        return None
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = [i + 1 for i, a in enumerate(areas) if a >= 0.05 * areas.max()]
    x0 = min(stats[i, cv2.CC_STAT_LEFT] for i in keep)
    y0 = min(stats[i, cv2.CC_STAT_TOP] for i in keep)
    x1 = max(stats[i, cv2.CC_STAT_LEFT] + stats[i, cv2.CC_STAT_WIDTH] for i in keep)
    y1 = max(stats[i, cv2.CC_STAT_TOP] + stats[i, cv2.CC_STAT_HEIGHT] for i in keep)
    head_rows = mask[y0 : y0 + max(1, round((y1 - y0) / HEADS_PER_PERSON))]
    columns = np.nonzero(head_rows.any(axis=0))[0]
    hx0, hx1 = (columns[0], columns[-1] + 1) if len(columns) else (x0, x1)
    head = Box(float(hx0), float(y0), float(hx1), y0 + (y1 - y0) / HEADS_PER_PERSON)
    return _scaled(Box(float(x0), float(y0), float(x1), float(y1)), scale), _scaled(head, scale)


@dataclass
class Subject:
    """What was found: the subject's box, its head, the framing's square (before fitting into the image)
    and by which detector."""

    box: Box  # the detected face or person, in image pixels
    crop: Box  # the framing's square, before fitting into the image
    detector: str  # face, hog, foreground, face+proportions, pose
    head: Box | None = None  # the whole head with hair (estimated), kept whole by the crop


def _union(a: Box, b: Box) -> Box:
    return Box(min(a.x0, b.x0), min(a.y0, b.y0), max(a.x1, b.x1), max(a.y1, b.y1))


def _overlaps(head: Box, person: Box) -> bool:
    """Whether a face's head lies in the top half of a person box (the same person)."""
    cx, cy = head.center
    return person.x0 <= cx <= person.x1 and person.y0 - head.height <= cy <= person.y0 + person.height / 2


def find_subject(image: np.ndarray, framing: str) -> Subject | None:
    """Detect the subject for ``framing`` (``face``, ``upper_body``, ``full_body``) in a uint8 (H, W, 3)
    image; None when nothing is found. Detectors are tried in the order documented in docs/framing.md."""
    check_framing(framing)
    if framing == "none":
        return None
    from mraa.framing.body import body_subject

    small, scale = _shrink(image)
    faces = [_scaled(b, scale) for b in detect_faces(small)]
    head = head_from_face(faces[0]) if faces else None
    if framing == "face":
        if faces:
            return Subject(faces[0], head_rule_box(head, FACE_RULE), "face", head)
        body = find_subject(image, "upper_body")  # no face seen: the head of a body, when one is found
        if body is None or body.head is None:
            return None
        return Subject(body.head, head_rule_box(body.head, FACE_RULE), body.detector, body.head)
    posed = body_subject(image, framing, head)
    if posed is not None:
        return posed
    if framing == "upper_body" and faces:
        return Subject(faces[0], head_rule_box(head, UPPER_RULE), "face", head)
    # a plain background gives the tightest person box; HOG next (real scenes), then the face's proportions
    found = _foreground(image)
    person, how = (found[0], "foreground") if found else (None, "")
    if person is None and framing == "full_body":
        people = detect_people(small)
        person, how = (person_from_hog(_scaled(people[0], scale)), "hog") if people else (None, "")
    if person is not None and head is not None and _overlaps(head, person):
        person = _union(person, head)
    elif person is not None:
        head = found[1] if how == "foreground" else head_from_person(person)
    elif head is not None:
        person, how = person_from_head(head), "face+proportions"
    else:
        return None
    if framing == "full_body":
        return Subject(person, full_body_box(person), how, head)
    return Subject(person, head_rule_box(head, UPPER_RULE), how, head)
