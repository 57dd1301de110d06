"""``prepare_dataset``: raw videos -> square person-centred chunks in ``train/`` and ``test/``.

The run has three phases, each resumable:

1. *analyse* every video in one decoding pass: camera cuts (PySceneDetect) and person boxes on every
   ``detect_every``-th frame (or precomputed boxes). The result is cached in ``OUT/analysis/<id>.json``
   and reused while the source file and the analysis options are unchanged.
2. *plan* chunks from the cached analysis (cheap, redone every run) and split the videos that kept at
   least one chunk into train and test, by video, with a seeded shuffle.
3. *write* the chunks that are not on disk yet in a second decoding pass (a video whose chunks all
   exist is not decoded again), then ``manifest.csv`` and ``summary.json``.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import logging
import os
import pickle
import random
import re
import shutil
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from mraa.atomic import atomic_write_text, remove_stale_temps
from mraa.data import video_io
from mraa.data.prepare.chunks import PlannedChunk, plan_chunks, smooth_track, track_main_person
from mraa.data.prepare.detectors import (
    BOXES,
    Box,
    PersonDetector,
    PrecomputedBoxes,
    build_detector,
    detections_to_json,
    load_boxes_csv,
    load_boxes_json,
    require_cv2,
)
from mraa.data.prepare.options import PrepareOptions
from mraa.data.prepare.shots import ShotDetector, require_scenedetect
from mraa.errors import MRAAError

log = logging.getLogger(__name__)

ANALYSIS_VERSION = 1
SPLITS = ("train", "test")
MANIFEST_COLUMNS = (
    "name", "split", "video_id", "source", "shot", "shot_start", "shot_end", "start", "end",
    "num_frames", "crop_x0", "crop_y0", "crop_size", "fps", "source_height", "source_width",
)  # fmt: skip


@dataclass
class VideoReport:
    """What happened to one input video."""

    video_id: str
    source: str
    kept: bool = False
    reason: str = ""  # why it was dropped
    split: str = ""
    num_chunks: int = 0
    num_frames: int = 0
    num_shots: int = 0
    chunks_dropped: dict[str, int] = field(default_factory=dict)
    analysis_reused: bool = False
    chunks_written: int = 0
    detail: str = ""  # the error behind ``reason``, when there was one


@dataclass
class PrepareSummary:
    """Outcome of :func:`prepare_dataset` (also written to ``OUT/summary.json``)."""

    output: str
    videos: list[VideoReport]
    manifest: str = ""

    @property
    def kept(self) -> list[VideoReport]:
        return [v for v in self.videos if v.kept]

    @property
    def dropped(self) -> Counter:
        """Dropped videos counted by reason."""
        return Counter(v.reason for v in self.videos if not v.kept)

    @property
    def chunks(self) -> dict[str, int]:
        """Chunks per split."""
        counts = dict.fromkeys(SPLITS, 0)
        for video in self.kept:
            counts[video.split] += video.num_chunks
        return counts

    @property
    def chunks_dropped(self) -> Counter:
        total: Counter = Counter()
        for video in self.videos:
            total.update(video.chunks_dropped)
        return total

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": self.output,
            "videos_total": len(self.videos),
            "videos_kept": len(self.kept),
            "videos_dropped": dict(self.dropped),
            "videos_per_split": {s: sum(v.split == s for v in self.kept) for s in SPLITS},
            "chunks": self.chunks,
            "chunks_dropped": dict(self.chunks_dropped),
            "chunks_written": sum(v.chunks_written for v in self.videos),
            "analyses_reused": sum(v.analysis_reused for v in self.videos),
            "videos": [asdict(v) for v in self.videos],
        }

    def describe(self) -> str:
        """A few human-readable lines."""
        per_split = {s: sum(v.split == s for v in self.kept) for s in SPLITS}
        lines = [
            f"videos: {len(self.videos)} in, {len(self.kept)} kept "
            f"({per_split['train']} train, {per_split['test']} test)"
        ]
        lines += [f"  dropped ({reason}): {count}" for reason, count in sorted(self.dropped.items())]
        chunks = self.chunks
        lines.append(f"chunks: {chunks['train']} train, {chunks['test']} test")
        lines += [f"  dropped ({reason}): {count}" for reason, count in sorted(self.chunks_dropped.items())]
        written = sum(v.chunks_written for v in self.videos)
        lines.append(f"written this run: {written} chunks; manifest: {self.manifest}")
        return "\n".join(lines)


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


def _analysis_key(source: Path, options: PrepareOptions, detector_name: str, boxes: Path | None) -> dict:
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


def _frame_progress(total: int | None, enabled: bool, name: str) -> tqdm:
    return tqdm(
        total=total, desc=name[:30], unit="frame", leave=False, disable=not enabled, dynamic_ncols=True
    )


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
    with _frame_progress(None, progress, source.name) as bar:
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


def _load_cached_analysis(path: Path, key: dict) -> dict | None:
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


# ---------------------------------------------------------------------------------------------------------
# phase 3: writing


def _crop_resize(frame: np.ndarray, crop: tuple[int, int, int], size: int) -> np.ndarray:
    cv2 = require_cv2()
    x0, y0, side = crop
    patch = frame[y0 : y0 + side, x0 : x0 + side]
    if patch.shape[0] != side or patch.shape[1] != side:
        raise MRAAError(f"crop {crop} does not fit a frame of size {frame.shape[1]}x{frame.shape[0]}")
    if side == size:
        return np.ascontiguousarray(patch)
    return cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)


def _remove_partial(folder: Path, name: str) -> None:
    """Remove the marked temporaries an interrupted writer left for chunk ``name`` (see mraa.atomic)."""
    remove_stale_temps(folder, _glob_escape(name), any_age=True)


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def write_chunks(
    source: Path,
    targets: Sequence[tuple[PlannedChunk, Path]],
    size: int,
    fps: float,
    num_frames: int | None = None,
    progress: bool = False,
) -> int:
    """Decode ``source`` once and write each chunk's cropped, resized frames to its target path.

    Chunks must not overlap. Targets named ``*.mp4`` become videos, others frame folders.
    Returns the number of chunks written.
    """
    ordered = sorted(targets, key=lambda item: item[0].start)
    decoded = video_io.iter_video(source)
    frames: Iterator[tuple[int, np.ndarray]] = enumerate(decoded)
    written = 0
    last = ordered[-1][0].end if ordered else 0
    with (
        closing(decoded),
        _frame_progress(min(last, num_frames or last), progress, f"write {source.name}") as bar,
    ):
        position = 0

        def chunk_frames(chunk: PlannedChunk) -> Iterator[np.ndarray]:
            nonlocal position
            for index, frame in frames:
                position = index + 1
                bar.update(1)
                if index >= chunk.start:
                    yield _crop_resize(frame, chunk.crop, size)
                if index >= chunk.end - 1:
                    return
            raise MRAAError(
                f"{source}: the video ended before frame {chunk.end} (it changed since analysis?)"
            )

        for chunk, path in ordered:
            if chunk.start < position:
                raise MRAAError(f"overlapping chunks in {source}")
            as_video = path.suffix.lower() == ".mp4"
            _remove_partial(path.parent, path.stem if as_video else path.name)
            if as_video:
                video_io.write_video(path, chunk_frames(chunk), fps=fps)
            else:
                video_io.write_frame_folder(path, chunk_frames(chunk))
            written += 1
    return written


def _manifest_text(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def read_manifest(path: str | os.PathLike) -> list[dict[str, str]]:
    """Rows of a ``manifest.csv`` as dicts of strings."""
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


# ---------------------------------------------------------------------------------------------------------
# the whole pipeline


_DETECTOR_CACHE: dict[tuple[str, float], PersonDetector] = {}


def _named_detector(name: str, min_person_height: float) -> PersonDetector:
    """Build a registered detector once per process (worker processes build their own)."""
    key = (name, float(min_person_height))
    if key not in _DETECTOR_CACHE:
        _DETECTOR_CACHE[key] = build_detector(name, min_person_height=min_person_height)
    return _DETECTOR_CACHE[key]


def _analyse_task(
    source: Path,
    vid: str,
    options: PrepareOptions,
    output: Path,
    detector: PersonDetector | None,
    detector_name: str,
    progress: bool,
) -> tuple[dict | None, str, bool, str]:
    """Analyse one video or reuse its cached analysis: ``(analysis or None, drop reason, reused, detail)``."""
    boxes_file = None
    try:
        if options.detector == BOXES:
            boxes = PrecomputedBoxes(options.boxes_dir)
            boxes_file = boxes.find(source, vid)
            if boxes_file is None:
                return None, "no boxes file", False, f"no boxes file in {boxes.folder}"
        key = _analysis_key(source, options, detector_name, boxes_file)
        cache = output / "analysis" / f"{vid}.json"
        analysis = _load_cached_analysis(cache, key)
        if analysis is not None:
            return analysis, "", True, ""
        precomputed = None
        if boxes_file is not None:
            try:
                loader = load_boxes_json if boxes_file.suffix == ".json" else load_boxes_csv
                precomputed = loader(boxes_file)
            except MRAAError as exc:
                return None, "bad boxes file", False, str(exc)
        elif detector is None:
            detector = _named_detector(options.detector, options.min_person_height)
        analysis = analyse_video(source, options, detector, precomputed, progress)
        analysis["key"] = key
        atomic_write_text(cache, json.dumps(analysis))
        return analysis, "", False, ""
    except MRAAError as exc:
        _raise_if_disk_full(exc, source)
        return None, "unreadable", False, str(exc)


def _raise_if_disk_full(exc: MRAAError, source: Path) -> None:
    """A full disk stops the run (a failing exit, no manifest): it is not one unreadable video."""
    cause: BaseException | None = exc
    while cause is not None:
        if getattr(cause, "errno", None) in (errno.ENOSPC, errno.EDQUOT):
            break
        cause = cause.__cause__
    if cause is None and "no space left on device" not in str(exc).lower():
        return
    raise MRAAError(f"disk full (no space left on device) while writing for {source.name}: {exc}") from None


def _write_task(
    source: Path,
    todo: list[tuple[PlannedChunk, Path]],
    size: int,
    fps: float,
    num_frames: int,
    progress: bool,
) -> tuple[int, str]:
    """Write one video's missing chunks: ``(number written, error message or '')``."""
    try:
        return write_chunks(source, todo, size, fps, num_frames, progress), ""
    except MRAAError as exc:
        _raise_if_disk_full(exc, source)
        return 0, str(exc)


