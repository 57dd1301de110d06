"""Phases 1 and 2 of :func:`mraa.data.prepare.prepare_dataset`: find the input videos, analyse each in one
decoding pass (shots, person boxes; cached as JSON), plan its chunks, and split the videos into train and test."""

from __future__ import annotations

import json
import os
import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from mraa.data import video_io
from mraa.data.prepare.chunks import PlannedChunk, plan_chunks, smooth_track, track_main_person
from mraa.data.prepare.detectors import Box, PersonDetector, detections_to_json
from mraa.data.prepare.options import PrepareOptions
from mraa.data.prepare.shots import ShotDetector
from mraa.errors import MRAAError

ANALYSIS_VERSION = 1


def frame_progress(total: int | None, enabled: bool, name: str) -> tqdm:
    """A frame progress bar for one video (decoding passes)."""
    return tqdm(
        total=total, desc=name[:30], unit="frame", leave=False, disable=not enabled, dynamic_ncols=True
    )


# ---------------------------------------------------------------------------------------------------------
# inputs


def find_videos(inputs: Iterable[str | os.PathLike], exclude: str | os.PathLike | None = None) -> list[Path]:
    """Expand files and folders into video paths (sorted, de-duplicated).

    A folder contributes the video files below it; a folder with no video files but with images is
    itself one video (a frame folder). Anything under ``exclude`` (the output folder) is skipped.
    """
    exclude_path = Path(exclude).resolve() if exclude else None
    found: list[Path] = []
    for item in inputs:
        path = Path(item)
        if not path.exists():
            raise MRAAError(f"input not found: {path}")
        if path.is_file():
            found.append(path)
            continue
        videos = [p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in video_io.VIDEO_SUFFIXES]
        if not videos and any(p.suffix.lower() in video_io.IMAGE_SUFFIXES for p in path.iterdir()):
            videos = [path]
        found.extend(videos)
    unique: dict[Path, Path] = {}
    for path in found:
        resolved = path.resolve()
        if exclude_path and (resolved == exclude_path or exclude_path in resolved.parents):
            continue
        unique.setdefault(resolved, path)
    return sorted(unique.values(), key=lambda p: str(p))


def video_ids(paths: Sequence[Path]) -> list[str]:
    """Unique, filename-safe ids from the video names (``#`` is reserved as the chunk name separator)."""
    ids: list[str] = []
    seen: Counter = Counter()
    for path in paths:
        stem = path.stem if path.is_file() else path.name
        base = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "video"
        seen[base] += 1
        ids.append(base if seen[base] == 1 else f"{base}_{seen[base]}")
    return ids


# ---------------------------------------------------------------------------------------------------------
# phase 1: analysis


def analysis_key(source: Path, options: PrepareOptions, detector_name: str, boxes: Path | None) -> dict:
    stat = source.stat()
    key: dict[str, Any] = {
        "version": ANALYSIS_VERSION,
        "source": str(source.resolve()),
        "source_size": stat.st_size if source.is_file() else len(list(source.iterdir())),
        "source_mtime_ns": stat.st_mtime_ns,
        "detector": detector_name,
        "detect_every": options.detect_every,
        "shot_threshold": options.shot_threshold,
        "min_shot_frames": options.min_shot_frames,
        "min_person_height": options.min_person_height if boxes is None else None,  # sets the smallest face
    }
    if boxes is not None:
        key["boxes"] = str(boxes.resolve())
        key["boxes_mtime_ns"] = boxes.stat().st_mtime_ns
    return key


