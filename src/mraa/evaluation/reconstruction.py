"""Video reconstruction, the paper's self-reenactment benchmark.

Each test video is re-rendered from its first frame: frame 0 is the source, every frame ``i`` (frame 0
included) is a driving frame whose region params (and, by default, the background motion that the
background predictor estimates between source and frame ``i``) drive the generator. The prediction should
equal the driving frame, so the mean absolute difference (L1, pixels in [0, 1]) measures how well motion is
captured. This follows the official evaluation (``reconstruction.py``).

Averages: ``l1`` is the mean over videos of each video's mean over frames; ``l1_frames`` pools all frames of
all videos (the number the official script prints). AKD, MKR and AED are pooled over all frames of all
videos, as in the keypoint-evaluation scripts that go with the paper (see :mod:`mraa.evaluation.scores`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mraa.animate import Animator
from mraa.atomic import atomic_write_text
from mraa.errors import MRAAError
from mraa.evaluation.metrics import IdentityExtractor, KeypointExtractor
from mraa.evaluation.scores import (
    IDENTITY_METRICS,
    KEYPOINT_METRICS,
    MetricTotals,
    extractor_name,
    score_batch,
)
from mraa.image import to_uint8

log = logging.getLogger(__name__)

FORMATS = ("mp4", "gif", "png")
LAYOUTS = ("pair", "prediction")
_STRIP_SUFFIXES = {".mp4", ".mov", ".webm", ".avi", ".mkv", ".gif", ".m4v", ".png", ".jpg", ".jpeg"}


# ----------------------------------------------------------------------------- results
@dataclass
class VideoResult:
    """Metrics of one reconstructed video (None where a metric was not computed or had nothing to compare)."""

    name: str
    num_frames: int
    l1: float
    baseline_l1: float  # no-motion baseline: the source frame compared with every driving frame
    akd: float | None = None  # pixels, the benchmark's form (mean |dx|, |dy|), over keypoints found in both
    akd_euclidean: float | None = None  # pixels, mean Euclidean distance over keypoints found in both
    mkr: float | None = None
    aed: float | None = None  # the benchmark's form: mean squared L2 distance of identity embeddings
    aed_euclidean: float | None = None  # mean L2 distance
    counts: dict[str, int] = field(default_factory=dict)  # each metric's denominator (mraa.evaluation.scores)
    output: str | None = None


@dataclass
class ReconstructionReport:
    """Per-video and dataset-level reconstruction metrics (see the module docstring for the averages)."""

    videos: list[VideoResult]
    use_bg: bool = True
    keypoints: str | None = None  # name of the keypoint extractor, when AKD/MKR were computed
    identity: str | None = None  # name of the identity extractor, when AED was computed
    skipped: list[str] = field(default_factory=list)  # unreadable videos
    seconds: float = 0.0

    @property
    def num_frames(self) -> int:
        return sum(video.num_frames for video in self.videos)

    def _over_videos(self, name: str) -> float:
        return float(np.mean([getattr(video, name) for video in self.videos]))

    def _over_frames(self, name: str) -> float:
        total = sum(getattr(video, name) * video.num_frames for video in self.videos)
        return total / self.num_frames

    def _pooled(self, name: str) -> float | None:
        totals = MetricTotals()
        for video in self.videos:
            if getattr(video, name) is not None:
                totals.add(name, getattr(video, name) * video.counts[name], video.counts[name])
        return totals.value(name)

    @property
    def l1(self) -> float:
        """Mean over videos of the per-video mean L1."""
        return self._over_videos("l1")

    @property
    def l1_frames(self) -> float:
        """Mean L1 over all frames of all videos (the official script's number)."""
        return self._over_frames("l1")

    @property
    def baseline_l1(self) -> float:
        return self._over_videos("baseline_l1")

    @property
    def baseline_l1_frames(self) -> float:
        return self._over_frames("baseline_l1")

    @property
    def akd(self) -> float | None:
        return self._pooled("akd") if self.keypoints else None

    @property
    def akd_euclidean(self) -> float | None:
        return self._pooled("akd_euclidean") if self.keypoints else None

    @property
    def mkr(self) -> float | None:
        return self._pooled("mkr") if self.keypoints else None

    @property
    def aed(self) -> float | None:
        return self._pooled("aed") if self.identity else None

    @property
    def aed_euclidean(self) -> float | None:
        return self._pooled("aed_euclidean") if self.identity else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: dataset metrics, settings and the per-video list."""
        return {
            "num_videos": len(self.videos),
            "num_frames": self.num_frames,
            "l1": self.l1,
            "l1_frames": self.l1_frames,
            "baseline_l1": self.baseline_l1,
            "baseline_l1_frames": self.baseline_l1_frames,
            "akd": self.akd,
            "akd_euclidean": self.akd_euclidean,
            "mkr": self.mkr,
            "aed": self.aed,
            "aed_euclidean": self.aed_euclidean,
            "use_bg": self.use_bg,
            "keypoints": self.keypoints,
            "identity": self.identity,
            "skipped": list(self.skipped),
            "seconds": round(self.seconds, 3),
            "videos": [asdict(video) for video in self.videos],
        }

    def summary(self) -> str:
        """One line with the dataset-level numbers."""
        parts = [
            f"L1 {self.l1:.4f} over {len(self.videos)} video{'s' if len(self.videos) != 1 else ''} "
            f"({self.num_frames} frames; per frame {self.l1_frames:.4f})",
            f"no-motion baseline {self.baseline_l1:.4f}",
        ]
        for name, unit in (("akd", " px"), ("mkr", ""), ("aed", "")):
            value = getattr(self, name)
            computed = self.keypoints if name != "aed" else self.identity
            if computed:
                parts.append(
                    f"{name.upper()} {value:.4f}{unit}" if value is not None else f"{name.upper()} n/a"
                )
        if self.skipped:
            parts.append(f"{len(self.skipped)} unreadable skipped")
        return "; ".join(parts)

    def write_json(self, path: str | os.PathLike) -> Path:
        """Write :meth:`to_dict` as JSON, atomically."""
        return atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")


# ----------------------------------------------------------------------------- reconstruction
def iter_reconstruction(
    animator: Animator, video: Tensor, use_bg: bool = True
) -> Iterator[tuple[Tensor, Tensor]]:
    """Reconstruct ``video`` (T, 3, H, W) in [0, 1] from its first frame, batch by batch.

    Yields:
        (driving, prediction) pairs of (B, 3, H, W) tensors on the animator's device.
    """
    if video.ndim != 4 or video.shape[1] != 3:
        raise MRAAError(f"expected a video of shape (T, 3, H, W), got {tuple(video.shape)}")
    if video.shape[0] == 0:
        raise MRAAError("the video has no frames")
    state = animator.encode_source(video[:1])
    for start in range(0, video.shape[0], animator.batch_size):
        driving = video[start : start + animator.batch_size].to(animator.device)
        with torch.no_grad():
            region_params = animator.region_params(driving)
            bg_params = None
            if use_bg:  # (B, 3, 3): driving -> source background transform, as in the official evaluation
                source = state.image.expand(driving.shape[0], -1, -1, -1)
                bg_params = animator.models.bg_predictor(source, driving)
        prediction = animator.render(state, region_params, bg_params)["prediction"]
        yield driving, prediction


def reconstruct_video(animator: Animator, video: Tensor, use_bg: bool = True) -> Tensor:
    """Reconstruction (T, 3, H, W) in [0, 1] on the CPU of a video (T, 3, H, W) from its first frame."""
    return torch.cat([prediction.cpu() for _, prediction in iter_reconstruction(animator, video, use_bg)])


class _Output:
    """Writes one reconstructed video: ``pair`` (driving | reconstruction) or ``prediction`` only."""

    def __init__(self, path: Path, layout: str, fps: float) -> None:
        from mraa.data.video_io import VideoWriter

        self.path = path
        self.layout = layout
        self.writer = VideoWriter(path, fps) if path.suffix != ".png" else None
        self.driving: list[np.ndarray] = []
        self.prediction: list[np.ndarray] = []

    def add(self, driving: np.ndarray, prediction: np.ndarray) -> None:
        from mraa.visualize import make_grid

        if self.writer is None:
            self.driving.extend(driving)
            self.prediction.extend(prediction)
            return
        for d, p in zip(driving, prediction):
            self.writer.write(make_grid([[d, p]]) if self.layout == "pair" else p)

    def close(self) -> None:
        from mraa.data.video_io import write_image
        from mraa.visualize import make_grid

        if self.writer is not None:
            self.writer.close()
            return
        strip = np.concatenate(self.prediction, axis=1)  # (H, T * W, 3), the official png layout
        if self.layout == "pair":
            strip = make_grid([[np.concatenate(self.driving, axis=1)], [strip]])
        write_image(self.path, strip)

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.abort()


def output_name(video_name: str) -> str:
    """A video's name without its file suffix (``abc.mp4`` -> ``abc``; folders keep their name)."""
    path = Path(video_name)
    return path.stem if path.suffix.lower() in _STRIP_SUFFIXES else path.name


@torch.no_grad()
def evaluate_video(
    animator: Animator,
    video: Tensor,
    name: str = "video",
    use_bg: bool = True,
    keypoint_extractor: KeypointExtractor | None = None,
    identity_extractor: IdentityExtractor | None = None,
    output: _Output | None = None,
) -> VideoResult:
    """Reconstruct one video (T, 3, H, W) and measure it; frames go to ``output`` when given."""
    l1: list[Tensor] = []
    baseline: list[Tensor] = []
    totals = MetricTotals()
    source = video[:1].to(animator.device)
    for driving, prediction in iter_reconstruction(animator, video, use_bg):
        l1.append((prediction - driving).abs().mean(dim=(1, 2, 3)).double().cpu())  # (B,)
        baseline.append((source - driving).abs().mean(dim=(1, 2, 3)).double().cpu())
        if keypoint_extractor is None and identity_extractor is None and output is None:
            continue
        driving_uint8, prediction_uint8 = to_uint8(driving), to_uint8(prediction)
        if output is not None:
            output.add(driving_uint8, prediction_uint8)
        score_batch(totals, driving_uint8, prediction_uint8, keypoint_extractor, identity_extractor)
    per_frame = torch.cat(l1)
    result = VideoResult(
        name=name,
        num_frames=per_frame.numel(),
        l1=float(per_frame.mean()),
        baseline_l1=float(torch.cat(baseline).mean()),
    )
    keys = (KEYPOINT_METRICS if keypoint_extractor is not None else ()) + (
        IDENTITY_METRICS if identity_extractor is not None else ()
    )
    for key in keys:
        setattr(result, key, totals.value(key))
        result.counts[key] = totals.counts.get(key, 0)
    return result


def _video_items(dataset: Any, count: int) -> Iterator[tuple[dict[str, Any] | None, str]]:
    """(item, name) for the first ``count`` entries; item None for an unreadable video (not substituted)."""
    for index in range(count):
        if hasattr(dataset, "get_video"):  # FramesDataset: do not silently replace a bad video
            try:
                yield dataset.get_video(index, substitute=False), ""
            except MRAAError as exc:
                yield None, str(exc)
        else:
            yield dataset[index], ""


def reconstruct_dataset(
    animator: Animator,
    dataset: Sequence[dict[str, Any]],
    out_dir: str | os.PathLike | None = None,
    use_bg: bool = True,
    max_videos: int | None = None,
    progress: bool = True,
    keypoint_extractor: KeypointExtractor | None = None,
    identity_extractor: IdentityExtractor | None = None,
    format: str = "mp4",
    layout: str = "pair",
    fps: float = 25.0,
) -> ReconstructionReport:
    """Reconstruct the test videos of ``dataset`` from their first frames and measure the results.

    Args:
        animator: the model (its ``batch_size`` frames are rendered together).
        dataset: items ``{"video": (3, T, H, W) in [0, 1], "name": str}``, e.g. a test
            :class:`~mraa.data.frames_dataset.FramesDataset`.
        out_dir: when given, write ``<name>.<format>`` per video and ``metrics.json`` there.
        use_bg: pass the background predictor's motion to the generator (as the official evaluation).
        max_videos: evaluate at most this many videos (in dataset order).
        keypoint_extractor: enables AKD and MKR (see :mod:`mraa.evaluation.metrics`).
        identity_extractor: enables AED.
        format: ``mp4``/``gif`` (a video) or ``png`` (frames side by side in one image).
        layout: ``pair`` (driving | reconstruction) or ``prediction`` (reconstruction only; as png this is
            the official strip layout, readable back as a dataset).
        fps: frame rate of written videos.

    Returns:
        The :class:`ReconstructionReport`.
    """
    _check_options(format, layout, max_videos)
    out_path, created = _output_folder(out_dir)
    count = len(dataset) if max_videos is None else min(max_videos, len(dataset))
    extractors = (keypoint_extractor, identity_extractor)
    names = [extractor_name(e) if e is not None else None for e in extractors]
    report = ReconstructionReport(videos=[], use_bg=use_bg, keypoints=names[0], identity=names[1])
    report.skipped += list(getattr(dataset, "unusable", []))  # unreadable or too short, found when listed
    bar = _progress_bar(progress, count)
    started = time.perf_counter()
    try:
        _reconstruct_videos(
            animator, dataset, count, report, bar, out_path, (format, layout, fps), use_bg, extractors
        )
        report.seconds = time.perf_counter() - started
        if not report.videos:
            raise MRAAError("no video could be reconstructed")
        if out_path is not None:
            report.write_json(out_path / "metrics.json")
    except BaseException:
        if created and not any(out_path.iterdir()):  # leave no empty folder behind
            out_path.rmdir()
        raise
    finally:
        if bar is not None:
            bar.close()
    if not math.isfinite(report.l1):
        log.warning("the reconstruction L1 is not finite: the model produced NaN/inf")
    return report


def _reconstruct_videos(
    animator: Animator,
    dataset: Sequence[dict[str, Any]],
    count: int,
    report: ReconstructionReport,
    bar: Any,
    out_path: Path | None,
    writing: tuple[str, str, float],
    use_bg: bool,
    extractors: tuple[KeypointExtractor | None, IdentityExtractor | None],
) -> None:
    """Reconstruct and measure the first ``count`` videos into ``report`` (and write them when asked)."""
    format, layout, fps = writing
    used_names: set[str] = set()
    warned_size = False
    for item, problem in _video_items(dataset, count):
        if item is None:
            log.warning("skipping an unreadable video: %s", problem)
            report.skipped.append(problem)
        else:
            output = None
            if out_path is not None:
                stem = _unique(output_name(str(item["name"])), used_names)
                output = _Output(out_path / f"{stem}.{format}", layout, fps)
            warned_size = warned_size or _warn_size(item["video"], animator)
            report.videos.append(_evaluate_item(animator, item, use_bg, *extractors, output))
            if bar is not None:
                bar.set_postfix(l1=f"{report.l1:.4f}", refresh=False)
        if bar is not None:
            bar.update(1)


def _output_folder(out_dir: str | os.PathLike | None) -> tuple[Path | None, bool]:
    """The output folder (made when missing) and whether this run made it."""
    if out_dir is None:
        return None, False
    out_path = Path(out_dir)
    created = not out_path.exists()
    out_path.mkdir(parents=True, exist_ok=True)
    return out_path, created


def _check_options(format: str, layout: str, max_videos: int | None) -> None:
    if format not in FORMATS:
        raise MRAAError(f"unknown format {format!r}; choose from {', '.join(FORMATS)}")
    if layout not in LAYOUTS:
        raise MRAAError(f"unknown layout {layout!r}; choose from {', '.join(LAYOUTS)}")
    if max_videos is not None and max_videos < 1:
        raise MRAAError(f"the number of videos must be at least 1, got {max_videos}")


def _progress_bar(progress: bool, count: int):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=count, unit="video", desc="reconstruction")