def _init_worker() -> None:
    try:  # one OpenCV thread per worker process: the processes are the parallelism
        import cv2

        cv2.setNumThreads(1)
    except ImportError:
        pass


def _run_tasks(task: Any, jobs: list[tuple], workers: int, desc: str, progress: bool) -> list[Any]:
    """``[task(*job) for job in jobs]``, in worker processes when ``workers > 1``, with a progress bar."""
    with tqdm(total=len(jobs), desc=desc, unit="video", disable=not progress, dynamic_ncols=True) as bar:
        if workers <= 1 or len(jobs) <= 1:
            results = []
            for job in jobs:
                results.append(task(*job))
                bar.update(1)
            return results
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), initializer=_init_worker) as pool:
            futures = {pool.submit(task, *job): index for index, job in enumerate(jobs)}
            results = [None] * len(jobs)
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                bar.update(1)
        return results


def prepare_dataset(
    inputs: Sequence[str | os.PathLike],
    output: str | os.PathLike,
    options: PrepareOptions | None = None,
    detector: PersonDetector | None = None,
    progress: bool = True,
    workers: int = 1,
) -> PrepareSummary:
    """Turn raw videos into a training dataset of square person-centred chunks.

    Args:
        inputs: video files, frame folders, or folders searched (recursively) for videos.
        output: dataset folder; receives ``train/``, ``test/``, ``analysis/``, ``manifest.csv`` and
            ``summary.json``. Rerunning resumes: cached analyses and written chunks are reused.
        options: settings (paper defaults when None).
        detector: a detector object to use instead of ``options.detector`` (any ``detect(frame)``;
            it must pickle when ``workers > 1``).
        progress: show progress bars.
        workers: videos processed in parallel by this many processes (the result does not depend on it).

    Returns:
        The summary of kept and dropped videos and chunks.

    Raises:
        MRAAError: bad settings, a missing dependency or boxes folder (before anything is written), or no
            input gave a chunk (with each input's reason; the folders this run made are removed).
    """
    options = options or PrepareOptions()
    output = Path(output)
    sources = find_videos(inputs, exclude=output)
    if not sources:
        raise MRAAError(f"no videos found in {', '.join(map(str, inputs))}")
    _check_ready(options, detector, workers)
    made = [p for p in (output, *(output / sub for sub in ("analysis", *SPLITS))) if not p.exists()]
    for sub in ("analysis", *SPLITS):
        (output / sub).mkdir(parents=True, exist_ok=True)
    try:
        reports, analyses, planned = _analyse_all(sources, options, output, detector, progress, workers)
        if not any(r.kept for r in reports):
            raise MRAAError(_nothing_made(reports))
        rows = _write_all(reports, analyses, planned, options, output, progress, workers)
        if not rows:
            raise MRAAError(_nothing_made(reports))
    except BaseException:
        _remove_made(made, output)
        raise
    manifest = output / "manifest.csv"
    atomic_write_text(manifest, _manifest_text(rows))
    _warn_unlisted(output, {row["name"] for row in rows})
    summary = PrepareSummary(output=str(output), videos=reports, manifest=str(manifest))
    atomic_write_text(output / "summary.json", json.dumps(summary.to_dict(), indent=2) + "\n")
    return summary


