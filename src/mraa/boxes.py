"""Boxes as pure functions (in the spirit of kornia's ``geometry/bbox.py``): :class:`Box`, overlap,
squaring, fitting a box into an image, cutting a crop out (padded by reflection past the border), the
feathered paste-back weight and pasting an animated crop back.

Ground floor: imports nothing from mraa but :mod:`mraa.errors` and :mod:`mraa.image`. The framing
*rules* (where a head's crop goes) live in :mod:`mraa.framing.boxes`; detectors in
:mod:`mraa.framing.detect` and :mod:`mraa.data.prepare.detectors`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from mraa.errors import MRAAError
from mraa.image import FEATHER, edge_feather, fit_frame, resize, resize_mask


class Box(NamedTuple):
    """An axis-aligned box ``(x0, y0, x1, y1)`` in pixels, x to the right and y down."""

    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    @property
    def center(self) -> tuple[float, float]:
        return ((self.x0 + self.x1) / 2.0, (self.y0 + self.y1) / 2.0)

    def clip(self, width: int, height: int) -> Box:
        """The part of the box inside a ``width`` x ``height`` frame."""
        return Box(
            min(max(self.x0, 0.0), width),
            min(max(self.y0, 0.0), height),
            min(max(self.x1, 0.0), width),
            min(max(self.y1, 0.0), height),
        )


# ----------------------------------------------------------------------------- box arithmetic
def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two ``(x0, y0, x1, y1)`` boxes (0 when they do not overlap)."""
    inter_w = min(a[2], b[2]) - max(a[0], b[0])
    inter_h = min(a[3], b[3]) - max(a[1], b[1])
    if inter_w <= 0 or inter_h <= 0:
        return 0.0
    inter = inter_w * inter_h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def union(a: Box, b: Box) -> Box:
    """The smallest box holding both."""
    return Box(min(a.x0, b.x0), min(a.y0, b.y0), max(a.x1, b.x1), max(a.y1, b.y1))


def scale_box(box: Box, scale: float) -> Box:
    """Every coordinate multiplied by ``scale`` (a box found in a shrunk image, in the full image's pixels)."""
    return Box(*(float(v) * scale for v in box))


def square(box: Box) -> Box:
    """The square with the box's centre and its longer side (aspect-preserving growth, as crop-video.py)."""
    cx, cy = box.center
    half = max(box.width, box.height) / 2.0
    return Box(cx - half, cy - half, cx + half, cy + half)


def contains(outer: Box, inner: Box, slack: float = 0.5) -> bool:
    """Whether ``outer`` holds ``inner`` (each side within ``slack`` pixels)."""
    return (
        outer.x0 <= inner.x0 + slack
        and outer.y0 <= inner.y0 + slack
        and outer.x1 >= inner.x1 - slack
        and outer.y1 >= inner.y1 - slack
    )


def outside_fraction(box: Box, width: int, height: int) -> float:
    """Share of ``box``'s area that lies outside a ``width`` x ``height`` image."""
    inside = box.clip(width, height)
    area = box.width * box.height
    return 0.0 if area <= 0 else 1.0 - inside.width * inside.height / area


# ----------------------------------------------------------------------------- boxes in an image
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


def even_size(width: int, height: int) -> tuple[int, int]:
    """The largest even (width, height) not above the given one (H.264 with yuv420p needs even sizes)."""
    return max(2, width - width % 2), max(2, height - height % 2)


# ----------------------------------------------------------------------------- crop, feather, paste
def crop_resize(image: np.ndarray, box: Box, size: tuple[int, int]) -> np.ndarray:
    """Cut ``box`` (integer pixels) out of ``image`` and resize it to ``size`` (H, W). Where the box reaches
    past the image border (a padded framing) the image is extended by reflection."""
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    height, width = image.shape[:2]
    pads = (max(0, -y0), max(0, y1 - height)), (max(0, -x0), max(0, x1 - width))
    if any(p for pair in pads for p in pair):
        image = np.pad(image, (*pads, (0, 0)), mode="symmetric")
        x0, x1, y0, y1 = x0 + pads[1][0], x1 + pads[1][0], y0 + pads[0][0], y1 + pads[0][0]
    return fit_frame(np.ascontiguousarray(image[y0:y1, x0:x1]), size)


def box_feather(box: Box, width: int, height: int, feather: float = FEATHER) -> np.ndarray:
    """The paste-back weight (box height, box width) float32 for ``box`` in a ``width`` x ``height`` image:
    1 inside, falling to 0 over ``feather`` of the box's shorter side on every edge inside the image (an edge
    on or past the border stays 1: nothing there to blend with)."""
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    return edge_feather(y1 - y0, x1 - x0, feather, (y0 > 0, y1 < height, x0 > 0, x1 < width))


def paste_back(
    source: np.ndarray, crop: np.ndarray, box: Box, mask: np.ndarray | None = None, feather: float = FEATHER
) -> np.ndarray:
    """Composite an animated ``crop`` (h, w, 3 uint8, any size) into a copy of ``source`` at ``box``.

    The crop is resized to the box; the blend mask falls to 0 on every box edge that lies inside the image
    (on the border, and past it for a padded box, the crop reaches the border). ``mask`` (any size, values
    in [0, 1]) narrows it. Pixels where the final mask is 0 (outside the box, and its inner rims) equal the
    source's.
    """
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    bw, bh = x1 - x0, y1 - y0
    height, width = source.shape[:2]
    if bw <= 0 or bh <= 0 or x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
        raise MRAAError(f"paste-back box {tuple(box)} does not overlap the {width}x{height} image")
    patch = resize(crop, (bh, bw), "bicubic").astype(np.float32)
    weight = box_feather(box, width, height, feather)
    if mask is not None:
        weight = weight * resize_mask(mask, (bh, bw))
    # the part of the box inside the image (all of it unless the framing was padded)
    cy0, cx0, cy1, cx1 = max(0, -y0), max(0, -x0), bh - max(0, y1 - height), bw - max(0, x1 - width)
    patch, weight = patch[cy0:cy1, cx0:cx1], weight[cy0:cy1, cx0:cx1]
    out = source.copy()
    region = out[max(0, y0) : min(height, y1), max(0, x0) : min(width, x1)]
    # where the weight is 0 the blend is the source pixel exactly (integers are exact in float32), so it
    # rounds back to it: no np.where needed
    blended = region * (1.0 - weight[..., None]) + patch * weight[..., None]
    region[...] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
    return out
