"""Co-part segmentation from the region predictor's heatmaps, and part swap (supplementary Sec. 2).

Segmentation rule (paper): pixel z belongs to part ``argmax_k M^k(z)``, and to the background iff
``sum_k M^k(z) < threshold`` (0.001). Labels are ``0`` for the background and ``k`` (1-based) for part k, so
part k has the colour and the index of region k-1 everywhere else in mraa.

Resolution. The heatmaps live at the predictor's resolution (a quarter of the image, 6 px less per side
with ``pad: 0``), and each map sums to 1 over *those* pixels, so the 0.001 threshold is a value of heatmap
mass per native heatmap pixel. To segment at image size we interpolate the maps bilinearly, without
renormalising them, on the model's own coordinate grid (``align_corners=True``: the corner heatmap pixels
sit at the image corners, as in :func:`mraa.geometry.make_coordinate_grid`, also when ``pad: 0`` shrinks the
maps), and apply the rule to the interpolated values. Interpolation is linear, so the interpolated sum is
the sum of the interpolated maps: at every image pixel that falls on a heatmap pixel centre the labels and
the background decision are exactly the paper's, and in between the boundary follows the same level set
``sum = threshold`` with sub-pixel precision instead of heatmap-sized blocks. Renormalising the upsampled
maps to sum to 1 over the image would instead divide every value by ``(H*W)/(h*w)`` (16 at the usual 4x),
making the same threshold 16 times more permissive and its meaning depend on the output size.

Soft masks. ``soft_masks[k]`` is part k's share ``M^k / sum_j M^j`` of the heatmap mass inside the
foreground and 0 in the background, so the soft masks of all parts add up to the foreground indicator and
their argmax is the label map.

Part swap. Animate the source with the driving motion (``standard`` mode by default: the driving regions
as they are, so the animated parts land where the driving frame's parts are), then composite it into the
driving frame through the driving frame's masks of the chosen parts:
``result = mask * animated + (1 - mask) * driving``.
"""

from __future__ import annotations

import logging
import math
import re
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mraa.errors import MRAAError
from mraa.image import MAX_FEATHER as MAX_FEATHER  # feather masks live in mraa.image; old names kept
from mraa.image import blur_mask as feather_mask
from mraa.image import check_feather as check_feather
from mraa.inference.batching import as_batch, iter_batches

# drawing lives in mraa.visualize; these two stay importable from here for callers not yet updated
from mraa.visualize import add_caption, overlay_segmentation  # noqa: F401


class RegionSource(Protocol):
    """What segmentation needs of an :class:`~mraa.animate.Animator` (typed here so that this module
    does not import the animator): its region parameters and its networks."""

    models: nn.Module

    def region_params(self, frames: Tensor) -> dict[str, Tensor]: ...


log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 1e-3


# ----------------------------------------------------------------------------- segmentation
@dataclass
class Segmentation:
    """Co-part segmentation of a batch of frames.

    Attributes:
        labels: (B, H, W) int64; 0 = background, k = part k (1..K).
        soft_masks: (B, K, H, W) float in [0, 1]; part k's share of the heatmap mass in the foreground,
            0 in the background (they sum to the foreground indicator).
        threshold: the background threshold used.
        heatmap: (B, K, h, w) the heatmaps it was made from, at the predictor's resolution.
    """

    labels: Tensor
    soft_masks: Tensor
    threshold: float = DEFAULT_THRESHOLD
    heatmap: Tensor | None = None

    @property
    def num_parts(self) -> int:
        return self.soft_masks.shape[1]

    @property
    def foreground(self) -> Tensor:
        """(B, H, W) bool."""
        return self.labels > 0

    def part_mask(self, parts: Sequence[int], feather: float = 0.0) -> Tensor:
        """Soft mask (B, 1, H, W) of the union of ``parts`` (1-based), blurred by ``feather`` px if > 0."""
        index = torch.as_tensor(check_parts(parts, self.num_parts), device=self.soft_masks.device) - 1
        mask = self.soft_masks.index_select(1, index).sum(dim=1, keepdim=True).clamp(0, 1)
        return feather_mask(mask, feather)

    def resize(self, size: tuple[int, int]) -> Segmentation:
        """The same segmentation made at another size (H, W) from the stored heatmaps."""
        if self.heatmap is None:
            raise ValueError("this segmentation does not carry its heatmaps")
        return segment_heatmaps(self.heatmap, size, self.threshold)


