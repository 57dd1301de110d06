"""Settings of dataset preparation (kept free of heavy imports so the CLI parser builds fast)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from mraa.errors import MRAAError


@dataclass
class PrepareOptions:
    """Settings of :func:`prepare_dataset`; the defaults follow the paper's TED-talks recipe.

    Attributes:
        min_frames: shortest chunk kept (frames).
        min_person_height: smallest person box height, in source pixels, for a frame to count.
        max_shift: a chunk ends when the person's box center moved more than this fraction of
            their height from where it was at the chunk's first frame.
        max_scale_change: a chunk ends when the box height changed by more than this fraction.
        crop_scale: the square crop's side is this times the person's largest box side.
        size: side of the output frames; chunks whose crop is smaller are dropped (no upscaling).
        detector: registered detector name, or ``"boxes"`` for precomputed boxes.
        boxes_dir: folder of precomputed boxes (``<video stem>.json`` or ``.csv``).
        detect_every: run the detector on every N-th frame and interpolate in between.
        max_gap: longest stretch (frames) interpolated between two boxes; default ``2 * detect_every``.
        smooth_frames: moving-average window over the person's box (frames); 1 turns it off.
        shot_threshold: PySceneDetect content threshold; 0 turns cut detection off.
        min_shot_frames: shortest shot PySceneDetect may produce.
        test_fraction: fraction of the kept videos that go to ``test/``.
        seed: seed of the train/test shuffle.
        format: ``"mp4"`` files or ``"png"`` frame folders.
    """

    min_frames: int = 64
    min_person_height: float = 384
    max_shift: float = 0.2
    max_scale_change: float = 0.25
    crop_scale: float = 1.2
    size: int = 384
    detector: str = "haar-upperbody"
    boxes_dir: str | None = None
    detect_every: int = 5
    max_gap: int | None = None
    smooth_frames: int = 9
    shot_threshold: float = 27.0
    min_shot_frames: int = 15
    test_fraction: float = 0.1
    seed: int = 0
    format: str = "mp4"

    def validate(self) -> None:
        """Raise MRAAError on settings that cannot work."""
        from mraa.data.prepare.detectors import detector_names

        for name in ("min_person_height", "max_shift", "max_scale_change", "crop_scale", "shot_threshold"):
            if not math.isfinite(getattr(self, name)):  # nan passes every comparison below
                raise MRAAError(f"{name} must be a finite number, got {getattr(self, name)}")
        checks = [
            (self.min_frames >= 1, "min_frames must be at least 1"),
            (self.min_person_height >= 0, "min_person_height must be >= 0"),
            (self.max_shift > 0, "max_shift must be > 0"),
            (self.max_scale_change > 0, "max_scale_change must be > 0"),
            (self.crop_scale >= 1, "crop_scale must be >= 1"),
            (8 <= self.size <= 4096, f"size must be between 8 and 4096 pixels, got {self.size}"),
            (self.detect_every >= 1, "detect_every must be at least 1"),
            (self.max_gap is None or self.max_gap >= 1, "max_gap must be at least 1"),
            (self.smooth_frames >= 1, "smooth_frames must be at least 1"),
            (
                0 <= self.shot_threshold <= 255,
                f"shot_threshold must be between 0 and 255, got {self.shot_threshold}",
            ),
            (self.min_shot_frames >= 1, "min_shot_frames must be at least 1"),
            (0 <= self.test_fraction <= 1, "test_fraction must be between 0 and 1"),
            (self.format in ("mp4", "png"), "format must be 'mp4' or 'png'"),
            (self.detector in detector_names(), f"detector must be one of {', '.join(detector_names())}"),
            (self.detector != "boxes" or bool(self.boxes_dir), "the 'boxes' detector needs a boxes folder"),
        ]
        for ok, message in checks:
            if not ok:
                raise MRAAError(message)

    @property
    def interpolation_gap(self) -> int:
        return self.max_gap if self.max_gap is not None else 2 * self.detect_every
