"""Subject framing for real photos and videos: find the subject, choose crop boxes, paste results back.

Everything here returns boxes (``Box(x0, y0, x1, y1)`` in pixels of the full image), never crops, so
callers decide what to cut. The framings follow how the released models' training data was cropped
(numbers and sources in ``docs/framing.md``):

- ``face`` (vox256): a square around the face, the face a little above the centre;
- ``upper_body`` (ted384, ted-youtube384): a square from just above the head down to the waist;
- ``full_body`` (taichi256): a square around the whole person, 5% margin each side;
- ``none`` (mgif256, the shipped synthetic model): the image as it is.

Detectors are offline (OpenCV's Haar face cascade and HOG people detector, from the ``detect`` extra) plus
a plain-background silhouette finder. Driving videos get one box per shot, from a track whose centre and
size are smoothed over time. :func:`paste_back` composites an animated crop into the full-resolution
source with a feathered mask; pixels where the mask is zero are the source's, exactly.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from mraa.data.prepare.detectors import Box, box_iou
from mraa.errors import MRAAError

log = logging.getLogger(__name__)

FRAMINGS = ("face", "upper_body", "full_body", "none")
CROP_CHOICES = ("auto", "face", "upper-body", "full-body", "center", "none")
DETECT_SIZE = 480  # images are shrunk to at most this many pixels on their long side before detection
CUT_THRESHOLD = 30.0  # mean absolute difference (0..255) of 16x16 grey thumbnails that marks a camera cut


@dataclass(frozen=True)
class FramingRule:
    """How a square crop follows from a reference box (face or person).

    ``side`` is the crop's side in units of the reference box's height; the reference box's centre sits at
    ``center_y`` (fraction of the side, from the top) and horizontally in the middle.
    """

    side: float
    center_y: float = 0.5


# Haar face boxes run from the eyebrows to the chin; the official crops used larger S3FD boxes, unioned
# over a chunk and grown 10% per side. Our factors are calibrated estimates, see docs/framing.md.
FACE_RULE = FramingRule(side=2.0, center_y=0.45)
UPPER_FROM_FACE = FramingRule(side=5.0, center_y=0.22)
FULL_FROM_PERSON = FramingRule(side=1.1, center_y=0.5)  # TaiChi: person box + 5% per side, made square
UPPER_FROM_PERSON = FramingRule(side=0.6, center_y=0.42)  # top 60% of a standing person
PERSON_FROM_FACE = 8.8  # person height in Haar face heights (7.5 heads; a Haar box is ~0.85 of a head)
PERSON_FROM_HOG = 0.75  # HOG's 64x128 window holds a ~96 px person: the box is ~1/0.75 of the person


def framing_from_crop(choice: str, model_framing: str) -> str:
    """The framing for a ``--crop`` choice: ``auto`` is the model's; ``center`` and ``none`` pass through."""
    choice = choice.replace("-", "_")
    if choice == "auto":
        return model_framing
    if choice in ("center", "none") or choice in FRAMINGS:
        return choice
    raise MRAAError(f"unknown crop {choice!r}; choose from {', '.join(CROP_CHOICES)}")


def animator_framing(animator) -> str:
    """The framing a loaded model was trained with (its config's ``animate_params.framing``; none without one)."""
    return animator.config.animate_params.framing if animator.config is not None else "none"


def check_framing(framing: str) -> str:
    if framing not in FRAMINGS:
        raise MRAAError(f"framing must be one of {', '.join(FRAMINGS)}, got {framing!r}")
    return framing


# ----------------------------------------------------------------------------- detectors
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
    return _scaled(Box(float(x0), float(y0), float(x1), float(y1)), scale)


def _rule_box(reference: Box, rule: FramingRule) -> Box:
    side = rule.side * reference.height
    cx = (reference.x0 + reference.x1) / 2.0
    cy = (reference.y0 + reference.y1) / 2.0 + (0.5 - rule.center_y) * side
    return Box(cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)


def _person_from_face(face: Box) -> Box:
    height = PERSON_FROM_FACE * face.height
    cx, top = (face.x0 + face.x1) / 2.0, face.y0 - 0.2 * face.height
    return Box(cx - 0.2 * height, top, cx + 0.2 * height, top + height)


