"""The one home for image conversions: uint8 pictures (H, W, 3) <-> float tensors (3, H, W) / (B, 3, H, W)
in [0, 1], uint8 <-> float numpy, resizing, and the two feather masks (a box-edge ramp for paste-back and a
Gaussian blur for soft part masks).

Ground floor: imports nothing from mraa but :mod:`mraa.errors`; Pillow is imported where it resizes.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mraa.errors import MRAAError

MIN_IMAGE_SIDE = 8  # smaller inputs are refused rather than blown up into a blur
FEATHER = 0.08  # the paste-back mask's soft edge, as a fraction of the box's shorter side
MAX_FEATHER = 1000.0  # pixels; a wider blur only flattens the mask, and its kernel would take gigabytes


# ----------------------------------------------------------------------------- uint8 <-> tensors
def to_tensor(images: np.ndarray) -> Tensor:
    """uint8 (H, W, 3) or (B, H, W, 3) -> float (3, H, W) or (B, 3, H, W) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(images, -1, -3))).float().div_(255.0)


def to_batch(frame: np.ndarray) -> Tensor:
    """uint8 (H, W, 3) -> float (1, 3, H, W) in [0, 1]."""
    return to_tensor(np.asarray(frame)[None])


def to_uint8(images: Tensor) -> np.ndarray:
    """(B, 3, H, W) or (3, H, W) floats in [0, 1] -> uint8 (B, H, W, 3) or (H, W, 3), rounded."""
    array = images.detach().float().clamp(0, 1).mul(255).add(0.5).to(torch.uint8).cpu().numpy()
    return np.moveaxis(array, -3, -1)


def mask_to_uint8(mask: Tensor | np.ndarray) -> np.ndarray:
    """Soft masks of any shape in [0, 1] -> uint8 0-255 of the same shape, rounded."""
    if isinstance(mask, Tensor):
        mask = mask.detach().float().cpu().numpy()
    return float_to_uint8(np.asarray(mask, np.float32))


# ----------------------------------------------------------------------------- uint8 <-> float numpy
def uint8_to_float(array: np.ndarray) -> np.ndarray:
    """uint8 (any shape) -> float32 in [0, 1]."""
    return np.asarray(array).astype(np.float32) / 255.0


def float_to_uint8(array: np.ndarray) -> np.ndarray:
    """Floats in [0, 1] (any shape; clipped) -> uint8, rounded."""
    return (np.clip(array, 0, 1) * 255 + 0.5).astype(np.uint8)


# ----------------------------------------------------------------------------- sizes and resizing
def check_image_size(image: np.ndarray, name: str = "image", minimum: int = MIN_IMAGE_SIDE) -> np.ndarray:
    """Refuse an image smaller than ``minimum`` pixels on a side (it would only be blown up into a blur)."""
    h, w = image.shape[:2]
    if h < minimum or w < minimum:
        raise MRAAError(f"{name} is only {w}x{h} pixels; at least {minimum}x{minimum} are needed")
    return image


def centre_crop_box(height: int, width: int, aspect: float) -> tuple[int, int, int, int]:
    """``(y0, y1, x0, x1)`` of the largest centred crop of width/height ratio ``aspect``."""
    if width / height > aspect:
        new_w = max(1, round(height * aspect))
        x0 = (width - new_w) // 2
        return 0, height, x0, x0 + new_w
    new_h = max(1, round(width / aspect))
    y0 = (height - new_h) // 2
    return y0, y0 + new_h, 0, width


def resize(image: np.ndarray, size: tuple[int, int], resample: str = "bilinear") -> np.ndarray:
    """Resize a uint8 image (H, W) or (H, W, C) to ``size`` (H, W) with Pillow (``bilinear``, ``bicubic``
    or ``nearest``; Pillow's down-scaling filters are anti-aliased). Same size: the image itself."""
    from PIL import Image

    h, w = size
    if image.shape[:2] == (h, w):
        return image
    filters = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST}
    return np.asarray(Image.fromarray(image).resize((w, h), filters[resample]))


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A float mask (h, w) in [0, 1] (clipped) resized bilinearly to ``size`` (H, W), as float32 in 8-bit
    steps (truncated to 8 bits before resizing)."""
    return uint8_to_float(resize((np.clip(mask, 0, 1) * 255).astype(np.uint8), size))


def fit_frame(
    frame: np.ndarray, size: tuple[int, int], crop: bool = False, name: str = "an input image"
) -> np.ndarray:
    """Resize a uint8 frame to ``size`` (H, W); with ``crop`` first take the centred crop of that aspect ratio.

    Uses Pillow's anti-aliased bilinear filter (like scikit-image's ``resize``, which the official demo uses).
    Frames under :data:`MIN_IMAGE_SIDE` pixels on a side are refused (they would be blown up into a blur).
    """
    check_image_size(frame, name)
    h, w = size
    if crop:
        y0, y1, x0, x1 = centre_crop_box(frame.shape[0], frame.shape[1], w / h)
        frame = frame[y0:y1, x0:x1]
    return resize(frame, (h, w))


# ----------------------------------------------------------------------------- feather masks
def edge_feather(
    height: int, width: int, feather: float = FEATHER, edges: tuple[bool, bool, bool, bool] = (True,) * 4
) -> np.ndarray:
    """(H, W) float32 mask: 1 inside, falling to 0 towards the edges over ``feather`` of the shorter side
    (a raised-cosine ramp, at least one pixel). ``edges`` (top, bottom, left, right) says which edges fall;
    the others stay 1."""
    ramp = max(1.0, feather * min(height, width))
    top, bottom, left, right = edges

    def profile(n: int, start: bool, end: bool) -> np.ndarray:
        far = np.full(n, np.inf)
        distance = np.minimum(np.arange(n) + 0.5 if start else far, n - 0.5 - np.arange(n) if end else far)
        t = np.clip(distance / ramp, 0.0, 1.0)
        return (0.5 - 0.5 * np.cos(np.pi * t)).astype(np.float32)

    return np.minimum(profile(height, top, bottom)[:, None], profile(width, left, right)[None, :])


def check_feather(sigma: float) -> float:
    """``sigma`` if it is a usable blur width (0 to :data:`MAX_FEATHER` pixels), else :class:`MRAAError`."""
    if not 0 <= sigma <= MAX_FEATHER:  # also refuses nan
        raise MRAAError(f"feather must be a number of pixels between 0 and {MAX_FEATHER:g}, got {sigma}")
    return sigma


def blur_mask(mask: Tensor, sigma: float) -> Tensor:
    """Gaussian blur of masks (B, C, H, W) with standard deviation ``sigma`` pixels (0: unchanged), edges
    replicated, clamped to [0, 1]."""
    check_feather(sigma)
    if sigma == 0:
        return mask
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=mask.dtype, device=mask.device)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    kernel = kernel / kernel.sum()
    b, c, h, w = mask.shape
    out = mask.reshape(b * c, 1, h, w)
    out = F.conv2d(F.pad(out, (radius, radius, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
    out = F.conv2d(F.pad(out, (0, 0, radius, radius), mode="replicate"), kernel.view(1, 1, -1, 1))
    return out.reshape(b, c, h, w).clamp(0, 1)
