"""Crops (padded by reflection where a box reaches past the border) and paste-back of animated crops
into the full-resolution source."""

from __future__ import annotations

import numpy as np

from mraa.data.prepare.detectors import Box
from mraa.errors import MRAAError

FEATHER = 0.08  # the paste-back mask's soft edge, as a fraction of the box's shorter side


def crop_resize(image: np.ndarray, box: Box, size: tuple[int, int]) -> np.ndarray:
    """Cut ``box`` (integer pixels) out of ``image`` and resize it to ``size`` (H, W). Where the box reaches
    past the image border (a padded framing) the image is extended by reflection."""
    from mraa.data.video_io import fit_frame

    x0, y0, x1, y1 = (int(round(v)) for v in box)
    height, width = image.shape[:2]
    pads = (max(0, -y0), max(0, y1 - height)), (max(0, -x0), max(0, x1 - width))
    if any(p for pair in pads for p in pair):
        image = np.pad(image, (*pads, (0, 0)), mode="symmetric")
        x0, x1, y0, y1 = x0 + pads[1][0], x1 + pads[1][0], y0 + pads[0][0], y1 + pads[0][0]
    return fit_frame(np.ascontiguousarray(image[y0:y1, x0:x1]), size)


def even_size(width: int, height: int) -> tuple[int, int]:
    """The largest even (width, height) not above the given one (H.264 with yuv420p needs even sizes)."""
    return max(2, width - width % 2), max(2, height - height % 2)


def feather_mask(
    height: int, width: int, feather: float = FEATHER, edges: tuple[bool, bool, bool, bool] = (True,) * 4
) -> np.ndarray:
    """(H, W) float32 mask: 1 inside, falling to 0 towards the box's edges over ``feather`` of the shorter
    side (a raised-cosine ramp), so a pasted crop has no visible seam. ``edges`` (top, bottom, left, right)
    says which edges fall: an edge on the image border stays 1 (nothing there to blend with)."""
    ramp = max(1.0, feather * min(height, width))
    top, bottom, left, right = edges

    def profile(n: int, start: bool, end: bool) -> np.ndarray:
        far = np.full(n, np.inf)
        distance = np.minimum(np.arange(n) + 0.5 if start else far, n - 0.5 - np.arange(n) if end else far)
        t = np.clip(distance / ramp, 0.0, 1.0)
        return (0.5 - 0.5 * np.cos(np.pi * t)).astype(np.float32)

    return np.minimum(profile(height, top, bottom)[:, None], profile(width, left, right)[None, :])


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
    source: np.ndarray, crop: np.ndarray, box: Box, mask: np.ndarray | None = None, feather: float = FEATHER
) -> np.ndarray:
    """Composite an animated ``crop`` (h, w, 3 uint8, any size) into a copy of ``source`` at ``box``.

    The crop is resized to the box; the blend mask falls to 0 on every box edge that lies inside the image
    (on the border, and past it for a padded box, the crop reaches the border). ``mask`` (any size, values
    in [0, 1]) narrows it. Pixels where the final mask is 0 (outside the box, and its inner rims) equal the
    source's.
    """
    from PIL import Image

    x0, y0, x1, y1 = (int(round(v)) for v in box)
    bw, bh = x1 - x0, y1 - y0
    height, width = source.shape[:2]
    if bw <= 0 or bh <= 0 or x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
        raise MRAAError(f"paste-back box {tuple(box)} does not overlap the {width}x{height} image")
    patch = np.asarray(Image.fromarray(crop).resize((bw, bh), Image.BICUBIC), np.float32)
    weight = feather_mask(bh, bw, feather, (y0 > 0, y1 < height, x0 > 0, x1 < width))
    if mask is not None:
        resized = Image.fromarray((np.clip(mask, 0, 1) * 255).astype(np.uint8)).resize(
            (bw, bh), Image.BILINEAR
        )
        weight = weight * (np.asarray(resized, np.float32) / 255.0)
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
        feather: float = FEATHER,
    ) -> None:
        width, height = even_size(source.shape[1], source.shape[0])
        self.source = np.ascontiguousarray(source[:height, :width])
        self.box = box
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