def _check_ready(options: PrepareOptions, detector: PersonDetector | None, workers: int) -> None:
    """Fail before anything is read or written on bad settings, a missing dependency or boxes folder."""
    if detector is not None and options.detector == BOXES:
        raise MRAAError("give either a detector object or precomputed boxes, not both")
    options.validate()
    if workers < 1:
        raise MRAAError(f"the number of workers must be at least 1, got {workers}")
    if workers > 1 and detector is not None:
        try:
            pickle.dumps(detector)
        except Exception as exc:
            raise MRAAError("a detector object must be picklable to run with several workers") from exc
    require_cv2()
    if options.shot_threshold > 0:
        require_scenedetect()
    if options.detector == BOXES:
        PrecomputedBoxes(options.boxes_dir)
    elif detector is None:
        _named_detector(options.detector, options.min_person_height)


def _nothing_made(reports: list[VideoReport]) -> str:
    """The error for a run that kept no video: one reason per input."""
    reasons = "; ".join(f"{Path(r.source).name}: {r.detail or r.reason or 'no chunk'}" for r in reports[:5])
    more = f"; and {len(reports) - 5} more" if len(reports) > 5 else ""
    return f"no input gave a chunk, nothing was written ({reasons}{more})"


def _remove_made(made: list[Path], output: Path) -> None:
    """Remove the folders this run created: all of ``output`` when it is new, else its new subfolders."""
    if output in made:
        shutil.rmtree(output, ignore_errors=True)
        return
    for folder in made:
        if folder.name == "analysis":  # holds only this run's analyses
            shutil.rmtree(folder, ignore_errors=True)
        elif folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def _analyse_all(
    sources: list[Path],
    options: PrepareOptions,
    output: Path,
    detector: PersonDetector | None,
    progress: bool,
    workers: int,
) -> tuple[list[VideoReport], dict[str, dict], dict[str, list[PlannedChunk]]]:
    """Phases 1 and 2 for every input: reports, analyses and planned chunks by video id."""
    detector_name = type(detector).__name__ if detector is not None else options.detector
    ids = video_ids(sources)
    jobs = [
        (source, vid, options, output, detector, detector_name, progress and workers <= 1)
        for source, vid in zip(sources, ids)
    ]
    reports: list[VideoReport] = []
    analyses: dict[str, dict] = {}
    planned: dict[str, list[PlannedChunk]] = {}
    results = _run_tasks(_analyse_task, jobs, workers, "analyse", progress)
    for (source, vid), (analysis, reason, reused, detail) in zip(zip(sources, ids), results):
        report = VideoReport(video_id=vid, source=str(source), reason=reason, analysis_reused=reused)
        report.detail = detail
        reports.append(report)
        if analysis is None:
            continue
        analyses[vid] = analysis
        chunks, dropped, reason = plan_video(analysis, options)
        report.num_frames = analysis["num_frames"]
        report.num_shots = len(analysis["shots"])
        report.chunks_dropped = dict(dropped)
        report.num_chunks = len(chunks)
        report.kept = bool(chunks)
        report.reason = reason
        planned[vid] = chunks
        if reason:
            log.info("%s: dropped (%s)", source.name, reason)
    if any(r.kept for r in reports):  # else the error lists the reasons
        for report in reports:
            if report.detail:
                log.warning("skipped %s: %s", report.source, report.detail)
    return reports, analyses, planned


