"""Crop plans: the source's box and one box per driving shot, as ``mraa crop`` prints them, and a
picture of them."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from mraa.boxes import Box
from mraa.errors import MRAAError
from mraa.framing.boxes import FRAMINGS, center_box, outside_fraction, place_box
from mraa.framing.composite import crop_resize
from mraa.framing.detect import _has_cv2, find_subject
from mraa.framing.track import DrivingFraming, frame_driving, track_driving


@dataclass
class SourceFraming:
    """The source's crop: ``box`` in image pixels and what decided it (``how``: a detector, center, none).

    ``fit`` says how the framing's square was fitted into the image (:data:`~mraa.framing.boxes.FITS`):
    inside, shifted, lower part given up, or padded (the box reaches past the border; crops are padded
    by reflection). ``head`` is the head (with hair) the crop keeps whole, when one was found.
    """

    box: Box
    how: str
    subject: Box | None = None
    messages: list[str] = field(default_factory=list)
    fit: str = "inside"
    head: Box | None = None


def _fit_messages(fit: str, what: str, ideal: Box, width: int, height: int) -> list[str]:
    if fit == "padded":
        return [f"the {width}x{height} source is too small for a {what} crop around the whole head: "
                "the crop reaches past the image border, which is filled by reflection"]  # fmt: skip
    if fit == "lower part given up":
        return [f"the {what} square does not fit in the {width}x{height} source: the crop keeps the whole "
                "head and gives up the lower part"]  # fmt: skip
    if outside_fraction(ideal, width, height) > 0.2:
        return [f"the source's {what} is close to the image border: the crop is shifted"]
    return []


def source_head(image: np.ndarray) -> Box | None:
    """The head (with hair) of the most confident face, else of a body (pose, silhouette, proportions), or
    None (nothing found, or OpenCV not installed)."""
    if not _has_cv2():
        return None
    subject = find_subject(image, "upper_body")
    return None if subject is None else subject.head


def frame_source(image: np.ndarray, crop: str, aspect: float = 1.0) -> SourceFraming:
    """Choose the source crop for a framing (``face``, ``upper_body``, ``full_body``), ``center`` or ``none``.

    Every crop keeps the whole head when one is found (``center`` moves its square to hold it). No subject
    found: a centre crop, with one message saying so.
    """
    height, width = image.shape[:2]
    if crop == "none":
        return SourceFraming(Box(0.0, 0.0, float(width), float(height)), "none")
    if crop == "center":
        head = source_head(image)
        box, fit = place_box(center_box(width, height, aspect), head, width, height, aspect)
        return SourceFraming(box, "center", None, _fit_messages(fit, "centre", box, width, height), fit, head)
    subject = find_subject(image, crop)
    what = crop.replace("_", " ")
    if subject is None:
        return SourceFraming(
            center_box(width, height, aspect),
            "center",
            None,
            [f"no {what} found in the source: using a centre crop"],
        )
    box, fit = place_box(subject.crop, subject.head, width, height, aspect)
    messages = _fit_messages(fit, what, subject.crop, width, height)
    return SourceFraming(box, subject.detector, subject.box, messages, fit, subject.head)


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
                "head": box(self.source.head),
                "fit": self.source.fit,
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
    """The source and a few driving frames side by side, each with its crop box drawn (uint8 image); on the
    source, the head the crop keeps whole is outlined in white."""
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
        if not images and plan.source.head is not None:  # the source panel
            draw.rectangle([v * scale for v in plan.source.head], outline=(255, 255, 255), width=1)
        draw.rectangle([v * scale for v in box], outline=color, width=max(2, height // 128))
        images.append(np.asarray(shown))
    gap = np.full((height, 4, 3), 255, np.uint8)
    return np.concatenate([part for image in images for part in (image, gap)][:-1], axis=1)


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
