"""All drawing: region overlays, colour maps, image grids, segmentation overlays, legends and captions
(uint8 numpy in, uint8 out; fonts from Pillow)."""

from __future__ import annotations

import colorsys
import functools

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mraa.errors import MRAAError
from mraa.image import to_tensor as uint8_to_tensor  # conversions live in mraa.image; old names kept
from mraa.image import to_uint8 as tensor_to_uint8


def region_colors(num_regions: int) -> np.ndarray:
    """Distinct colours (K, 3) in [0, 1] along the hue circle (like matplotlib's ``gist_rainbow``)."""
    hues = np.linspace(0.0, 0.83, max(num_regions, 1))
    return np.array([colorsys.hsv_to_rgb(h, 0.9, 1.0) for h in hues], dtype=np.float32)[:num_regions]


READABLE_HEIGHT = 256  # visualisations and part-swap videos are written at least this tall


def readable_factor(height: int, min_height: int = READABLE_HEIGHT) -> int:
    """The smallest integer factor that makes ``height`` pixels at least ``min_height`` (1 when it is)."""
    return max(1, -(-min_height // max(height, 1)))


def upscale(images: np.ndarray, factor: int, mode: str = "nearest") -> np.ndarray:
    """uint8 (H, W, 3) or (B, H, W, 3) enlarged ``factor`` times: ``nearest`` (the model's pixels stay
    visible as blocks) or ``bilinear`` (smoother, for result videos)."""
    if factor == 1:
        return images
    if mode == "nearest":
        return images.repeat(factor, axis=-3).repeat(factor, axis=-2)
    batch = uint8_to_tensor(images if images.ndim == 4 else images[None])
    out = tensor_to_uint8(F.interpolate(batch, scale_factor=factor, mode=mode, align_corners=False))
    return out if images.ndim == 4 else out[0]


def readable(images: np.ndarray, mode: str = "bilinear") -> np.ndarray:
    """uint8 (H, W, 3) or (B, H, W, 3) enlarged by :func:`readable_factor` (unchanged when tall enough)."""
    return upscale(images, readable_factor(images.shape[-3]), mode)


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
    image: np.ndarray, shift: Tensor, affine: Tensor | None = None, radius: int = 2, width: int = 1
) -> np.ndarray:
    """Draw region centres (K, 2) in [-1, 1] and, if given, their principal axes (K, 2, 2) on an image
    (axis lines ``width`` pixels wide)."""
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
                draw.line([(x - dx, y - dy), (x + dx, y + dy)], fill=color, width=width)
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


# ----------------------------------------------------------------------------- segmentations
def part_colors(num_parts: int) -> np.ndarray:
    """uint8 colours (K + 1, 3): row 0 (background) black, row k the colour of part k (= region k-1)."""
    colors = np.zeros((num_parts + 1, 3), np.uint8)
    colors[1:] = (region_colors(num_parts) * 255 + 0.5).astype(np.uint8)
    return colors


# a colour name every 15 degrees of hue: region_colors' hues for up to 20 parts are over 15 degrees apart, so
# the nearest names of any two parts differ
HUE_NAMES = (
    "red", "vermilion", "orange", "amber", "yellow", "lime", "chartreuse", "grass green", "green",
    "emerald", "spring green", "turquoise", "cyan", "sky blue", "azure", "royal blue", "blue", "indigo",
    "violet", "purple", "magenta", "hot pink", "rose", "crimson",
)  # fmt: skip


def part_color_names(num_parts: int) -> list[str]:
    """Distinct English names of the overlay colours of parts 1..K (a number is added past 20 parts)."""
    names = []
    for r, g, b in region_colors(num_parts):
        hue = colorsys.rgb_to_hsv(float(r), float(g), float(b))[0] * 360
        name = HUE_NAMES[round(hue / 15) % len(HUE_NAMES)]
        names.append(name if name not in names else f"{name} {names.count(name) + 1}")
    return names


def colorize_labels(labels: Tensor | np.ndarray, num_parts: int) -> np.ndarray:
    """A label map (H, W) as a uint8 colour image (H, W, 3), background black."""
    return part_colors(num_parts)[np.asarray(labels, dtype=np.int64)]


def legend_font(size: int):
    """Pillow's default font at ``size`` px (the fixed bitmap font on Pillow < 10.1)."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: fixed bitmap font
        return ImageFont.load_default()


def draw_text(draw, xy: tuple[float, float], text: str, font, anchor: str, **kwargs) -> None:
    """``ImageDraw.text`` anchored at ``xy`` (e.g. ``"mm"``: centred), also with the old bitmap font."""
    from PIL import ImageFont

    if isinstance(font, ImageFont.FreeTypeFont):
        draw.text(xy, text, font=font, anchor=anchor, **kwargs)
        return
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    x = xy[0] - (right - left) / 2 if anchor[0] == "m" else xy[0]
    draw.text((x, xy[1] - (bottom - top) / 2), text, font=font, fill=kwargs.get("fill"))


def add_caption(image: np.ndarray, text: str, height: int = 20) -> np.ndarray:
    """A uint8 image (H, W, 3) with a white strip of ``text`` above it."""
    from PIL import Image, ImageDraw

    strip = Image.new("RGB", (image.shape[1], height), (255, 255, 255))
    draw_text(ImageDraw.Draw(strip), (4, height / 2), text, legend_font(height - 6), "lm", fill=(0, 0, 0))
    return np.concatenate([np.asarray(strip), image], axis=0)


def overlay_segmentation(
    image: np.ndarray,
    labels: Tensor | np.ndarray,
    num_parts: int,
    alpha: float = 0.5,
    numbers: bool = True,
    legend: bool = True,
) -> np.ndarray:
    """Tint a uint8 image (H, W, 3) with its label map (H, W): parts in their colours with thin dark
    borders, the background left as it is, each part's index written at its centroid, and (with
    ``legend``) a strip of part colours and indices below."""
    from PIL import Image, ImageDraw
    from scipy.ndimage import distance_transform_edt

    labels = np.asarray(labels, dtype=np.int64)
    if labels.shape != image.shape[:2]:
        raise MRAAError(f"label map {labels.shape} does not match the image {image.shape[:2]}")
    colors = part_colors(num_parts).astype(np.float32)
    weight = np.where(labels > 0, alpha, 0.0)[..., None]
    out = image.astype(np.float32) * (1 - weight) + colors[labels] * weight
    border = np.zeros(labels.shape, bool)
    border[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    border[1:, :] |= labels[1:, :] != labels[:-1, :]
    out[border] *= 0.35
    canvas = Image.fromarray(out.clip(0, 255).astype(np.uint8))
    if numbers:
        draw = ImageDraw.Draw(canvas)
        font = legend_font(max(9, min(image.shape[:2]) // 20))
        for part in range(1, num_parts + 1):
            inside = labels == part
            if inside.sum() < 4:
                continue
            # the point deepest inside the part, searched in its bounding box (the same distances and the
            # same first maximum: everything outside the box is outside the part)
            rows, cols = np.flatnonzero(inside.any(1)), np.flatnonzero(inside.any(0))
            y0, x0 = rows[0], cols[0]
            box = inside[y0 : rows[-1] + 1, x0 : cols[-1] + 1]
            depth = distance_transform_edt(np.pad(box, 1))[1:-1, 1:-1]
            y, x = np.unravel_index(np.argmax(depth), depth.shape)
            centre = (float(x + x0), float(y + y0))
            draw_text(
                draw,
                centre,
                str(part),
                font,
                "mm",
                fill=(255, 255, 255),
                stroke_width=2,
                stroke_fill=(0, 0, 0),
            )
    result = np.asarray(canvas)
    if legend:
        result = np.concatenate([result, _legend_strip_cached(image.shape[1], num_parts)], axis=0)
    return result


@functools.lru_cache(maxsize=8)
def _legend_strip_cached(width: int, num_parts: int) -> np.ndarray:
    """:func:`legend_strip` drawn once per (width, parts) for a video's overlays (read-only)."""
    strip = legend_strip(width, num_parts)
    strip.flags.writeable = False
    return strip