def _write_all(
    reports: list[VideoReport],
    analyses: dict[str, dict],
    planned: dict[str, list[PlannedChunk]],
    options: PrepareOptions,
    output: Path,
    progress: bool,
    workers: int,
) -> list[dict[str, Any]]:
    """Phase 3: split the kept videos, write their missing chunks; returns the manifest rows."""
    splits = split_videos([r.video_id for r in reports if r.kept], options.test_fraction, options.seed)
    rows: list[dict[str, Any]] = []
    write_jobs, writing = [], []
    for report in [r for r in reports if r.kept]:
        report.split = splits[report.video_id]
        analysis = analyses[report.video_id]
        todo = _plan_files(report, analysis, planned[report.video_id], options, output, rows)
        if todo:
            writing.append(report)
            frame_bars = progress and workers <= 1
            write_jobs.append(
                (Path(report.source), todo, options.size, analysis["fps"], analysis["num_frames"], frame_bars)
            )
    for report, (written, error) in zip(
        writing, _run_tasks(_write_task, write_jobs, workers, "write", progress)
    ):
        report.chunks_written = written
        if error:
            log.warning("could not write the chunks of %s: %s", report.source, error)
            report.kept, report.reason, report.split, report.detail = False, "unreadable", "", error
            rows = [row for row in rows if row["video_id"] != report.video_id]
    return rows