def _warn_size(video: Tensor, animator: Animator) -> bool:
    """Warn when a video's frames (3, T, H, W) are not the model's size; True when it warned."""
    if tuple(video.shape[2:]) == tuple(animator.image_size):
        return False
    log.warning("videos are %s but the model works at %s", tuple(video.shape[2:]), animator.image_size)
    return True


def _evaluate_item(
    animator: Animator,
    item: dict[str, Any],
    use_bg: bool,
    keypoint_extractor: KeypointExtractor | None,
    identity_extractor: IdentityExtractor | None,
    output: _Output | None,
) -> VideoResult:
    """Reconstruct and measure one dataset item, writing its output file (or nothing, on failure)."""
    video = item["video"].permute(1, 0, 2, 3)  # (T, 3, H, W)
    name = str(item["name"])
    try:
        result = evaluate_video(animator, video, name, use_bg, keypoint_extractor, identity_extractor, output)
        if output is not None:
            output.close()
            result.output = output.path.name
    except BaseException:
        if output is not None:
            output.abort()
        raise
    log.debug("%s: L1 %.4f (baseline %.4f)", name, result.l1, result.baseline_l1)
    return result


def _unique(stem: str, used: set[str]) -> str:
    candidate, index = stem, 2
    while candidate in used:
        candidate, index = f"{stem}-{index}", index + 1
    used.add(candidate)
    return candidate
