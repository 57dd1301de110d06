"""Ground-truth keypoints for ``mraa synth`` videos (``mraa evaluate --keypoints synthetic``).

A synthetic dataset's ``metadata.json`` holds its seed, its config and the index of every video, so the
generator re-renders any video with its part label maps and part centres (nothing extra is stored).

- Reference keypoints are the generator's part centres, exact (a part hidden behind others in a frame,
  fewer than :data:`MIN_PIXELS` visible pixels, is missing there).
- Generated keypoints: each part's visible pixels (labels from the re-render; colours from the reference
  file, which must match the re-render) are searched for in the generated frame, over integer shifts up to
  :func:`search_radius` with a sub-pixel parabola fit; the part's keypoint is its exact centre plus the best
  shift. A part whose best match still differs by more than
  :data:`MAX_RMS` (RMS, colours in [0, 1]) is missing. A reference scores AKD 0 and MKR 0 against itself,
  and a copy shifted by whole pixels scores exactly that shift.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mraa.errors import MRAAError
from mraa.image import uint8_to_float

log = logging.getLogger(__name__)

MIN_PIXELS = 4
MAX_RMS = 0.15
MAX_MATCH_PIXELS = 600  # a part's pixels are thinned to this many for the search
MAX_REFERENCE_DIFFERENCE = 12 / 255  # mean |difference| allowed between a reference file and its re-render


def search_radius(size: int) -> int:
    """Largest shift searched, pixels: 15% of the frame, at least 3 and at most 16."""
    return int(min(16, max(3, round(0.15 * size))))


@dataclass
class SyntheticTruth:
    """A re-rendered synthetic video: frames (T, H, W, 3) uint8, labels (T, H, W), centres (T, P, 2)."""

    frames: np.ndarray
    labels: np.ndarray
    centers: np.ndarray

    def reference_keypoints(self) -> np.ndarray:
        """(T, P, 2) exact part centres, NaN where a part shows fewer than MIN_PIXELS pixels."""
        parts = self.centers.shape[1]
        counts = np.stack([(self.labels == k + 1).sum(axis=(1, 2)) for k in range(parts)], axis=1)  # (T, P)
        return np.where((counts >= MIN_PIXELS)[..., None], self.centers.astype(np.float64), np.nan)

    def generated_keypoints(self, generated: np.ndarray, start: int = 0) -> np.ndarray:
        """(B, P, 2) keypoints in generated frames (B, H, W, 3) that stand for frames ``start .. start+B-1``."""
        reference = self.reference_keypoints()
        out = np.full((len(generated), self.centers.shape[1], 2), np.nan)
        radius = search_radius(self.frames.shape[1])
        for b, frame in enumerate(uint8_to_float(generated)):
            t = start + b
            truth = uint8_to_float(self.frames[t])
            for k in np.flatnonzero(np.isfinite(reference[t, :, 0])):
                shift = match_part(truth, frame, self.labels[t] == k + 1, radius)
                if shift is not None:
                    out[b, k] = reference[t, k] + shift
        return out


def match_part(truth: np.ndarray, frame: np.ndarray, mask: np.ndarray, radius: int) -> np.ndarray | None:
    """Shift (dx, dy) that best moves ``truth``'s pixels under ``mask`` onto ``frame`` (both (H, W, 3) in
    [0, 1]); None when even the best match is poor."""
    ys, xs = np.nonzero(mask)
    if len(ys) > MAX_MATCH_PIXELS:  # an even subsample keeps the cost bounded on large frames
        keep = np.linspace(0, len(ys) - 1, MAX_MATCH_PIXELS).round().astype(int)
        ys, xs = ys[keep], xs[keep]
    height, width = mask.shape
    offsets = np.arange(-radius, radius + 1)
    dy, dx = np.meshgrid(offsets, offsets, indexing="ij")  # (S, S)
    ty, tx = ys[None, None] + dy[..., None], xs[None, None] + dx[..., None]  # (S, S, M)
    inside = (ty >= 0) & (ty < height) & (tx >= 0) & (tx < width)
    values = frame[np.clip(ty, 0, height - 1), np.clip(tx, 0, width - 1)]  # (S, S, M, 3)
    error = ((values - truth[ys, xs]) ** 2).sum(axis=-1)  # (S, S, M)
    coverage = inside.mean(axis=-1)
    cost = np.where(inside, error, 0.0).sum(axis=-1) / np.maximum(inside.sum(axis=-1), 1)  # (S, S)
    cost = np.where(coverage >= 0.5, cost, np.inf)
    iy, ix = np.unravel_index(int(np.argmin(cost)), cost.shape)
    best = cost[iy, ix]
    if not np.isfinite(best) or np.sqrt(best / 3) > MAX_RMS:
        return None
    shift = np.array([offsets[ix], offsets[iy]], dtype=np.float64)
    if best > 0:  # an exact match stays exact; otherwise refine each axis with a parabola
        padded = np.pad(cost, 1, constant_values=np.inf)  # neighbours outside the search are unknown
        y, x = iy + 1, ix + 1
        shift += [
            _parabola(padded[y, x - 1], best, padded[y, x + 1]),
            _parabola(padded[y - 1, x], best, padded[y + 1, x]),
        ]
    return shift


def _parabola(left: float, centre: float, right: float) -> float:
    """Offset in [-0.5, 0.5] of the minimum of a parabola through three equally spaced costs."""
    if not (np.isfinite(left) and np.isfinite(right)):
        return 0.0
    curvature = left - 2 * centre + right
    return float(np.clip(0.5 * (left - right) / curvature, -0.5, 0.5)) if curvature > 0 else 0.0


# ----------------------------------------------------------------------------- the dataset's metadata
def open_dataset(reference: Path) -> SyntheticDataset:
    """The synthetic dataset split that holds ``reference`` (a video, or its split folder)."""
    reference = reference.resolve()
    for folder in [reference, *reference.parents][:3]:
        candidate = folder / "metadata.json"
        if candidate.is_file() and folder != reference:
            return SyntheticDataset(candidate, split=reference.relative_to(folder).parts[0])
    raise MRAAError(
        f"--keypoints synthetic: no metadata.json of an `mraa synth` dataset in or above {reference}; "
        "give the dataset's test/ folder (or a video in it) as --reference"
    )


class SyntheticDataset:
    """The videos of one split of an ``mraa synth`` dataset, re-rendered on demand from its ``metadata.json``."""

    def __init__(self, metadata_path: Path, split: str = "test") -> None:
        from mraa.data.synthetic import GENERATOR_VERSION, SynthConfig

        try:
            metadata = json.loads(metadata_path.read_text())
            self.seed = int(metadata["seed"])
            self.config = SynthConfig(**metadata["config"])
            self.index = {e["name"]: int(e["index"]) for e in metadata["videos"] if e["split"] == split}
            version = metadata.get("generator_version")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise MRAAError(f"{metadata_path} is not an `mraa synth` metadata file: {exc}") from exc
        self.split = split
        if version != GENERATOR_VERSION:
            raise MRAAError(
                f"{metadata_path} was written by generator version {version}; this mraa renders version "
                f"{GENERATOR_VERSION}, so its ground truth would not match"
            )

    def truth(self, name: str, reference: np.ndarray | None = None) -> SyntheticTruth:
        """Re-render video ``name``; with ``reference`` frames (T, H, W, 3), check that they are that video."""
        from mraa.data.synthetic import render_video

        if name not in self.index:
            raise MRAAError(
                f"--keypoints synthetic: video {name!r} is not in the {self.split} split of the dataset's "
                "metadata.json"
            )
        frames, parts = render_video(self.seed, self.index[name], self.config, return_parts=True)
        if reference is not None:
            if reference.shape != frames.shape:
                raise MRAAError(
                    f"reference {name} has frames {reference.shape} but the synthetic dataset renders it as "
                    f"{frames.shape}"
                )
            difference = np.abs(reference.astype(np.float32) - frames).mean() / 255
            if difference > MAX_REFERENCE_DIFFERENCE:
                raise MRAAError(
                    f"reference {name} differs from the synthetic video of that name (mean difference "
                    f"{difference:.3f}): it is not the dataset's video"
                )
            frames = reference  # the parts' appearance as the file holds it (an mp4's compression included),
            # so the reference scores exactly 0 against itself; the centres and labels stay the exact ones
        return SyntheticTruth(frames=frames, labels=parts.labels, centers=parts.centers)