def upsample_heatmaps(heatmap: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear interpolation of heatmaps (B, K, h, w) to (B, K, H, W) on the model's coordinate grid
    (corner pixels to corner pixels), keeping their values (mass per heatmap pixel), not renormalised."""
    if tuple(heatmap.shape[-2:]) == tuple(size):
        return heatmap
    return F.interpolate(heatmap, size=tuple(size), mode="bilinear", align_corners=True)


def segment_heatmaps(
    heatmap: Tensor, size: tuple[int, int] | None = None, threshold: float = DEFAULT_THRESHOLD
) -> Segmentation:
    """Segment frames from region heatmaps (B, K, h, w), each summing to 1 at the predictor's resolution.

    Args:
        heatmap: the region predictor's ``heatmap`` output.
        size: output (H, W); default the heatmap's own size (exactly the paper's rule).
        threshold: background iff the summed heatmaps fall below it (see the module docstring for why the
            value keeps its native-resolution meaning after upsampling).
    """
    threshold = check_threshold(threshold)
    if heatmap.ndim != 4:
        raise ValueError(f"expected heatmaps (B, K, h, w), got shape {tuple(heatmap.shape)}")
    maps = heatmap.to(torch.promote_types(heatmap.dtype, torch.float32))
    maps = upsample_heatmaps(maps, size or heatmap.shape[-2:])  # (B, K, H, W)
    total = maps.sum(dim=1)  # (B, H, W)
    foreground = total >= threshold
    best = maps.argmax(dim=1)  # (B, H, W)
    labels = torch.where(foreground, best + 1, torch.zeros_like(best))
    share = maps / total.clamp_min(torch.finfo(maps.dtype).tiny).unsqueeze(1)
    empty = (total <= 0).unsqueeze(1)  # only foreground with threshold 0: all of it to the argmax part
    share = torch.where(empty, F.one_hot(best, maps.shape[1]).permute(0, 3, 1, 2).to(maps.dtype), share)
    soft_masks = share.clamp(0, 1) * foreground.unsqueeze(1)  # (B, K, H, W)
    return Segmentation(labels, soft_masks, threshold, heatmap)


def segment(
    model: RegionSource | nn.Module,
    frames: Tensor,
    size: tuple[int, int] | None = None,
    threshold: float = DEFAULT_THRESHOLD,
) -> Segmentation:
    """Segment frames (B, 3, H, W) in [0, 1] with an :class:`~mraa.animate.Animator` or a ``RegionPredictor``.

    The segmentation has the frames' size unless ``size`` is given.
    """
    if frames.ndim == 3:
        frames = frames.unsqueeze(0)
    heatmap = _heatmaps(model, frames)
    return segment_heatmaps(heatmap, size or tuple(frames.shape[-2:]), threshold)


def iter_segment(
    model: RegionSource | nn.Module,
    frames: Iterable[Tensor],
    size: tuple[int, int] | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    batch_size: int = 4,
) -> Iterator[tuple[Tensor, Segmentation]]:
    """Segment a stream of frames (each (3, H, W) or (B, 3, H, W)) in batches, lazily.

    Yields ``(frames (B, 3, H, W), segmentation)`` per batch, in order.
    """
    check_threshold(threshold)
    for batch in iter_batches(frames, batch_size):
        yield batch, segment(model, batch, size, threshold)


def _heatmaps(model: RegionSource | nn.Module, frames: Tensor) -> Tensor:
    if not isinstance(model, nn.Module):  # an Animator
        return model.region_params(frames)["heatmap"]
    device = next(model.parameters()).device
    with torch.no_grad():
        return model(frames.to(device))["heatmap"]


def _num_parts(model: RegionSource | nn.Module) -> int:
    predictor = model if isinstance(model, nn.Module) else model.models.region_predictor
    return int(predictor.num_regions)


def check_threshold(threshold: float) -> float:
    """The threshold as a float; a clear error when it is negative or not a number."""
    value = float(threshold)
    if not math.isfinite(value) or value < 0:
        raise MRAAError(f"the background threshold must be a non-negative number, got {threshold}")
    return value


# ----------------------------------------------------------------------------- parts and masks
def parse_parts(spec: str | int | Sequence[int], num_parts: int | None) -> list[int]:
    """Part indices (1-based, sorted, unique) from ``"1,3"``, ``"2-4"``, ``"all"`` or a sequence of ints.

    With ``num_parts=None`` only the syntax (and that 0, the background, is not a part) is checked.
    """
    if isinstance(spec, int):
        spec = [spec]
    if isinstance(spec, str):
        text = spec.strip().lower()
        if text == "all":
            return list(range(1, num_parts + 1)) if num_parts is not None else []
        items = [item.strip() for item in text.split(",")]
        if text and "" in items:  # "1,,2" or a trailing comma: a typo, not a request for fewer parts
            raise MRAAError(f"parts {spec!r} has an empty item: give indices like 1,3 or a range like 2-4")
        parts: list[int] = []
        for item in filter(None, items):
            match = re.fullmatch(r"(-?\d+)(?:\s*-\s*(-?\d+))?", item)
            if match is None:
                raise MRAAError(f"parts {spec!r}: expected indices like 1,3 or a range like 2-4, or 'all'")
            first = int(match.group(1))
            last = int(match.group(2)) if match.group(2) is not None else first
            if last < first:
                raise MRAAError(f"parts {spec!r}: empty range {item!r}")
            parts.extend(range(first, last + 1))
        spec = parts
    return check_parts(spec, num_parts)


def check_parts(parts: Sequence[int], num_parts: int | None) -> list[int]:
    """Validate 1-based part indices against the model's number of parts; returns them sorted and unique."""
    values = sorted({int(p) for p in parts})
    if not values:
        raise MRAAError("no parts chosen: give part indices such as 1,3")
    for part in values:
        if part == 0:
            raise MRAAError("part 0 is the background, not a part: parts are numbered from 1")
        if part < 0 or (num_parts is not None and part > num_parts):
            limit = (
                f"this model has {num_parts} parts (1 to {num_parts})" if num_parts else "parts start at 1"
            )
            raise MRAAError(f"part {part} does not exist: {limit}")
    return values