def _person_from_hog(box: Box) -> Box:
    cx, cy = box.center
    h = PERSON_FROM_HOG * box.height
    w = PERSON_FROM_HOG * box.width
    return Box(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)


def _square(box: Box) -> Box:
    """The square with the box's centre and its longer side (aspect-preserving growth, as crop-video.py)."""
    cx, cy = box.center
    half = max(box.width, box.height) / 2.0
    return Box(cx - half, cy - half, cx + half, cy + half)


@dataclass
class Subject:
    """What was found: the subject's box, the unclamped square crop it asks for, and by which detector."""

    box: Box  # the detected face or person, in image pixels
    crop: Box  # the framing's square, before fitting into the image
    detector: str  # face, hog, foreground, face+proportions


def find_subject(image: np.ndarray, framing: str) -> Subject | None:
    """Detect the subject for ``framing`` (``face``, ``upper_body``, ``full_body``) in a uint8 (H, W, 3)
    image; None when nothing is found. Detectors are tried in the order documented in docs/framing.md."""
    check_framing(framing)
    if framing == "none":
        return None
    small, scale = _shrink(image)
    faces = [_scaled(b, scale) for b in detect_faces(small)]
    if framing == "face":
        return Subject(faces[0], _rule_box(faces[0], FACE_RULE), "face") if faces else None
    if framing == "upper_body" and faces:
        return Subject(faces[0], _rule_box(faces[0], UPPER_FROM_FACE), "face")
    # a plain background gives the tightest person box; HOG next (real scenes), then the face's proportions
    person, how = detect_foreground(image), "foreground"
    if person is None and framing == "full_body":
        people = detect_people(small)
        person, how = (_person_from_hog(_scaled(people[0], scale)), "hog") if people else (None, "")
    if person is None and faces:
        person, how = _person_from_face(faces[0]), "face+proportions"
    if person is None:
        return None
    if framing == "full_body":
        return Subject(person, _square(_rule_box(person, FULL_FROM_PERSON)), how)
    upper = Box(person.x0, person.y0, person.x1, person.y0 + UPPER_FROM_PERSON.side * person.height)
    side = max(upper.height, upper.width * 1.05)
    return Subject(
        person, _rule_box(Box(upper.x0, upper.y0, upper.x1, upper.y0 + side), FramingRule(1.0)), how
    )


# ----------------------------------------------------------------------------- boxes in the image
def fit_box(box: Box, width: int, height: int, aspect: float = 1.0) -> Box:
    """An integer box of the given aspect (w / h) like ``box``, moved (not padded) to lie in the image;
    shrunk about its centre when the image is too small for it (the official crops never pad)."""
    h = max(box.height, box.width / aspect)
    h = min(h, height, width / aspect)
    w = h * aspect
    cx, cy = box.center
    x0 = min(max(cx - w / 2, 0.0), width - w)
    y0 = min(max(cy - h / 2, 0.0), height - h)
    x0, y0 = int(round(x0)), int(round(y0))
    w, h = max(1, int(round(w))), max(1, int(round(h)))
    x0, y0 = min(x0, width - w), min(y0, height - h)
    return Box(float(x0), float(y0), float(x0 + w), float(y0 + h))


def center_box(width: int, height: int, aspect: float = 1.0) -> Box:
    """The largest centred box of the given aspect (what ``--crop center`` takes)."""
    h = min(float(height), width / aspect)
    w = h * aspect
    w, h = int(round(w)), int(round(h))
    x0, y0 = (width - w) // 2, (height - h) // 2
    return Box(float(x0), float(y0), float(x0 + w), float(y0 + h))


def outside_fraction(box: Box, width: int, height: int) -> float:
    """Share of ``box``'s area that lies outside a ``width`` x ``height`` image."""
    inside = box.clip(width, height)
    area = box.width * box.height
    return 0.0 if area <= 0 else 1.0 - inside.width * inside.height / area


@dataclass
class SourceFraming:
    """The source's crop: ``box`` in image pixels and what decided it (``how``: a detector, center, none)."""

    box: Box
    how: str
    subject: Box | None = None
    messages: list[str] = field(default_factory=list)


