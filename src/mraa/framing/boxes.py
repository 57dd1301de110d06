"""Framing rules: where the square crop goes for a head / person, and how it is fitted into the image
without ever cutting the head (numbers and their sources: docs/framing.md). The box geometry itself
(:class:`Box`, fit, square, contains) lives in :mod:`mraa.boxes` and is re-exported here."""

from __future__ import annotations

from dataclasses import dataclass

from mraa.boxes import Box, center_box, contains, fit_box, outside_fraction, square
from mraa.errors import MRAAError

__all__ = [
    "CROP_CHOICES", "FACE_RULE", "FITS", "FRAMINGS", "FULL_MARGIN", "HEADROOM", "MIN_SIDE", "SIDE_ROOM",
    "UPPER_RULE", "Box", "FramingRule", "animator_framing", "center_box", "check_framing", "contains",
    "fit_box", "framing_from_crop", "full_body_box", "head_from_face", "head_from_person", "head_rule_box",
    "outside_fraction", "person_from_head", "person_from_hog", "place_box", "square",
]  # fmt: skip

FRAMINGS = ("face", "upper_body", "full_body", "none")
CROP_CHOICES = ("auto", "face", "upper-body", "full-body", "center", "none")


@dataclass(frozen=True)
class FramingRule:
    """A square crop in units of the head's height (the head with its hair).

    ``side``: the crop's side; ``headroom``: the gap above the head's top, both in head heights. The head is
    centred horizontally; ``side`` None means "from the person box" (full body).
    """

    side: float
    headroom: float


# VoxCeleb: crop_vox.py grows the face tube 10% per side (x1.2); applied to the whole head so hair stays in.
FACE_RULE = FramingRule(side=1.25, headroom=0.08)
# TED: a square from above the head to mid-torso, the head in the upper third (supplementary Sec. 5 and
# ted-metadata.csv, see docs/framing.md): 3.6 heads, the head spans 0.07-0.35 of the side.
UPPER_RULE = FramingRule(side=3.6, headroom=0.25)
FULL_MARGIN = 0.05  # TaiChi: crop_taichi.py's --increase 0.05 on each side of the person box
HEADROOM = 0.15  # the least room kept above the head's top, in head heights, when the crop must give way
SIDE_ROOM = 0.1  # and beside it, in head widths
MIN_SIDE = 32.0  # the smallest crop (pixels): a tinier one is only blown up into a blur
HEADS_PER_PERSON = 7.5  # an adult standing is ~7.5 heads tall (the artists' canon)
# a Haar face box runs from the eyebrows to the chin; the whole head with hair around it, in Haar heights
# (top) / widths (sides), measured on the labelled photos in tests/data/photos (docs/framing.md)
HEAD_FROM_HAAR = {"top": 0.6, "bottom": 0.3, "side": 0.3}
PERSON_FROM_HOG = 0.75  # HOG's 64x128 window holds a ~96 px person: the box is ~1/0.75 of the person


def framing_from_crop(choice: str, model_framing: str, source_size: tuple[int, int] | None = None) -> str:
    """The framing for a ``--crop`` choice: ``auto`` is the model's, except that a model without a framing
    (``none``) gets ``center`` for a source (W, H) that is not square, so a photo is not squashed."""
    choice = choice.replace("-", "_")
    if choice == "auto":
        if model_framing == "none" and source_size is not None and not _squareish(*source_size):
            return "center"
        return model_framing
    if choice in ("center", "none") or choice in FRAMINGS:
        return choice
    raise MRAAError(f"unknown crop {choice!r}; choose from {', '.join(CROP_CHOICES)}")


def _squareish(width: int, height: int, tolerance: float = 0.05) -> bool:
    return abs(width / max(1, height) - 1.0) <= tolerance


def animator_framing(animator) -> str:
    """The framing a loaded model was trained with (its config's ``animate_params.framing``; none without one)."""
    return animator.config.animate_params.framing if animator.config is not None else "none"


def check_framing(framing: str) -> str:
    if framing not in FRAMINGS:
        raise MRAAError(f"framing must be one of {', '.join(FRAMINGS)}, got {framing!r}")
    return framing


