"""Rotated-rectangles dataset of the paper's toy experiment (supplementary, Sec. 1).

Each image shows one rectangle of a random colour, size, aspect ratio and position on a plain black
background, rotated by an angle drawn uniformly from [0, 90] degrees; the label is that angle.

Angle convention: the angle of the rectangle's *long* axis, measured from the image x axis (pointing
right) towards the image y axis (pointing down, as rows grow), i.e. clockwise on screen. In the
coordinates of :func:`mraa.geometry.make_coordinate_grid` the long axis is ``(cos a, sin a)``, so the
principal axis of the rectangle's second moments gives the label directly.

Aspect ratios (long / short) are drawn from [1.5, 4], well away from 1, so that the long axis (and with
it the label) is never ambiguous: a near-square at 0 degrees would look like one at 90 degrees.

Everything is deterministic: sample ``i`` of split ``s`` with seed ``seed`` is drawn from its own
``numpy`` generator seeded by ``(s, seed, i)``, so a training set of 64 images is the first 64 images
of the one of 1024 with the same seed, and the test split never overlaps a training split.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from mraa.errors import MRAAError

log = logging.getLogger(__name__)

ANGLE_RANGE = (0.0, 90.0)  # degrees
ASPECT_RANGE = (1.5, 4.0)  # long side / short side
HALF_LONG_RANGE = (0.35, 0.7)  # half of the long side, in grid units (the image spans [-1, 1])
MARGIN = 0.95  # the rectangle's corners stay within [-MARGIN, MARGIN]
MIN_BRIGHTNESS = 0.3  # the brightest channel of a colour, so it stands out from the black background
SUPERSAMPLING = 4  # sub-pixels per pixel side used for anti-aliasing
SPLITS = {"train": 0, "test": 1, "val": 2}
TEST_SEED = 0
TEST_SIZE = 128


@dataclass(frozen=True)
class Rectangle:
    """One rectangle: centre (x, y) and half sides in grid units, angle in degrees, RGB colour in [0, 1]."""

    center: tuple[float, float]
    half_long: float
    half_short: float
    angle: float
    color: tuple[float, float, float]


def sample_rectangle(rng: np.random.Generator) -> Rectangle:
    """Draw one rectangle's parameters from ``rng``."""
    angle = rng.uniform(*ANGLE_RANGE)
    half_long = rng.uniform(*HALF_LONG_RANGE)
    half_short = half_long / rng.uniform(*ASPECT_RANGE)
    reach = MARGIN - float(np.hypot(half_long, half_short))  # the centre's range keeps every corner inside
    center = rng.uniform(-reach, reach, size=2)
    color = rng.uniform(0.0, 1.0, size=3)
    while color.max() < MIN_BRIGHTNESS:
        color = rng.uniform(0.0, 1.0, size=3)
    return Rectangle(
        (float(center[0]), float(center[1])), float(half_long), float(half_short), float(angle), tuple(color)
    )


def render_rectangle(rect: Rectangle, image_size: int) -> np.ndarray:
    """Render ``rect`` on a black square image, anti-aliased by supersampling.

    Pixel centres lie on :func:`mraa.geometry.make_coordinate_grid` coordinates (first and last pixel
    centres at -1 and 1), with y pointing down.

    Returns:
        float32 array (3, image_size, image_size) in [0, 1].
    """
    step = 2.0 / (image_size - 1)  # distance between pixel centres
    offsets = (np.arange(SUPERSAMPLING) + 0.5) / SUPERSAMPLING - 0.5  # sub-pixel offsets in pixels
    fine = (-1.0 + step * (np.arange(image_size)[:, None] + offsets[None, :])).reshape(-1)  # (S*n,)
    x = fine[None, :] - rect.center[0]
    y = fine[:, None] - rect.center[1]
    cos, sin = np.cos(np.radians(rect.angle)), np.sin(np.radians(rect.angle))
    along = x * cos + y * sin  # coordinate along the long axis
    across = -x * sin + y * cos
    inside = (np.abs(along) <= rect.half_long) & (np.abs(across) <= rect.half_short)  # (S*n, S*n)
    coverage = inside.reshape(image_size, SUPERSAMPLING, image_size, SUPERSAMPLING).mean(axis=(1, 3))
    return (np.asarray(rect.color, dtype=np.float32)[:, None, None] * coverage[None]).astype(np.float32)


def make_rectangles(
    num_images: int, seed: int, image_size: int = 24, split: str = "train"
) -> tuple[Tensor, Tensor]:
    """A deterministic set of rotated rectangles.

    Args:
        num_images: how many images.
        seed: data seed; sets of different sizes with the same seed and split are nested.
        image_size: side of the square images in pixels (at least 8).
        split: ``"train"``, ``"test"`` or ``"val"`` (disjoint random streams).

    Returns:
        images (N, 3, image_size, image_size) float32 in [0, 1], angles (N,) float32 in degrees.
    """
    if split not in SPLITS:
        raise MRAAError(f"unknown split {split!r}; expected one of {sorted(SPLITS)}")
    if image_size < 8:
        raise MRAAError(f"image size must be at least 8 pixels, got {image_size}")
    images = np.zeros((num_images, 3, image_size, image_size), dtype=np.float32)
    angles = np.zeros(num_images, dtype=np.float32)
    for i in range(num_images):
        rect = sample_rectangle(np.random.default_rng((SPLITS[split], seed, i)))
        images[i] = render_rectangle(rect, image_size)
        angles[i] = rect.angle
    return torch.from_numpy(images), torch.from_numpy(angles)


def make_test_set(image_size: int = 24, num_images: int = TEST_SIZE) -> tuple[Tensor, Tensor]:
    """The fixed test set (128 images by default, seed ``TEST_SEED``)."""
    return make_rectangles(num_images, TEST_SEED, image_size, split="test")
