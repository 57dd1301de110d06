"""Batching of frames: the ground floor of inference (imports nothing of the Animator or the pipeline, so the
segmentation and the file pipeline can batch frames without importing the Animator)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch
from torch import Tensor

from mraa.errors import MRAAError


def as_batch(image: Tensor) -> Tensor:
    """(C, H, W) -> (1, C, H, W); batches pass through."""
    return image.unsqueeze(0) if image.ndim == 3 else image


def iter_batches(frames: Iterable[Tensor] | Tensor, batch_size: int) -> Iterator[Tensor]:
    """Regroup frames given as a tensor (T, C, H, W) or an iterable of frames / batches into batches
    of ``batch_size`` (the last may be smaller), consuming the iterable lazily."""
    if batch_size < 1:
        raise MRAAError(f"batch size must be at least 1, got {batch_size}")
    if isinstance(frames, Tensor):
        frames = as_batch(frames)
        for start in range(0, frames.shape[0], batch_size):
            yield frames[start : start + batch_size]
        return
    pending: list[Tensor] = []
    for item in frames:
        pending.extend(as_batch(item).unbind(0))
        while len(pending) >= batch_size:
            yield torch.stack(pending[:batch_size])
            pending = pending[batch_size:]
    if pending:
        yield torch.stack(pending)
