"""Output frames for a framed run: the subject mask from region heatmaps, the output size option, and the
:class:`Compositor` that pastes animated crops back into the full-resolution source (the pure crop / paste
/ feather functions live in :mod:`mraa.boxes` and :mod:`mraa.image`; re-exported here)."""

from __future__ import annotations

import numpy as np

from mraa.boxes import Box, crop_resize, even_size, paste_back
from mraa.errors import MRAAError
from mraa.image import FEATHER, resize
from mraa.image import edge_feather as feather_mask

__all__ = [
    "FEATHER", "Box", "Compositor", "crop_resize", "even_size", "feather_mask", "heatmap_masks",
    "parse_output_size", "paste_back", "region_mask",
]  # fmt: skip


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
        frame = paste_back(self.source, crop, self.box, mask, self.feather) if self.paste else crop
        if self.output_size is not None:
            width, height = self.output_size
            frame = resize(frame, (height, width), "bicubic")
        return frame


def heatmap_masks(animator, source_heatmap, predictions) -> np.ndarray:
    """Subject masks (B, h, w) for paste-back narrowed to the subject: the region heatmaps of the source
    and of each animated frame (so both where the subject was and where it moved to are replaced)."""
    heat = animator.region_params(predictions)["heatmap"].float().cpu().numpy()  # (B, K, h, w)
    source = region_mask(source_heatmap.float().cpu().numpy()[0])  # (h, w), the same for every frame
    return np.stack([np.maximum(source, region_mask(h)) for h in heat])
