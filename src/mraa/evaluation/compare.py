"""``mraa evaluate``: score generated videos against reference videos, frame by frame.

Inputs are two videos (files, frame folders or png strips) or two folders of videos matched by name
(``clip.mp4`` matches ``clip.png`` or a frame folder ``clip``). Frames are compared in order; the two videos
of a pair must have the same number of frames and the same frame size. Metrics are pooled over all frames
of all pairs (see :mod:`mraa.evaluation.scores`).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path
from typing import Any

import numpy as np

from mraa.errors import MRAAError
from mraa.evaluation.metrics import IdentityExtractor, KeypointExtractor
from mraa.evaluation.reconstruction import output_name
from mraa.evaluation.scores import (
    IDENTITY_METRICS,
    KEYPOINT_METRICS,
    MetricTotals,
    extractor_name,
    score_batch,
)
from mraa.evaluation.synthetic_keypoints import SyntheticDataset, open_dataset

log = logging.getLogger(__name__)

BATCH = 16  # frames compared together
ROW_FORMATS = (".csv", ".jsonl")


@dataclass
class Pair:
    name: str
    generated: Path
    reference: Path


def input_kind(path: Path) -> str:
    """``video`` (a file), ``frames`` (a folder of frames) or ``videos`` (a folder of videos: video files,
    frame folders, or png strips, i.e. images whose width is a whole multiple > 1 of their height)."""
    from PIL import Image

    from mraa.data.video_io import IMAGE_SUFFIXES, VIDEO_SUFFIXES

    if not path.is_dir():
        return "video"
    entries = [p for p in path.iterdir() if not p.name.startswith(".")]
    images = sorted(p for p in entries if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not images or any(p.is_dir() or p.suffix.lower() in VIDEO_SUFFIXES for p in entries):
        return "videos"
    try:
        with Image.open(images[0]) as first:
            width, height = first.size
    except OSError as exc:
        raise MRAAError(f"cannot read image {images[0]}: {exc}") from exc
    return (
        "videos"
        if images[0].suffix.lower() == ".png" and width > height and width % height == 0
        else "frames"
    )


def _videos_in(folder: Path) -> dict[str, Path]:
    from mraa.data.video_io import IMAGE_SUFFIXES, VIDEO_SUFFIXES

    found: dict[str, Path] = {}
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir() or entry.suffix.lower() in VIDEO_SUFFIXES | {".png"}:
            name = output_name(entry.name)
            if name in found:
                raise MRAAError(f"{folder} holds two videos named {name!r}: {found[name].name}, {entry.name}")
            found[name] = entry
        elif entry.suffix.lower() not in IMAGE_SUFFIXES | {".json"}:
            log.debug("ignoring %s", entry)
    return found


def pair_videos(generated: Path, reference: Path) -> list[Pair]:
    """Match the generated and reference videos (two videos, or two folders of videos by name)."""
    for label, path in (("--generated", generated), ("--reference", reference)):
        if not path.exists():
            raise MRAAError(f"{label} not found: {path}")
    kinds = input_kind(generated), input_kind(reference)
    if set(kinds) <= {"video", "frames"}:
        return [Pair(output_name(reference.name), generated, reference)]
    if kinds != ("videos", "videos"):
        single = generated if kinds[0] != "videos" else reference
        raise MRAAError(
            f"give two videos or two folders of videos: {single} is one video, the other a folder of videos"
        )
    generated_videos, reference_videos = _videos_in(generated), _videos_in(reference)
    if not reference_videos:
        raise MRAAError(f"no videos in --reference {reference}")
    missing = sorted(set(reference_videos) - set(generated_videos))
    extra = sorted(set(generated_videos) - set(reference_videos))
    if missing or extra:
        parts = [f"no generated video for {_listing(missing)}"] if missing else []
        parts += [f"no reference video for {_listing(extra)}"] if extra else []
        raise MRAAError(f"videos do not match by name: {'; '.join(parts)}")
    return [Pair(name, generated_videos[name], path) for name, path in reference_videos.items()]


def _listing(names: list[str]) -> str:
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def _frame_pairs(pair: Pair) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(generated, reference) uint8 batches (B, H, W, 3); an error when counts or sizes differ."""
    from mraa.data.video_io import iter_video

    batch_g: list[np.ndarray] = []
    batch_r: list[np.ndarray] = []
    streams = zip_longest(iter_video(pair.generated), iter_video(pair.reference))
    for count, (frame_g, frame_r) in enumerate(streams):
        if frame_g is None or frame_r is None:
            rest = 1 + sum(1 for _ in streams)
            counts = (count, count + rest) if frame_g is None else (count + rest, count)
            raise MRAAError(
                f"{pair.name}: frame counts differ: generated {pair.generated} has {counts[0]} frames, "
                f"reference {pair.reference} has {counts[1]}"
            )
        if frame_g.shape != frame_r.shape:
            raise MRAAError(
                f"{pair.name}: frame sizes differ: generated {frame_g.shape[1]}x{frame_g.shape[0]}, "
                f"reference {frame_r.shape[1]}x{frame_r.shape[0]} (frame {count})"
            )
        batch_g.append(frame_g)
        batch_r.append(frame_r)
        if len(batch_g) == BATCH:
            yield np.stack(batch_g), np.stack(batch_r)
            batch_g, batch_r = [], []
    if batch_g:
        yield np.stack(batch_g), np.stack(batch_r)