def legend_strip(width: int, num_parts: int, font_size: int | None = None) -> np.ndarray:
    """A white uint8 strip (h, width, 3) with a colour swatch and the index of every part, wrapped to
    ``width``; ``0 = background`` comes first (background is left untinted in overlays)."""
    from PIL import Image, ImageDraw

    font_size = font_size or max(9, min(14, width // 18))
    font = legend_font(font_size)
    colors = part_colors(num_parts)
    swatch = font_size
    items = [("0 = bg", None)] + [(str(k), tuple(int(c) for c in colors[k])) for k in range(1, num_parts + 1)]
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    placed: list[tuple[int, int, str, tuple[int, int, int] | None]] = []
    x = y = pad = 4
    line = swatch + pad
    for text, color in items:
        text_width = int(probe.textlength(text, font=font))
        item_width = (swatch + 3 if color else 0) + text_width
        if x > pad and x + item_width > width - pad:
            x, y = pad, y + line
        placed.append((x, y, text, color))
        x += item_width + 2 * pad
    canvas = Image.new("RGB", (width, y + line), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for x, y, text, color in placed:
        if color is not None:
            draw.rectangle([x, y, x + swatch - 1, y + swatch - 1], fill=color, outline=(0, 0, 0))
            x += swatch + 3
        draw_text(draw, (x, y + swatch / 2), text, font, "lm", fill=(0, 0, 0))
    return np.asarray(canvas)
