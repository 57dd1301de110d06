"""The best reference frame, and driving an animator through a framed run.

:func:`best_frame` is pure (region centres in, an index out). :func:`best_frame_batches` and
:func:`animate_framed` are the one place where framing meets a model: they take anything that fits
:class:`Animates` (an :class:`~mraa.animate.Animator` does), with keyword arguments, and give
:class:`~mraa.framing.run.FramedRun` what it needs (animated crops, region heatmaps) as plain values.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from mraa.framing.run import FramedRun
from mraa.image import to_batch

if TYPE_CHECKING:
    from torch import Tensor

log = logging.getLogger(__name__)


class Animates(Protocol):
    """What :func:`animate_framed` needs of a model: its batch size, region parameters of frames
    (``{"shift", "affine", "covar", "heatmap"}``) and the animation of an encoded source."""

    batch_size: int

    def region_params(self, frames: Tensor) -> dict[str, Tensor]: ...

    def animate_iter(
        self,
        source: Any,
        driving: Any,
        mode: str | None = None,
        background: Any = None,
        progress: bool = False,
        total: int | None = None,
        smooth: Any = None,
    ) -> Iterator[Any]: ...


def normalized_shifts(shift: np.ndarray) -> np.ndarray:
    """Region centres (..., K, 2) centred on their mean and scaled by sqrt(area of their convex hull),
    the normalisation FOMM's --find_best_frame applies to face landmarks."""
    import torch

    from mraa.geometry import convex_hull_area

    centred = shift - shift.mean(axis=-2, keepdims=True)
    flat = centred.reshape(-1, *shift.shape[-2:])
    areas = np.array([convex_hull_area(torch.from_numpy(np.asarray(s, np.float64))) for s in flat])
    scale = np.sqrt(np.clip(areas, 1e-12, None)).reshape(*shift.shape[:-2], 1, 1)
    return centred / scale


def best_frame(source_shift: np.ndarray, driving_shifts: np.ndarray) -> int:
    """Index of the driving frame whose normalised region centres (T, K, 2) are closest to the source's
    (K, 2) in squared distance: the relative-mode reference that needs the least motion transfer."""
    source = normalized_shifts(np.asarray(source_shift, np.float64))
    driving = normalized_shifts(np.asarray(driving_shifts, np.float64))
    distances = ((driving - source[None]) ** 2).sum(axis=(1, 2))
    return int(np.argmin(distances))


def _cat_flip(parts: list, skip_first: bool = True):
    """Concatenate tensors (or dicts of tensors) of several batches along frames and reverse them."""
    import torch

    if isinstance(parts[0], dict):
        return {k: _cat_flip([p[k] for p in parts], skip_first) for k in parts[0]}
    if parts[0] is None:
        return None
    joined = torch.cat(parts).flip(0)
    return joined[:-1] if skip_first else joined  # the reference frame (first animated) comes last


def best_frame_batches(
    animator: Animates,
    state: Any,
    driving: Tensor,
    *,
    mode: str | None,
    background: Any = None,
    smooth: Any = None,
    progress: bool = False,
) -> Iterator[Any]:
    """Animated batches for ``driving`` (T, C, H, W) in frame order, with the best driving frame as the
    relative-mode reference (:func:`best_frame`): frames after it animated forwards from it, frames before
    it backwards from it. Background schedules count frames from the reference."""
    import torch

    step = animator.batch_size
    shifts = torch.cat([animator.region_params(driving[i : i + step])["shift"].float().cpu()
                        for i in range(0, len(driving), step)])  # fmt: skip
    best = best_frame(state.region_params["shift"][0].float().cpu().numpy(), shifts.numpy())
    log.info("best reference frame: driving frame %d", best)
    if best > 0:
        backward = list(
            animator.animate_iter(
                state, driving[: best + 1].flip(0), mode=mode, background=background, smooth=smooth
            )  # fmt: skip
        )
        first = backward[0]
        yield dataclasses.replace(
            first,
            prediction=_cat_flip([b.prediction for b in backward]),
            driving_region_params=_cat_flip([b.driving_region_params for b in backward]),
            region_params=_cat_flip([b.region_params for b in backward]),
            frame_indices=torch.arange(best),
            driving=_cat_flip([b.driving for b in backward]) if first.driving is not None else None,
        )
    for batch in animator.animate_iter(
        state, driving[best:], mode=mode, background=background, progress=progress,
        total=len(driving) - best, smooth=smooth,
    ):  # fmt: skip
        yield dataclasses.replace(batch, frame_indices=batch.frame_indices + best)


def animate_framed(
    animator: Animates,
    framed: FramedRun,
    state: Any,
    frames: Iterable[Tensor],
    *,
    mode: str | None,
    background: Any = None,
    progress: bool = False,
    total: int | None = None,
    smooth: Any = None,
) -> Iterator[Any]:
    """Animate the framed driving ``frames`` (batches (B, 3, h, w) at the model's size, from
    :meth:`FramedRun.driving_frames`) from the encoded source crop ``state``, and yield the animated batches
    with ``prediction`` replaced by the output frames (pasted back / resized; float, any size)."""
    import torch

    if framed.options.best_frame:
        if mode != "relative":
            log.warning("--best-frame changes only mode relative (the reference frame), not %s", mode)
        driving = torch.cat([batch.reshape(-1, *batch.shape[-3:]) for batch in frames])
        animated = best_frame_batches(
            animator, state, driving, mode=mode, background=background, smooth=smooth, progress=progress
        )
    else:
        animated = animator.animate_iter(
            state, frames, mode=mode, background=background, progress=progress, total=total, smooth=smooth
        )
    source_heatmap = None
    if framed.needs_heatmaps:
        source_heatmap = animator.region_params(to_batch(framed.source_crop))["heatmap"]
    for batch in animated:
        heatmaps = animator.region_params(batch.prediction)["heatmap"] if framed.needs_heatmaps else None
        yield framed.outputs(batch, heatmaps=heatmaps, source_heatmap=source_heatmap)