def _plan_files(
    report: VideoReport,
    analysis: dict,
    chunks: list[PlannedChunk],
    options: PrepareOptions,
    output: Path,
    rows: list[dict[str, Any]],
) -> list[tuple[PlannedChunk, Path]]:
    """Manifest rows (appended to ``rows``) of one video's chunks and those not on disk yet."""
    height, width = analysis["frame_size"]
    todo = []
    for chunk in chunks:
        name = chunk_name(report.video_id, chunk)
        filename = f"{name}.mp4" if options.format == "mp4" else name
        path = output / report.split / filename
        other = output / ("test" if report.split == "train" else "train") / filename
        if not path.exists() and other.exists():
            os.replace(other, path)  # the split changed (other seed, fraction or set of videos)
        if not path.exists():
            todo.append((chunk, path))
        shot_start, shot_end = analysis["shots"][chunk.shot]
        rows.append({
            "name": filename, "split": report.split, "video_id": report.video_id, "source": report.source,
            "shot": chunk.shot, "shot_start": shot_start, "shot_end": shot_end, "start": chunk.start,
            "end": chunk.end, "num_frames": chunk.num_frames, "crop_x0": chunk.crop.x0,
            "crop_y0": chunk.crop.y0, "crop_size": chunk.crop.size, "fps": round(analysis["fps"], 6),
            "source_height": height, "source_width": width,
        })  # fmt: skip
    return todo


def _warn_unlisted(output: Path, names: set[str]) -> None:
    unlisted = [p.name for split in SPLITS for p in (output / split).iterdir() if p.name not in names]
    if unlisted:
        log.warning(
            "%d entries in train/ and test/ are not in manifest.csv (earlier options?), e.g. %s",
            len(unlisted),
            unlisted[0],
        )