def analyse_video(
    source: Path,
    options: PrepareOptions,
    detector: PersonDetector | None,
    detections: dict[int, list[Box]] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """One decoding pass: shots, frame size, and person boxes on every ``detect_every``-th frame.

    Args:
        source: video file or frame folder.
        options: preparation settings.
        detector: runs on the looked-at frames unless ``detections`` (precomputed boxes) are given.
        detections: precomputed boxes per frame.
        progress: show a frame progress bar.

    Returns:
        A JSON-serialisable dict with ``fps``, ``num_frames``, ``frame_size``, ``shots`` and ``detections``.
    """
    fps = video_io.probe_video(source).fps
    shots = ShotDetector(options.shot_threshold, options.min_shot_frames, fps)
    found: dict[int, list[Box]] = {} if detections is None else dict(detections)
    frame_size: tuple[int, int] | None = None
    with frame_progress(None, progress, source.name) as bar:
        for index, frame in enumerate(video_io.iter_video(source)):
            if frame_size is None:
                frame_size = (int(frame.shape[0]), int(frame.shape[1]))
            shots.push(frame)
            if detections is None and detector is not None and index % options.detect_every == 0:
                found[index] = list(detector.detect(frame))
            bar.update(1)
    if frame_size is None:  # iter_video raises on a video without frames; this is a safety net
        raise MRAAError(f"video has no frames: {source}")
    height, width = frame_size
    found = {
        f: [Box(*b).clip(width, height) for b in boxes] for f, boxes in found.items() if f < shots.num_frames
    }
    found = {f: [b for b in boxes if b.width > 0 and b.height > 0] for f, boxes in found.items()}
    return {
        "fps": fps,
        "num_frames": shots.num_frames,
        "frame_size": list(frame_size),
        "shots": [list(s) for s in shots.shots()],
        "detections": detections_to_json(found),
    }


def load_cached_analysis(path: Path, key: dict) -> dict | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if data.get("key") == key else None


# ---------------------------------------------------------------------------------------------------------
# phase 2: planning and the split


def plan_video(analysis: dict, options: PrepareOptions) -> tuple[list[PlannedChunk], Counter, str]:
    """Chunks of an analysed video, dropped chunks by reason, and why the video is dropped ('' if kept)."""
    height, width = analysis["frame_size"]
    detections = {int(f): [Box(*b) for b in boxes] for f, boxes in analysis["detections"].items()}
    chunks: list[PlannedChunk] = []
    dropped: Counter = Counter()
    seen_person = seen_tall = False
    for shot_index, (start, end) in enumerate(analysis["shots"]):
        track = track_main_person(
            detections, start, end, max_gap=options.interpolation_gap, hold=options.detect_every - 1
        )
        track = smooth_track(track, options.smooth_frames)
        known = ~np.isnan(track).any(axis=1)
        seen_person |= bool(known.any())
        seen_tall |= bool(np.any(track[known, 3] - track[known, 1] >= options.min_person_height))
        kept, lost = plan_chunks(
            track, shot_index, start, (height, width),
            min_frames=options.min_frames, min_person_height=options.min_person_height,
            max_shift=options.max_shift, max_scale_change=options.max_scale_change,
            crop_scale=options.crop_scale, size=options.size,
        )  # fmt: skip
        chunks.extend(kept)
        dropped.update(lost)
    reason = ""
    if not chunks:
        if not seen_person:
            reason = "no person found"
        elif not seen_tall:
            reason = f"person shorter than {options.min_person_height:g} px"
        elif dropped["needs_upscaling"]:
            reason = f"crop smaller than {options.size} px (would need upscaling)"
        else:
            reason = f"person visible for fewer than {options.min_frames} frames in a row"
    return chunks, dropped, reason


def split_videos(video_ids: Sequence[str], test_fraction: float, seed: int) -> dict[str, str]:
    """Assign whole videos to ``train`` or ``test`` with a seeded shuffle.

    ``round(test_fraction * n)`` videos go to test, but at least one when ``test_fraction > 0`` and at
    least one stays in train when ``test_fraction < 1`` (given two or more videos).
    """
    order = sorted(video_ids)
    random.Random(seed).shuffle(order)
    count = len(order)
    num_test = round(test_fraction * count)
    if count >= 2:
        if test_fraction > 0:
            num_test = max(num_test, 1)
        if test_fraction < 1:
            num_test = min(num_test, count - 1)
    return {vid: ("test" if i < num_test else "train") for i, vid in enumerate(order)}


def chunk_name(video_id: str, chunk: PlannedChunk) -> str:
    """``<video>#<shot>#<first frame>#<end frame>``: the part before the first ``#`` names the video."""
    return f"{video_id}#{chunk.shot:03d}#{chunk.start:06d}#{chunk.end:06d}"