def frame_source(image: np.ndarray, crop: str, aspect: float = 1.0) -> SourceFraming:
    """Choose the source crop for a framing (``face``, ``upper_body``, ``full_body``), ``center`` or ``none``.

    No subject found: a centre crop, with one message saying so.
    """
    height, width = image.shape[:2]
    if crop == "none":
        return SourceFraming(Box(0.0, 0.0, float(width), float(height)), "none")
    if crop == "center":
        return SourceFraming(center_box(width, height, aspect), "center")
    subject = find_subject(image, crop)
    if subject is None:
        what = crop.replace("_", " ")
        return SourceFraming(
            center_box(width, height, aspect),
            "center",
            None,
            [f"no {what} found in the source: using a centre crop"],
        )
    messages = []
    if outside_fraction(subject.crop, width, height) > 0.2:
        messages.append(
            f"the source's {crop.replace('_', ' ')} is close to the image border: the crop is shifted"
        )
    return SourceFraming(
        fit_box(subject.crop, width, height, aspect), subject.detector, subject.box, messages
    )


# ----------------------------------------------------------------------------- driving tracks
def _thumb(frame: np.ndarray) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(frame).convert("L").resize((16, 16), Image.BILINEAR), np.float32)


@dataclass
class DrivingTrack:
    """Per-frame subject crops of a driving video (None where not looked at or not found) and its cuts."""

    width: int
    height: int
    crops: list[Box | None] = field(default_factory=list)
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
        result.boxes.append(fit_box(union, w, h, aspect))
        result.how.append("track")
        result.messages += _leaving_messages(track, start, end, smoothed)
    return result


