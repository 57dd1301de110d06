"""``prepare_dataset``: raw videos -> square person-centred chunks in ``train/`` and ``test/``.

The run has three phases, each resumable:

1. *analyse* every video in one decoding pass: camera cuts (PySceneDetect) and person boxes on every
   ``detect_every``-th frame (or precomputed boxes). The result is cached in ``OUT/analysis/<id>.json``
   and reused while the source file and the analysis options are unchanged.
2. *plan* chunks from the cached analysis (cheap, redone every run) and split the videos that kept at
   least one chunk into train and test, by video, with a seeded shuffle.
3. *write* the chunks that are not on disk yet in a second decoding pass (a video whose chunks all
   exist is not decoded again), then ``manifest.csv`` and ``summary.json``.

This module runs the phases and reports; :mod:`.analysis` holds phases 1-2 and :mod:`.writing` phase 3
(their public names are importable from here too).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import pickle
import shutil
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from mraa.atomic import atomic_write_text
from mraa.data.prepare.analysis import (
    ANALYSIS_VERSION,
    analyse_video,
    analysis_key,
    chunk_name,
    find_videos,
    load_cached_analysis,
    plan_video,
    split_videos,
    video_ids,
)
from mraa.data.prepare.chunks import PlannedChunk
from mraa.data.prepare.detectors import (
    BOXES,
    PersonDetector,
    PrecomputedBoxes,
    build_detector,
    load_boxes_csv,
    load_boxes_json,
    require_cv2,
)
from mraa.data.prepare.options import PrepareOptions
from mraa.data.prepare.shots import require_scenedetect
from mraa.data.prepare.writing import MANIFEST_COLUMNS, manifest_text, read_manifest, write_chunks
from mraa.errors import MRAAError

log = logging.getLogger(__name__)

__all__ = [
    "ANALYSIS_VERSION", "MANIFEST_COLUMNS", "SPLITS", "PrepareSummary", "VideoReport", "analyse_video",
    "chunk_name", "find_videos", "plan_video", "prepare_dataset", "read_manifest", "split_videos",
    "video_ids", "write_chunks",
]  # fmt: skip

SPLITS = ("train", "test")


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
        key = analysis_key(source, options, detector_name, boxes_file)
        cache = output / "analysis" / f"{vid}.json"
        analysis = load_cached_analysis(cache, key)
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
    atomic_write_text(manifest, manifest_text(rows))
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