# ----------------------------------------------------------------------------- heads and people
def head_from_face(face: Box) -> Box:
    """The whole head with hair around a Haar face box (eyebrows to chin)."""
    h, w = face.height, face.width
    return Box(
        face.x0 - HEAD_FROM_HAAR["side"] * w,
        face.y0 - HEAD_FROM_HAAR["top"] * h,
        face.x1 + HEAD_FROM_HAAR["side"] * w,
        face.y1 + HEAD_FROM_HAAR["bottom"] * h,
    )


def head_from_person(person: Box) -> Box:
    """The head of an upright person box: its top 1/7.5, over the box's whole width (not knowing where)."""
    return Box(person.x0, person.y0, person.x1, person.y0 + person.height / HEADS_PER_PERSON)


def person_from_head(head: Box) -> Box:
    """An upright standing adult below ``head``: 7.5 heads tall, 2.5 heads wide (shoulders and arms)."""
    cx, height = (head.x0 + head.x1) / 2.0, HEADS_PER_PERSON * head.height
    return Box(cx - 1.25 * head.height, head.y0, cx + 1.25 * head.height, head.y0 + height)


def person_from_hog(box: Box) -> Box:
    cx, cy = box.center
    h, w = PERSON_FROM_HOG * box.height, PERSON_FROM_HOG * box.width
    return Box(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)


def head_rule_box(head: Box, rule: FramingRule) -> Box:
    """The square ``rule`` asks for around ``head``."""
    side = rule.side * head.height
    cx = (head.x0 + head.x1) / 2.0
    top = head.y0 - rule.headroom * head.height
    return Box(cx - side / 2, top, cx + side / 2, top + side)


def full_body_box(person: Box) -> Box:
    """TaiChi: the person box grown by 5% per side and made square about its centre."""
    grown = Box(
        person.x0 - FULL_MARGIN * person.width,
        person.y0 - FULL_MARGIN * person.height,
        person.x1 + FULL_MARGIN * person.width,
        person.y1 + FULL_MARGIN * person.height,
    )
    return square(grown)


FITS = ("inside", "shifted", "lower part given up", "padded")


def _axis(start: float, size: float, keep0: float, keep1: float, limit: float) -> float:
    """The start of a ``size`` span near ``start`` that holds [keep0, keep1] and lies in [0, limit] when
    it can (when the span is longer than ``limit`` it is centred on the kept part: padding)."""
    start = min(max(start, keep1 - size), keep0)
    if size <= limit:
        return min(max(start, 0.0), limit - size)
    return (keep0 + keep1) / 2.0 - size / 2.0


def place_box(ideal: Box, head: Box | None, width: int, height: int, aspect: float = 1.0) -> tuple[Box, str]:
    """Fit the framing's ``ideal`` box (any size, anywhere) into a ``width`` x ``height`` image, keeping
    ``head`` (with :data:`HEADROOM` above it, as far as the image has it) whole.

    The box keeps its top and its horizontal centre when it can; when it is larger than the image it is
    shrunk from the bottom (the lower body is given up, never the head); when even the head does not fit
    in the image's largest box of that aspect, the box extends past the border (to be padded). Returns an
    integer box and how it was fitted: one of :data:`FITS`.
    """
    h = max(ideal.height, ideal.width / aspect)
    top, cx = ideal.y0, (ideal.x0 + ideal.x1) / 2.0
    if head is None:
        head = Box(cx, ideal.y0 + 0.5 * h, cx, ideal.y0 + 0.5 * h)  # nothing to keep but the centre
        room = head
    else:
        side = SIDE_ROOM * head.width
        room = Box(head.x0 - side, head.y0 - HEADROOM * head.height, head.x1 + side, head.y1)
        room = room.clip(width, height)
    need = max(room.height, room.width / aspect)
    limit = min(float(height), width / aspect)
    h = max(h, need, min(limit, MIN_SIDE))
    fit = "inside"
    if h > limit + 0.5:
        fit = "lower part given up" if need <= limit else "padded"
        h = max(limit, need)
    w = h * aspect
    y0 = _axis(top, h, room.y0, room.y1, float(height))
    x0 = _axis(cx - w / 2.0, w, room.x0, room.x1, float(width))
    x0, y0, w, h = round(x0), round(y0), max(1, round(w)), max(1, round(h))
    if fit != "padded":
        x0, y0 = max(0, min(x0, width - w)), max(0, min(y0, height - h))
    box = Box(float(x0), float(y0), float(x0 + w), float(y0 + h))
    if fit == "inside" and outside_fraction(ideal, width, height) > 0.05:
        fit = "shifted"
    return box, fit