def _leaving_messages(track: DrivingTrack, start: int, end: int, smoothed: list[Box]) -> list[str]:
    """One warning when the subject leaves the frame (its crop mostly outside, or lost after being seen)."""
    for i, box in enumerate(smoothed):
        if outside_fraction(box, track.width, track.height) > 0.25:
            return [f"the subject leaves the frame around driving frame {start + i}: the crop may cut it off"]
    looked = list(track.crops[start:end])
    seen = [i for i, c in enumerate(looked) if c is not None]
    if seen and seen[-1] < len(looked) - max(5, len(looked) // 5):
        return [f"the subject is lost after driving frame {start + seen[-1]}: it may have left the frame"]
    return []


# ----------------------------------------------------------------------------- crops and paste-back
def crop_resize(image: np.ndarray, box: Box, size: tuple[int, int]) -> np.ndarray:
    """Cut ``box`` (integer pixels inside the image) out of ``image`` and resize it to ``size`` (H, W)."""
    from mraa.data.video_io import fit_frame

    x0, y0, x1, y1 = (int(round(v)) for v in box)
    return fit_frame(np.ascontiguousarray(image[y0:y1, x0:x1]), size)


def even_size(width: int, height: int) -> tuple[int, int]:
    """The largest even (width, height) not above the given one (H.264 with yuv420p needs even sizes)."""
    return max(2, width - width % 2), max(2, height - height % 2)


def feather_mask(height: int, width: int, feather: float = 0.08) -> np.ndarray:
    """(H, W) float32 mask: 1 inside, falling to 0 at the border over ``feather`` of the shorter side
    (a raised-cosine ramp), so a pasted crop has no visible seam."""
    ramp = max(1.0, feather * min(height, width))

    def profile(n: int) -> np.ndarray:
        distance = np.minimum(np.arange(n) + 0.5, n - 0.5 - np.arange(n))  # to the nearest edge
        t = np.clip(distance / ramp, 0.0, 1.0)
        return (0.5 - 0.5 * np.cos(np.pi * t)).astype(np.float32)

    return np.minimum(profile(height)[:, None], profile(width)[None, :])


def region_mask(heatmaps: np.ndarray, spread: float = 0.15) -> np.ndarray:
    """A soft subject mask (h, w) from region heatmaps (K, h, w): each region scaled to its peak, the max
    over regions, blurred by ``spread`` of the size so the mask covers the whole subject."""
    from PIL import Image, ImageFilter

    peaks = heatmaps.reshape(len(heatmaps), -1).max(axis=1).clip(min=1e-12)
    value = np.clip((heatmaps / peaks[:, None, None]).max(axis=0) / 0.2, 0.0, 1.0)
    image = Image.fromarray((value * 255).astype(np.uint8))
    grown = image.filter(ImageFilter.MaxFilter(5)).filter(
        ImageFilter.GaussianBlur(spread * max(value.shape) / 2)
    )
    return np.clip(np.asarray(grown, np.float32) / 255.0 * 1.5, 0.0, 1.0)


def paste_back(
    source: np.ndarray, crop: np.ndarray, box: Box, mask: np.ndarray | None = None, feather: float = 0.08
) -> np.ndarray:
    """Composite an animated ``crop`` (h, w, 3 uint8, any size) into a copy of ``source`` at ``box``.

    The crop is resized to the box; ``mask`` (any size, values in [0, 1]) narrows the feathered box mask.
    Pixels where the final mask is 0 (everything outside the box, and its outer rim) equal the source's.
    """
    from PIL import Image

    x0, y0, x1, y1 = (int(round(v)) for v in box)
    bw, bh = x1 - x0, y1 - y0
    if bw <= 0 or bh <= 0 or x0 < 0 or y0 < 0 or x1 > source.shape[1] or y1 > source.shape[0]:
        raise MRAAError(
            f"paste-back box {tuple(box)} is not inside the {source.shape[1]}x{source.shape[0]} image"
        )
    patch = np.asarray(Image.fromarray(crop).resize((bw, bh), Image.BICUBIC), np.float32)
    weight = feather_mask(bh, bw, feather)
    if mask is not None:
        resized = Image.fromarray((np.clip(mask, 0, 1) * 255).astype(np.uint8)).resize(
            (bw, bh), Image.BILINEAR
        )
        weight = weight * (np.asarray(resized, np.float32) / 255.0)
    out = source.copy()
    region = out[y0:y1, x0:x1]
    # where the weight is 0 the blend is the source pixel exactly (integers are exact in float32), so it
    # rounds back to it: no np.where needed
    blended = region * (1.0 - weight[..., None]) + patch * weight[..., None]
    region[...] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
    return out


# ----------------------------------------------------------------------------- best reference frame
def normalized_shifts(shift: np.ndarray) -> np.ndarray:
    """Region centres (..., K, 2) centred on their mean and scaled by sqrt(area of their convex hull),
    the normalisation FOMM's --find_best_frame applies to face landmarks."""
    import torch

    from mraa.geometry import convex_hull_area

    centred = shift - shift.mean(axis=-2, keepdims=True)
    flat = centred.reshape(-1, *shift.shape[-2:])
    areas = np.array([convex_hull_area(torch.from_numpy(np.asarray(s, np.float64))) for s in flat])
    scale = np.sqrt(np.clip(areas, 1e-12, None)).reshape(*shift.shape[:-2], 1, 1)
    return centred / scale


def best_frame(source_shift: np.ndarray, driving_shifts: np.ndarray) -> int:
    """Index of the driving frame whose normalised region centres (T, K, 2) are closest to the source's
    (K, 2) in squared distance: the relative-mode reference that needs the least motion transfer."""
    source = normalized_shifts(np.asarray(source_shift, np.float64))
    driving = normalized_shifts(np.asarray(driving_shifts, np.float64))
    distances = ((driving - source[None]) ** 2).sum(axis=(1, 2))
    return int(np.argmin(distances))


# ----------------------------------------------------------------------------- a whole plan
@dataclass
class CropPlan:
    """The crops for one source image and one driving video (what ``mraa crop`` prints)."""

    crop: str  # face, upper_body, full_body, center or none
    source_size: tuple[int, int]  # (W, H)
    source: SourceFraming
    driving_size: tuple[int, int]  # (W, H)
    driving: DrivingFraming
    preview_frames: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def messages(self) -> list[str]:
        return [*self.source.messages, *self.driving.messages]

    def as_dict(self) -> dict:
        def box(b: Box | None) -> list[float] | None:
            return None if b is None else [round(float(v), 1) for v in b]

        shots = [
            {"start": a, "end": b, "box": box(bx), "how": how}
            for (a, b), bx, how in zip(self.driving.shots, self.driving.boxes, self.driving.how)
        ]
        return {
            "crop": self.crop,
            "source": {
                "size": list(self.source_size),
                "box": box(self.source.box),
                "how": self.source.how,
                "subject": box(self.source.subject),
            },  # fmt: skip
            "driving": {
                "size": list(self.driving_size),
                "num_frames": self.driving.shots[-1][1],
                "shots": shots,
            },
            "messages": self.messages,
        }


def _kept(frames: Iterable[np.ndarray], store: dict[int, np.ndarray], cuts: list[int], limit: int = 4):
    """Pass frames through, keeping the first, the first of each new shot (up to ``limit``) and the last."""
    last = None
    for index, frame in enumerate(frames):
        if index == 0 or (len(store) < limit and cuts and cuts[-1] == index - 1):
            store[index] = frame
        last = (index, frame)
        yield frame
    if last is not None:
        store[last[0]] = last[1]


def frame_driving_frames(
    frames: Iterable[np.ndarray], crop: str, aspect: float = 1.0, fps: float = 25.0
) -> tuple[DrivingFraming, tuple[int, int], dict[int, np.ndarray]]:
    """One box per shot of a driving clip, its (W, H), and a few frames kept for a preview.

    The subject is looked for about 5 times a second and the track smoothed over ~0.25 s.
    """
    every = max(1, round(fps / 5))
    store: dict[int, np.ndarray] = {}
    cuts: list[int] = []
    track = track_driving(_kept(frames, store, cuts), "none" if crop == "center" else crop, every, cuts)
    boxes = frame_driving(track, crop, aspect, sigma=max(1.0, fps / 8 / every))
    return boxes, (track.width, track.height), store


def plan_crops(
    source: np.ndarray, driving: Iterable[np.ndarray], crop: str, aspect: float = 1.0, fps: float = 25.0
) -> CropPlan:
    """Source and driving crop boxes for ``crop`` (a framing, ``center`` or ``none``); one box per shot."""
    if crop not in (*FRAMINGS, "center"):
        raise MRAAError(f"unknown crop {crop!r}; choose from {', '.join((*FRAMINGS, 'center'))}")
    from mraa.data.video_io import check_image_size

    check_image_size(source, "the source image")  # the rule animate applies: no 1x1 source
    source_framing = frame_source(source, crop, aspect)
    boxes, size, store = frame_driving_frames(driving, crop, aspect, fps)
    return CropPlan(crop, (source.shape[1], source.shape[0]), source_framing, size, boxes, store)


def draw_crop_preview(plan: CropPlan, source: np.ndarray, height: int = 256) -> np.ndarray:
    """The source and a few driving frames side by side, each with its crop box drawn (uint8 image)."""
    from PIL import Image, ImageDraw

    panels = [(source, plan.source.box, (255, 64, 64))]
    panels += [
        (frame, plan.driving.box_at(i), (64, 200, 255)) for i, frame in sorted(plan.preview_frames.items())
    ]
    images = []
    for image, box, color in panels:
        scale = height / image.shape[0]
        shown = Image.fromarray(image).resize((max(1, round(image.shape[1] * scale)), height), Image.BILINEAR)
        draw = ImageDraw.Draw(shown)
        draw.rectangle([v * scale for v in box], outline=color, width=max(2, height // 128))
        images.append(np.asarray(shown))
    gap = np.full((height, 4, 3), 255, np.uint8)
    return np.concatenate([part for image in images for part in (image, gap)][:-1], axis=1)


# ----------------------------------------------------------------------------- animation helpers
def parse_output_size(value: str | None) -> tuple[int, int] | None:
    """``WxH`` (e.g. ``1280x720``) -> (W, H), rounded down to even numbers; None stays None."""
    if value is None or value == "":
        return None
    try:
        width, height = (int(v) for v in str(value).lower().split("x"))
    except ValueError:
        raise MRAAError(f"output size must be WIDTHxHEIGHT, e.g. 1280x720, got {value!r}") from None
    if width < 2 or height < 2 or width > 8192 or height > 8192:
        raise MRAAError(f"output size must be between 2x2 and 8192x8192, got {value!r}")
    return even_size(width, height)


class Compositor:
    """Turn animated crops into output frames: pasted back into the source (``paste``), or just resized.

    The pasted output is the source trimmed to even dimensions (one row/column off an odd side, so pixels
    keep their places) and then, when ``output_size`` is given, resized to it.

    Args:
        source: the full-resolution source image (H, W, 3) uint8.
        box: the source's crop box (where the animated crop goes).
        paste: composite into the source; otherwise the animated crop itself is the frame.
        output_size: (W, H) of the written frames (default: the source's even size when pasting, else the
            model's size).
        feather: width of the box mask's soft edge, as a fraction of the box's shorter side.
    """

    def __init__(
        self,
        source: np.ndarray,
        box: Box,
        paste: bool = True,
        output_size: tuple[int, int] | None = None,
        feather: float = 0.08,
    ) -> None:
        width, height = even_size(source.shape[1], source.shape[0])
        self.source = np.ascontiguousarray(source[:height, :width])
        self.box = fit_box(box, width, height, box.width / box.height) if paste else box
        self.paste = paste
        self.output_size = output_size
        self.feather = feather

    def __call__(self, crop: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        from PIL import Image

        frame = paste_back(self.source, crop, self.box, mask, self.feather) if self.paste else crop
        if self.output_size is not None and (frame.shape[1], frame.shape[0]) != tuple(self.output_size):
            frame = np.asarray(Image.fromarray(frame).resize(tuple(self.output_size), Image.BICUBIC))
        return frame


def heatmap_masks(animator, source_heatmap, predictions) -> np.ndarray:
    """Subject masks (B, h, w) for paste-back narrowed to the subject: the region heatmaps of the source
    and of each animated frame (so both where the subject was and where it moved to are replaced)."""
    heat = animator.region_params(predictions)["heatmap"].float().cpu().numpy()  # (B, K, h, w)
    source = region_mask(source_heatmap.float().cpu().numpy()[0])  # (h, w), the same for every frame
    return np.stack([np.maximum(source, region_mask(h)) for h in heat])


def plan_for_files(
    source: np.ndarray,
    driving: str | os.PathLike,
    crop: str,
    aspect: float = 1.0,
    max_frames: int | None = None,
) -> CropPlan:
    """:func:`plan_crops` for a driving video file (its first ``max_frames`` frames when given)."""
    from mraa.data.video_io import iter_video, probe_video

    fps = probe_video(driving).fps
    return plan_crops(source, itertools.islice(iter_video(driving), max_frames), crop, aspect, fps)


def frame_driving_file(
    driving: str | os.PathLike, crop: str, aspect: float = 1.0, max_frames: int | None = None
) -> DrivingFraming:
    """The per-shot boxes of a driving video file alone (no source)."""
    from mraa.data.video_io import iter_video, probe_video

    fps = probe_video(driving).fps
    return frame_driving_frames(itertools.islice(iter_video(driving), max_frames), crop, aspect, fps)[0]


def framed_frames(
    frames: Iterable[np.ndarray], boxes: DrivingFraming | None, size: tuple[int, int], crop: str = "none"
) -> Iterator[np.ndarray]:
    """Driving frames cut to their shot's box and resized to ``size`` (H, W); without boxes, ``center``
    takes the centred crop and anything else resizes the whole frame."""
    from mraa.data.video_io import fit_frame

    for index, frame in enumerate(frames):
        if boxes is None:
            yield fit_frame(frame, size, crop == "center")
        else:
            yield crop_resize(frame, boxes.box_at(index), size)


SYNTHETIC_MODEL_NOTE = (
    "note: the shipped model was trained only on synthetic figures (mraa synth), so on a photo it "
    "demonstrates the method rather than giving a good result; for real faces, bodies or talks use an "
    "official checkpoint, e.g. --checkpoint vox256.pth --config configs/vox256.yaml (README: official "
    "checkpoints)"
)


# ----------------------------------------------------------------------------- a framed animation run
PASTE_MODES = ("box", "regions")


@dataclass
class FramingOptions:
    """What ``mraa animate`` asks of the framing: ``crop`` (a :data:`CROP_CHOICES` value), ``paste_back``
    (None, ``box`` or ``regions``), ``output_size`` (W, H) and ``best_frame``."""

    crop: str = "none"
    paste_back: str | None = None
    output_size: tuple[int, int] | None = None
    best_frame: bool = False

    def __post_init__(self) -> None:
        self.crop = self.crop.replace("_", "-") if self.crop else "none"
        if self.crop not in CROP_CHOICES:
            raise MRAAError(f"unknown crop {self.crop!r}; choose from {', '.join(CROP_CHOICES)}")
        if self.paste_back not in (None, *PASTE_MODES):
            raise MRAAError(f"paste-back must be box or regions, got {self.paste_back!r}")

    @property
    def active(self) -> bool:
        """Whether anything differs from resizing the whole inputs."""
        return self.crop != "none" or bool(self.paste_back) or self.output_size is not None or self.best_frame


class FramedRun:
    """Source and driving framed for one animation, and the output frames made from the animated crops.

    Args:
        animator: the model (its size and framing, and its region predictor for ``regions`` paste-back).
        source: the full-resolution source image (H, W, 3) uint8.
        driving: the driving video path.
        options: see :class:`FramingOptions`.
        max_frames: only plan for the first frames (None: all).
    """

    def __init__(
        self, animator, source: np.ndarray, driving, options: FramingOptions, max_frames=None
    ) -> None:
        model_framing = animator_framing(animator)
        self.animator = animator
        self.options = options
        self.size = animator.image_size
        self.crop = framing_from_crop(options.crop, model_framing)
        self.plan = plan_for_files(source, driving, self.crop, self.size[1] / self.size[0], max_frames)
        self.driving = driving
        self.source = source
        self.source_crop = crop_resize(
            source, self.plan.source.box, self.size
        )  # (h, w, 3) at the model's size
        paste = options.paste_back is not None
        needs = paste or options.output_size is not None
        self.compositor = (
            Compositor(source, self.plan.source.box, paste, options.output_size) if needs else None
        )
        self._source_heatmap = None
        for message in self.plan.messages:
            log.warning("%s", message)
        log.info("crop %s: source box %s, driving shots %s", self.crop, tuple(self.plan.source.box),
                 len(self.plan.driving.shots))  # fmt: skip

    @property
    def messages(self) -> list[str]:
        return self.plan.messages

    def write_preview(self, path: str | os.PathLike | None) -> None:
        """Draw the boxes on the source and a few driving frames into ``path`` (nothing when None)."""
        if path is not None:
            from mraa.data.video_io import write_image

            write_image(path, draw_crop_preview(self.plan, self.source))

    def driving_frames(self) -> Iterator[np.ndarray]:
        """The driving frames cut to their shot's box, at the model's size (uint8)."""
        from mraa.data.video_io import iter_video

        return framed_frames(iter_video(self.driving), self.plan.driving, self.size)

    def output_frames(self, predictions) -> np.ndarray:
        """Animated crops (B, 3, h, w) in [0, 1] -> output frames (B, H, W, 3) uint8."""
        from mraa.inputs import uint8_to_batch
        from mraa.visualize import tensor_to_uint8

        images = tensor_to_uint8(predictions.float().cpu())
        if self.compositor is None:
            return images
        masks = [None] * len(images)
        if self.options.paste_back == "regions":
            if self._source_heatmap is None:
                self._source_heatmap = self.animator.region_params(uint8_to_batch(self.source_crop))[
                    "heatmap"
                ]
            masks = heatmap_masks(self.animator, self._source_heatmap, predictions)
        return np.stack([self.compositor(image, mask) for image, mask in zip(images, masks)])

    def batches(self, state, frames, mode, background=None, progress=False, total=None, smooth=None):
        """Animate the framed driving ``frames`` (batches at the model's size) and yield output batches."""
        import torch

        if self.options.best_frame:
            if mode != "relative":
                log.warning("--best-frame changes only mode relative (the reference frame), not %s", mode)
            driving = torch.cat([batch.reshape(-1, *batch.shape[-3:]) for batch in frames])
            animated = best_frame_batches(self.animator, state, driving, mode, background, smooth, progress)
        else:
            animated = self.animator.animate_iter(state, frames, mode, background, progress, total, smooth)
        return self.wrap(animated)

    def wrap(self, batches):
        """Animated batches with ``prediction`` replaced by the output frames (float, any size)."""
        import dataclasses

        from mraa.visualize import uint8_to_tensor

        for batch in batches:
            if self.compositor is None:
                yield batch
            else:
                yield dataclasses.replace(
                    batch, prediction=uint8_to_tensor(self.output_frames(batch.prediction))
                )


def crop_option(crop: bool | str | None) -> str:
    """A ``crop`` argument as a :data:`CROP_CHOICES` value (True/False, as before: center/none)."""
    if crop is None or crop is False:
        return "none"
    if crop is True:
        return "center"
    value = str(crop).strip().lower().replace("_", "-")
    if value in ("1", "true", "yes", "y"):
        return "center"
    if value in ("0", "false", "no", "n", ""):
        return "none"
    if value not in CROP_CHOICES:
        raise MRAAError(f"unknown crop {crop!r}; choose from {', '.join(CROP_CHOICES)}")
    return value


def needs_framing(
    animator, crop: bool | str = "none", paste_back: str | bool | None = None,
    output_size: str | tuple[int, int] | None = None, best_frame: bool = False, preview: bool = False,
) -> tuple[FramingOptions | None, bool]:  # fmt: skip
    """The options when they need a :class:`FramedRun` (a subject crop, paste-back, an output size, the best
    frame, a preview), else None and whether to centre-crop (which plain resizing does by itself)."""
    paste = "box" if paste_back is True else (paste_back or None)
    size = parse_output_size(output_size) if isinstance(output_size, str) else output_size
    options = FramingOptions(crop_option(crop), paste, size, best_frame)
    model_framing = animator_framing(animator)
    resolved = framing_from_crop(options.crop, model_framing)
    if options.crop == "auto" and resolved not in ("none", "center") and not _has_cv2():
        log.warning("OpenCV is not installed, so the %s framing falls back to a centre crop: "
                    "pip install 'mraa[detect]'", resolved.replace("_", " "))  # fmt: skip
        options.crop = resolved = "center"
    if resolved in ("none", "center") and not (paste or size or best_frame or preview):
        return None, resolved == "center"
    return options, False


def prepare_framing(
    animator, source, driving, crop: bool | str = "none", paste_back: str | bool | None = None,
    output_size: str | tuple[int, int] | None = None, best_frame: bool = False, preview=None,
) -> tuple[FramedRun | None, bool]:  # fmt: skip
    """A :class:`FramedRun` for ``source`` and ``driving`` when :func:`needs_framing`, else (None, centre?).
    ``preview``: a path for a picture of the boxes (written here)."""
    options, center = needs_framing(animator, crop, paste_back, output_size, best_frame, preview is not None)
    if options is None:
        return None, center
    if not isinstance(driving, (str, os.PathLike)):
        raise MRAAError(
            "framing (subject crops, paste-back, output size, best frame) needs a driving video file"
        )
    if isinstance(source, (str, os.PathLike)):
        from mraa.data.video_io import read_image

        source = read_image(source)
    if not (isinstance(source, np.ndarray) and source.ndim == 3 and source.dtype == np.uint8):
        raise MRAAError("framing needs the source image itself: a path or a uint8 (H, W, 3) array")
    framed = FramedRun(animator, source, driving, options)
    framed.write_preview(preview)
    return framed, False


def _cat_flip(parts: list, skip_first: bool = True):
    """Concatenate tensors (or dicts of tensors) of several batches along frames and reverse them."""
    import torch

    if isinstance(parts[0], dict):
        return {k: _cat_flip([p[k] for p in parts], skip_first) for k in parts[0]}
    if parts[0] is None:
        return None
    joined = torch.cat(parts).flip(0)
    return joined[:-1] if skip_first else joined  # the reference frame (first animated) comes last


def best_frame_batches(animator, state, driving, mode, background=None, smooth=None, progress=False):
    """Animated batches for ``driving`` (T, C, H, W) in frame order, with the best driving frame as the
    relative-mode reference (:func:`best_frame`): frames after it animated forwards from it, frames before
    it backwards from it. Background schedules count frames from the reference."""
    import dataclasses

    import torch

    step = animator.batch_size
    shifts = torch.cat([animator.region_params(driving[i : i + step])["shift"].float().cpu()
                        for i in range(0, len(driving), step)])  # fmt: skip
    best = best_frame(state.region_params["shift"][0].float().cpu().numpy(), shifts.numpy())
    log.info("best reference frame: driving frame %d", best)
    if best > 0:
        backward = list(
            animator.animate_iter(state, driving[: best + 1].flip(0), mode, background, smooth=smooth)
        )
        first = backward[0]
        yield dataclasses.replace(
            first,
            prediction=_cat_flip([b.prediction for b in backward]),
            driving_region_params=_cat_flip([b.driving_region_params for b in backward]),
            region_params=_cat_flip([b.region_params for b in backward]),
            frame_indices=torch.arange(best),
            driving=_cat_flip([b.driving for b in backward]) if first.driving is not None else None,
        )
    for batch in animator.animate_iter(
        state, driving[best:], mode, background, progress, len(driving) - best, smooth
    ):
        yield dataclasses.replace(batch, frame_indices=batch.frame_indices + best)