def labels_to_mask(labels: Tensor, parts: Sequence[int], feather: float = 0.0) -> Tensor:
    """Hard mask (B, 1, H, W) of label maps (B, H, W) being one of ``parts``, blurred by ``feather`` px."""
    chosen = torch.as_tensor(list(parts), device=labels.device)
    mask = torch.isin(labels, chosen).unsqueeze(1).float()
    return feather_mask(mask, feather)


def composite(foreground: Tensor, background: Tensor, mask: Tensor) -> Tensor:
    """``mask * foreground + (1 - mask) * background`` for images (B, 3, H, W) and masks (B, 1, H, W)."""
    if foreground.shape != background.shape or mask.shape[-2:] != foreground.shape[-2:]:
        raise MRAAError(
            f"cannot composite images of size {tuple(foreground.shape[-2:])} and {tuple(background.shape[-2:])} "
            f"through a mask of size {tuple(mask.shape[-2:])}"
        )
    return mask * foreground + (1 - mask) * background


# ----------------------------------------------------------------------------- part swap
@dataclass
class SwapBatch:
    """One batch of a part swap: the ``result`` (B, 3, H, W), the plain ``animated`` source, the ``driving``
    frames, the compositing ``mask`` (B, 1, H, W) and the frame indices."""

    result: Tensor
    animated: Tensor
    driving: Tensor
    mask: Tensor
    frame_indices: Tensor