@dataclass
class Extractors:
    """What computes the keypoint and identity metrics (None: not computed)."""

    keypoints: KeypointExtractor | None = None
    identity: IdentityExtractor | None = None
    synthetic: bool = False  # ground-truth keypoints of an `mraa synth` dataset instead of ``keypoints``

    @property
    def keypoint_name(self) -> str | None:
        return "synthetic" if self.synthetic else extractor_name(self.keypoints) if self.keypoints else None


def score_pair(pair: Pair, extractors: Extractors, synthetic: SyntheticDataset | None) -> MetricTotals:
    """All metrics of one pair of videos."""
    totals = MetricTotals()
    if extractors.synthetic:
        from mraa.data.video_io import read_video

        reference = read_video(pair.reference)
        truth = synthetic.truth(pair.name, reference)
    start = 0
    for generated, reference in _frame_pairs(pair):
        totals.add_l1(reference, generated)
        score_batch(totals, reference, generated, extractors.keypoints, extractors.identity)
        if extractors.synthetic:
            exact = truth.reference_keypoints()[start : start + len(generated)]
            totals.add_keypoints(exact, truth.generated_keypoints(generated, start))
        start += len(generated)
    return totals


@dataclass
class Evaluation:
    """Per-pair and pooled metrics."""

    metrics: tuple[str, ...]  # the keys reported
    rows: list[dict[str, Any]] = field(default_factory=list)
    totals: MetricTotals = field(default_factory=MetricTotals)
    keypoints: str | None = None
    identity: str | None = None

    def summary(self) -> dict[str, Any]:
        """The one JSON object ``mraa evaluate`` prints."""
        out: dict[str, Any] = self.totals.values(self.metrics)
        out.update(
            num_videos=len(self.rows),
            num_frames=self.totals.counts.get("l1", 0),
            keypoints=self.keypoints,
            identity=self.identity,
            counts={key: self.totals.counts.get(key, 0) for key in self.metrics},
        )
        return out

    def rows_text(self, suffix: str) -> str:
        """Per-video rows as CSV or JSON lines."""
        if suffix == ".jsonl":
            return "".join(json.dumps(row) + "\n" for row in self.rows)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(self.rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in self.rows)
        return buffer.getvalue()


def report_keys(metrics: set[str]) -> tuple[str, ...]:
    """``{"l1", "akd", "aed"}`` -> the keys reported, each with its Euclidean companion."""
    keys = ["l1"] if "l1" in metrics else []
    keys += [key for key in KEYPOINT_METRICS if key.split("_")[0] in metrics]
    keys += [key for key in IDENTITY_METRICS if key.split("_")[0] in metrics]
    return tuple(keys)


def evaluate_videos(
    generated: str | os.PathLike,
    reference: str | os.PathLike,
    metrics: set[str],
    extractors: Extractors,
    progress: bool = False,
) -> Evaluation:
    """Compare generated videos with reference videos (see the module docstring)."""
    generated, reference = Path(generated), Path(reference)
    pairs = pair_videos(generated, reference)
    synthetic = open_dataset(reference) if extractors.synthetic else None
    keys = report_keys(metrics)
    evaluation = Evaluation(metrics=keys, keypoints=extractors.keypoint_name)
    if extractors.identity is not None:
        evaluation.identity = extractor_name(extractors.identity)
    from tqdm.auto import tqdm

    for pair in tqdm(pairs, unit="video", desc="evaluate", disable=not progress):
        totals = score_pair(pair, extractors, synthetic)
        evaluation.totals.merge(totals)
        row = {"name": pair.name, "num_frames": totals.counts.get("l1", 0)}
        row.update(totals.values(keys))
        row.update({f"{key}_count": totals.counts.get(key, 0) for key in keys if key != "l1"})
        evaluation.rows.append(row)
    return evaluation
