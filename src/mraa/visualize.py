"""Visualisation helpers: region overlays, colour maps and image grids (uint8 numpy in, uint8 out)."""

from __future__ import annotations

import colorsys

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


def region_colors(num_regions: int) -> np.ndarray:
    """Distinct colours (K, 3) in [0, 1] along the hue circle (like matplotlib's ``gist_rainbow``)."""
    hues = np.linspace(0.0, 0.83, max(num_regions, 1))
    return np.array([colorsys.hsv_to_rgb(h, 0.9, 1.0) for h in hues], dtype=np.float32)[:num_regions]


def tensor_to_uint8(images: Tensor) -> np.ndarray:
    """(B, 3, H, W) or (3, H, W) floats in [0, 1] -> uint8 (B, H, W, 3) or (H, W, 3)."""
    array = images.detach().float().clamp(0, 1).mul(255).add(0.5).to(torch.uint8).cpu().numpy()
    return np.moveaxis(array, -3, -1)


def uint8_to_tensor(images: np.ndarray) -> Tensor:
    """uint8 (H, W, 3) or (B, H, W, 3) -> float (3, H, W) or (B, 3, H, W) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(images, -1, -3))).float().div_(255.0)


def heatmap_overlay(image: np.ndarray, heatmap: Tensor, alpha: float = 0.6) -> np.ndarray:
    """Blend per-region heatmaps (K, h, w) over an image (H, W, 3) in region colours.

    Each region's map is normalised by its maximum; the pixel colour is the colour of the strongest region.
    """
    h, w = image.shape[:2]
    maps = F.interpolate(heatmap[None].float(), size=(h, w), mode="bilinear", align_corners=False)[0]
    maps = maps / maps.flatten(1).amax(dim=1).clamp_min(1e-12)[:, None, None]
    strength, index = maps.max(dim=0)
    colors = torch.from_numpy(region_colors(heatmap.shape[0]))[index]  # (H, W, 3)
    weight = (alpha * strength).unsqueeze(-1).numpy()
    out = image.astype(np.float32) * (1 - weight) + colors.numpy() * 255.0 * weight
    return out.clip(0, 255).astype(np.uint8)


def draw_regions(
    image: np.ndarray, shift: Tensor, affine: Tensor | None = None, radius: int = 2
) -> np.ndarray:
    """Draw region centres (K, 2) in [-1, 1] and, if given, their principal axes (K, 2, 2) on an image."""
    from PIL import Image, ImageDraw

    h, w = image.shape[:2]
    canvas = Image.fromarray(image.copy())
    draw = ImageDraw.Draw(canvas)
    colors = (region_colors(shift.shape[0]) * 255).astype(int)
    for k in range(shift.shape[0]):
        x = (float(shift[k, 0]) + 1) / 2 * (w - 1)
        y = (float(shift[k, 1]) + 1) / 2 * (h - 1)
        color = tuple(int(c) for c in colors[k])
        if affine is not None:
            for axis in range(2):
                dx = float(affine[k, 0, axis]) * (w - 1) / 2
                dy = float(affine[k, 1, axis]) * (h - 1) / 2
                draw.line([(x - dx, y - dy), (x + dx, y + dy)], fill=color, width=1)
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=color)
    return np.asarray(canvas)


def occlusion_to_uint8(occlusion: Tensor, size: tuple[int, int]) -> np.ndarray:
    """A (1, h, w) confidence map resized to ``size`` as a grey uint8 (H, W, 3) image."""
    resized = F.interpolate(occlusion[None].float(), size=size, mode="bilinear", align_corners=False)[0]
    return tensor_to_uint8(resized.expand(3, -1, -1))


def make_grid(rows: list[list[np.ndarray]], pad: int = 2, fill: int = 255) -> np.ndarray:
    """Tile uint8 images (all H x W x 3 within a row) into one image with ``pad`` pixels between them."""
    row_images = []
    width = 0
    for row in rows:
        h = max(image.shape[0] for image in row)
        padded = []
        for image in row:
            block = np.full((h, image.shape[1], 3), fill, np.uint8)
            block[: image.shape[0]] = image
            padded.append(block)
            padded.append(np.full((h, pad, 3), fill, np.uint8))
        row_image = np.concatenate(padded[:-1], axis=1)
        width = max(width, row_image.shape[1])
        row_images.append(row_image)
    out = []
    for row_image in row_images:
        block = np.full((row_image.shape[0], width, 3), fill, np.uint8)
        block[:, : row_image.shape[1]] = row_image
        out.append(block)
        out.append(np.full((pad, width, 3), fill, np.uint8))
    return np.concatenate(out[:-1], axis=0)