def swap_parts_iter(
    animator: Any,
    source: Tensor,
    driving: Iterable[Tensor] | Tensor,
    parts: str | Sequence[int],
    mode: str = "standard",
    feather: float = 0.0,
    threshold: float = DEFAULT_THRESHOLD,
    labels: Tensor | Iterable[Tensor] | None = None,
    progress: bool = False,
    total: int | None = None,
) -> Iterator[SwapBatch]:
    """Put the source's appearance on the chosen parts of the driving frames, streaming.

    Args:
        animator: an :class:`~mraa.animate.Animator`.
        source: (1, 3, H, W) in [0, 1] at the model's size.
        driving: (T, 3, H, W) or an iterable of frames (3, H, W) / batches, at the model's size.
        parts: 1-based part indices (``"1,3"``, ``"all"``, or a sequence).
        mode: animation mode; ``standard`` keeps the driving regions' positions and shapes, so the animated
            parts line up with the driving frame's masks.
        feather: Gaussian blur (sigma, pixels) of the masks.
        threshold: background threshold of the driving frames' segmentation.
        labels: instead of segmenting the driving frames, label maps (H, W) for every frame, or one per
            frame as an iterable / a (T, H, W) tensor (e.g. edited outputs of ``mraa segment``).
    """
    parts = parse_parts(parts, _num_parts(animator))
    check_threshold(threshold)
    feather_mask(torch.zeros(1, 1, 1, 1), feather)  # validates feather before any work
    pending: deque[Tensor] = deque()

    def recorded() -> Iterator[Tensor]:
        for item in driving:
            item = as_batch(item)
            pending.extend(item.unbind(0))
            yield item

    label_stream = _label_stream(labels)
    batches = animator.animate_iter(source, recorded(), mode, progress=progress, total=total)
    for batch in batches:
        animated = batch.prediction
        frames = torch.stack([pending.popleft() for _ in range(animated.shape[0])]).to(animated)
        if label_stream is None:
            heatmap = batch.driving_region_params["heatmap"]
            mask = segment_heatmaps(heatmap, tuple(frames.shape[-2:]), threshold).part_mask(parts, feather)
        else:
            label_maps = torch.stack(
                [_next_labels(label_stream, int(i), frames) for i in batch.frame_indices]
            )
            mask = labels_to_mask(label_maps.to(animated.device), parts, feather)
        yield SwapBatch(composite(animated, frames, mask), animated, frames, mask, batch.frame_indices)


def swap_parts(
    animator: Any, source: Tensor, driving: Tensor, parts: str | Sequence[int], **kwargs
) -> Tensor:
    """Part swap of a whole driving clip (T, 3, H, W); returns the results (T, 3, H, W). See
    :func:`swap_parts_iter` for the arguments."""
    return torch.cat([b.result.cpu() for b in swap_parts_iter(animator, source, driving, parts, **kwargs)])


def _label_stream(labels: Tensor | Iterable[Tensor] | None) -> Iterator[Tensor] | None:
    if labels is None:
        return None
    if isinstance(labels, Tensor) and labels.ndim == 2:

        def repeat() -> Iterator[Tensor]:
            while True:
                yield labels

        return repeat()
    return iter(labels)


def _next_labels(stream: Iterator[Tensor], index: int, frames: Tensor) -> Tensor:
    try:
        label_map = torch.as_tensor(next(stream))
    except StopIteration as exc:
        raise MRAAError(f"the label maps ran out at driving frame {index}: give one per frame") from exc
    size = tuple(frames.shape[-2:])
    if tuple(label_map.shape) != size:
        raise MRAAError(
            f"label map for frame {index} is {label_map.shape[-1]}x{label_map.shape[0]} (WxH) but the frames "
            f"are {size[1]}x{size[0]}: make it with `mraa segment` and the same model"
        )
    return label_map.long()
