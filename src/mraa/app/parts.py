"""The app's segmentation and part-swap jobs (a mixin of :class:`mraa.app.service.AnimationService`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from mraa.app.results import AnimationResult
from mraa.errors import MRAAError
from mraa.inference.pipeline import ProgressCallback


@dataclass
class PartsView:
    """A segmentation drawn for the page: the overlay (parts tinted and numbered, a legend strip below), the
    label map at the overlay's scale (for clicks) and each label's share of its pixels (index 0: background)."""

    overlay: np.ndarray  # (H' + legend, W', 3) uint8
    labels: np.ndarray  # (H', W') int64, 0 = background
    shares: np.ndarray  # (K + 1,) percent


def _threshold(value: float | None) -> float:
    """The background threshold, checked (an empty number box gives None)."""
    from mraa.segmentation import check_threshold

    if value is None:
        raise MRAAError("enter a background threshold (the paper uses 0.001)")
    return check_threshold(value)


class PartsMixin:
    """Segmentation overlays and part swap; needs the service's animator, lock, readers and result folders."""

    @property
    def display_scale(self) -> int:
        """Upscaling of segmentation overlays, so that they are at least 256 pixels wide."""
        return max(1, -(-256 // self.image_size[1]))

    def parts_view(self, image: np.ndarray, threshold: float = 1e-3) -> PartsView:
        """Segment one uint8 frame (H, W, 3) at the model's size and draw it at :attr:`display_scale`."""
        from mraa.image import to_batch

        return self._segment_and_draw([image], to_batch(image), threshold)[0]

    def _segment_and_draw(
        self, images: list[np.ndarray], frames: Tensor, threshold: float
    ) -> list[PartsView]:
        """Segment frames (B, 3, H, W) at the overlay's size and draw them over ``images`` (uint8)."""
        from mraa.image import resize
        from mraa.segmentation import overlay_segmentation, segment

        h, w = self.image_size
        size = (h * self.display_scale, w * self.display_scale)
        with self._lock:
            seg = segment(self.animator, frames, size=size, threshold=threshold)
        views = []
        for image, labels in zip(images, seg.labels.cpu().numpy()):
            shown = resize(image, size, "bicubic")
            counts = np.bincount(labels.ravel(), minlength=seg.num_parts + 1)
            overlay = overlay_segmentation(shown, labels, seg.num_parts)
            views.append(PartsView(overlay, labels, counts / counts.sum() * 100))
        return views

    def segment_source(
        self, path: str | os.PathLike | None, threshold: float | None, crop: str | bool = "none"
    ) -> PartsView:
        """Parts of the source image."""
        threshold = _threshold(threshold)
        _, image = self.load_source(path, crop)
        return self.parts_view(image, threshold)

    def segment_driving(
        self,
        path: str | os.PathLike | None,
        threshold: float | None,
        crop: str | bool = "none",
        progress: ProgressCallback | None = None,
        first_only: bool = False,
    ) -> tuple[PartsView, Path | None]:
        """Parts of the first driving frame and (unless ``first_only``) an overlay video of all frames."""
        from mraa.image import to_tensor
        from mraa.inference.pipeline import write_frames

        threshold = _threshold(threshold)
        if first_only:
            frame, _ = self.inspect_driving(path, crop)
            return self.parts_view(frame, threshold), None
        clip = self.load_driving(path, crop)
        total = len(clip.frames)
        output = self._new_result_dir() / f"parts_{Path(str(path)).stem[:40]}.mp4"
        first: list[PartsView] = []
        batch_size = self.animator.batch_size

        def overlays():
            for start in range(0, total, batch_size):
                images = clip.frames[start : start + batch_size]
                views = self._segment_and_draw(images, to_tensor(np.stack(images)), threshold)
                first[:1] = first[:1] or views[:1]
                yield [view.overlay for view in views]

        write_frames(output, clip.fps, overlays(), on_progress=progress, total=total)
        return first[0], output

    def swap(
        self,
        source_path: str | os.PathLike | None,
        driving_path: str | os.PathLike | None,
        parts: str | list[int] | None,
        mode: str = "standard",
        feather: float = 0.0,
        threshold: float | None = 1e-3,
        crop: str | bool = "none",
        progress: ProgressCallback | None = None,
    ) -> AnimationResult:
        """Part swap: the driving video with ``parts`` (1-based) showing the source's appearance."""
        from mraa.image import to_tensor
        from mraa.inference.pipeline import SwapOptions, swap_video
        from mraa.segmentation import feather_mask, parse_parts

        if parts is None or (not isinstance(parts, str) and len(parts) == 0) or str(parts).strip() == "":
            raise MRAAError("no parts chosen: tick part numbers or click on parts in the overlays")
        chosen = parse_parts(parts if isinstance(parts, str) else [int(p) for p in parts], self.num_regions)
        mode, _ = self.check_options(mode, "still")
        threshold = _threshold(threshold)
        feather_mask(torch.zeros(1, 1, 1, 1), float(feather))
        source, _ = self.load_source(source_path, crop)
        clip = self.load_driving(driving_path, crop)
        total = len(clip.frames)
        notes = [f"parts {', '.join(map(str, chosen))} swapped"]
        if clip.truncated:
            notes.append(f"the driving video was cut to its first {self.limits.max_frames} frames")
        output = self._new_result_dir() / f"swap_{Path(str(source_path)).stem[:40]}.mp4"
        frames = (to_tensor(f) for f in clip.frames)
        audio_from = Path(driving_path) if clip.has_audio else None
        options = SwapOptions(tuple(chosen), mode, float(feather), threshold, progress=progress or False)
        with self._lock:  # the same file pipeline as `mraa swap`
            swap_video(self.animator, source, frames, output, options, clip.fps, audio_from, total)
        return AnimationResult(output, total, clip.fps, mode, notes)
