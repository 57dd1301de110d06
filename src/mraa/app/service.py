"""What the web app does, without the web: checking uploads, reading them at the model's size, animating
to a video file. The Gradio page in :mod:`mraa.app.ui` only calls this, so everything here is testable
without a browser or Gradio installed.

Every user-facing failure is an :class:`~mraa.errors.MRAAError` whose message names the uploaded file by
its own name (never the server's temporary path), so the page can show it as it is.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from mraa.animate import MODES, Animator, background_schedule
from mraa.data.video_io import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from mraa.errors import MRAAError

log = logging.getLogger(__name__)

BACKGROUND_CHOICES = ("still", "left", "right", "rotate", "driving")
KEEP_RESULTS = 20  # result folders kept in the work folder; older ones are removed

ProgressCallback = Callable[[int, int], None]  # (frames done, frames in all)


@dataclass(frozen=True)
class Limits:
    """What the app accepts: upload size in MiB and driving length in frames."""

    max_upload_mb: float = 200.0
    max_frames: int = 600

    def __post_init__(self) -> None:
        if self.max_upload_mb <= 0:
            raise MRAAError(f"the upload limit must be positive, got {self.max_upload_mb} MB")
        if self.max_frames < 1:
            raise MRAAError(f"the frame limit must be at least 1, got {self.max_frames}")


@dataclass(frozen=True)
class Samples:
    """Sample inputs offered by the page's "use the samples" button (None when not shipped)."""

    source: Path | None = None
    driving: Path | None = None

    @property
    def available(self) -> bool:
        return self.source is not None and self.driving is not None


def find_samples(folder: str | os.PathLike | None) -> Samples:
    """Pick a sample source image and driving video in ``folder``: files whose names contain ``source``
    and ``driving`` first, else the first image and the first video (sorted by name)."""
    if folder is None or not Path(folder).is_dir():
        return Samples()
    files = sorted(p for p in Path(folder).iterdir() if p.is_file())
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    videos = [p for p in files if p.suffix.lower() in VIDEO_SUFFIXES]

    def pick(candidates: list[Path], word: str) -> Path | None:
        named = [p for p in candidates if word in p.stem.lower()]
        return (named or candidates or [None])[0]

    return Samples(pick(images, "source"), pick(videos, "driving"))


@dataclass
class DrivingClip:
    """Driving frames at the model's size (uint8 H x W x 3), with what the page reports about them."""

    frames: list[np.ndarray]
    fps: float
    truncated: bool
    has_audio: bool


@dataclass
class AnimationResult:
    """A finished animation: the video file and the lines the page shows about it."""

    video: Path
    num_frames: int
    fps: float
    mode: str
    notes: list[str] = field(default_factory=list)


@dataclass
class PartsView:
    """A segmentation drawn for the page: the overlay (parts tinted and numbered, a legend strip below), the
    label map at the overlay's scale (for clicks) and each label's share of its pixels (index 0: background)."""

    overlay: np.ndarray  # (H' + legend, W', 3) uint8
    labels: np.ndarray  # (H', W') int64, 0 = background
    shares: np.ndarray  # (K + 1,) percent


def _display_name(path: str | os.PathLike) -> str:
    return Path(path).name


def _without_path(message: str, path: str | os.PathLike) -> str:
    """An error message with the server's copy of an upload named by its file name only."""
    return str(message).replace(str(path), _display_name(path))


def _threshold(value: float | None) -> float:
    """The background threshold, checked (an empty number box gives None)."""
    from mraa.segmentation import check_threshold

    if value is None:
        raise MRAAError("enter a background threshold (the paper uses 0.001)")
    return check_threshold(value)


def _unreadable_video(path: Path, exc: Exception) -> MRAAError:
    """A clear error for a driving video that cannot be read: no frames, or not a video at all."""
    log.info("cannot read %s: %s", path, exc)
    if "no frames" in str(exc):
        return MRAAError(f"driving video {path.name} has no frames")
    try:
        import av

        with av.open(str(path)) as container:
            if not container.streams.video:
                return MRAAError(f"driving video {path.name} has no frames (it has no video stream)")
            if next(container.decode(video=0), None) is None:
                return MRAAError(f"driving video {path.name} has no frames")
    except Exception:  # not a container at all: the message below says so
        pass
    return MRAAError(
        f"driving {path.name} is not a video mraa can read (use mp4, webm, mov, avi, mkv or gif)"
    )


class AnimationService:
    """Animation for the web app: one loaded model, upload checks and limits, result files.

    Args:
        animator: the model to animate with.
        work_dir: folder for result videos (created; a fresh temporary folder when None).
        limits: upload size and driving length limits.
        samples: the sample inputs the page offers.
        model_name: how the page names the model.
    """

    def __init__(
        self,
        animator: Animator,
        work_dir: str | os.PathLike | None = None,
        limits: Limits | None = None,
        samples: Samples | None = None,
        model_name: str = "model",
    ) -> None:
        self.animator = animator
        self.limits = limits or Limits()
        self.samples = samples or Samples()
        self.model_name = model_name
        self._own_work_dir = work_dir is None
        self.work_dir = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="mraa-app-"))
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()  # one animation at a time: the model is shared

    # --------------------------------------------------------------- description
    @property
    def image_size(self) -> tuple[int, int]:
        return self.animator.image_size

    @property
    def num_regions(self) -> int:
        return int(self.animator.models.region_predictor.num_regions)

    def describe(self) -> str:
        """One line about the loaded model (Markdown)."""
        h, w = self.image_size
        avd = "trained" if self.animator.has_trained_avd else "not trained (mode avd will look poor)"
        return (
            f"Model: **{self.model_name}**, {w}x{h} pixels, {self.num_regions} regions, AVD network {avd}. "
            f"Limits: {self.limits.max_upload_mb:g} MB per upload, {self.limits.max_frames} driving frames."
        )

    # --------------------------------------------------------------- checks and reading
    def check_upload(self, path: str | os.PathLike | None, what: str) -> Path:
        """The upload as a path, or a clear error when it is missing, not a file, empty or too large."""
        if path is None or str(path) == "":
            raise MRAAError(f"no {what} given: upload one or use the samples")
        path = Path(path)
        if not path.is_file():
            raise MRAAError(f"{what} {_display_name(path)} was not found on the server: upload it again")
        size = path.stat().st_size
        if size == 0:
            raise MRAAError(f"{what} {_display_name(path)} is an empty file")
        if size > self.limits.max_upload_mb * 1024 * 1024:
            raise MRAAError(
                f"{what} {_display_name(path)} is too large: {size / 1024 / 1024:.1f} MB "
                f"(the limit is {self.limits.max_upload_mb:g} MB)"
            )
        return path

    def load_source(self, path: str | os.PathLike | None, crop: bool = False) -> tuple[Tensor, np.ndarray]:
        """The source image at the model's size: a tensor (1, 3, H, W) in [0, 1] and uint8 (H, W, 3)."""
        from mraa.data.video_io import fit_frame, read_image
        from mraa.visualize import uint8_to_tensor

        path = self.check_upload(path, "source image")
        if path.suffix.lower() in VIDEO_SUFFIXES - {".gif"}:
            raise MRAAError(f"source {path.name} looks like a video: the source must be a still image")
        try:
            image = read_image(path)
        except MRAAError:
            raise MRAAError(
                f"source {path.name} is not an image mraa can read (use png, jpg, webp, bmp or tiff)"
            ) from None
        frame = fit_frame(image, self.image_size, crop)
        return uint8_to_tensor(frame).unsqueeze(0), frame

    def _driving_frames(self, path: Path, crop: bool, limit: int) -> tuple[list[np.ndarray], bool]:
        """Up to ``limit`` frames at the model's size and whether the video has more."""
        from mraa.data.video_io import fit_frame, iter_video

        frames: list[np.ndarray] = []
        try:
            for frame in iter_video(path):
                if len(frames) == limit:
                    return frames, True
                frames.append(fit_frame(frame, self.image_size, crop))
        except MRAAError as exc:
            raise _unreadable_video(path, exc) from None
        if not frames:
            raise MRAAError(f"driving video {path.name} has no frames")
        return frames, False

    def check_driving(self, path: str | os.PathLike | None) -> Path:
        """:meth:`check_upload` for the driving video, which must not be a still image (png strips pass)."""
        path = self.check_upload(path, "driving video")
        if path.suffix.lower() in IMAGE_SUFFIXES - {".png"}:
            raise MRAAError(f"driving {path.name} is a still image: upload a video (mp4, webm, mov, gif...)")
        return path

    def _probe(self, path: Path):
        from mraa.data.video_io import probe_video

        try:
            return probe_video(path)
        except MRAAError as exc:
            raise _unreadable_video(path, exc) from None

    def inspect_driving(self, path: str | os.PathLike | None, crop: bool = False) -> tuple[np.ndarray, str]:
        """The first driving frame at the model's size and a line about the video (reads one frame)."""
        path = self.check_driving(path)
        info = self._probe(path)
        frames, _ = self._driving_frames(path, crop, 1)
        count = f"{info.num_frames} frames, " if info.num_frames else ""
        audio = ", with audio" if info.has_audio else ""
        return frames[0], f"driving video {path.name}: {count}{info.fps:g} fps{audio}"

    def load_driving(self, path: str | os.PathLike | None, crop: bool = False) -> DrivingClip:
        """Up to ``limits.max_frames`` driving frames at the model's size (an error when there are none)."""
        path = self.check_driving(path)
        info = self._probe(path)
        frames, truncated = self._driving_frames(path, crop, self.limits.max_frames)
        return DrivingClip(frames, info.fps, truncated, info.has_audio)

    # --------------------------------------------------------------- animation
    def check_options(self, mode: str | None, background: str | None) -> tuple[str, str]:
        """Validated (mode, background); the default mode when none is chosen."""
        mode = mode or self.animator.default_mode()
        if mode not in MODES:
            raise MRAAError(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
        background = (background or "still").strip() or "still"
        if Path(background).suffix in (".npy", ".txt", ".csv"):
            raise MRAAError("background schedules from files are not available in the app; use the CLI")
        background_schedule(background)
        return mode, background

    def animate(
        self,
        source_path: str | os.PathLike | None,
        driving_path: str | os.PathLike | None,
        mode: str | None = None,
        background: str | None = "still",
        crop: bool = False,
        progress: ProgressCallback | None = None,
    ) -> AnimationResult:
        """Animate an uploaded source with an uploaded driving video and write an mp4 (H.264).

        The output keeps the driving video's frame rate and audio. Inputs are checked first, so a bad
        upload fails before the model runs.
        """
        from mraa.data.video_io import VideoWriter
        from mraa.visualize import tensor_to_uint8, uint8_to_tensor

        mode, background = self.check_options(mode, background)
        source, _ = self.load_source(source_path, crop)
        clip = self.load_driving(driving_path, crop)
        notes = []
        if clip.truncated:
            notes.append(f"the driving video was cut to its first {self.limits.max_frames} frames")
        if mode == "avd" and not self.animator.has_trained_avd:
            notes.append("this model has no trained AVD network, so mode avd gives poor results")
        total = len(clip.frames)
        out_dir = self._new_result_dir()
        output = out_dir / f"mraa_{Path(str(source_path)).stem[:40]}_{mode}.mp4"
        driving = (uint8_to_tensor(f) for f in clip.frames)
        audio_from = Path(driving_path) if clip.has_audio else None
        with self._lock, VideoWriter(output, clip.fps, audio_from=audio_from) as writer:
            if progress is not None:
                progress(0, total)
            for batch in self.animator.animate_iter(source, driving, mode, background):
                writer.write_many(tensor_to_uint8(batch.prediction))
                if progress is not None:
                    progress(writer.num_frames, total)
        log.info("animated %d frames (%s) -> %s", total, mode, output)
        return AnimationResult(output, total, clip.fps, mode, notes)

    # --------------------------------------------------------------- segmentation and part swap
    @property
    def display_scale(self) -> int:
        """Upscaling of segmentation overlays, so that they are at least 256 pixels wide."""
        return max(1, -(-256 // self.image_size[1]))

    def parts_view(self, image: np.ndarray, threshold: float = 1e-3) -> PartsView:
        """Segment one uint8 frame (H, W, 3) at the model's size and draw it at :attr:`display_scale`."""
        from mraa.visualize import uint8_to_tensor

        return self._segment_and_draw([image], uint8_to_tensor(image).unsqueeze(0), threshold)[0]

    def _segment_and_draw(
        self, images: list[np.ndarray], frames: Tensor, threshold: float
    ) -> list[PartsView]:
        """Segment frames (B, 3, H, W) at the overlay's size and draw them over ``images`` (uint8)."""
        from PIL import Image

        from mraa.segmentation import overlay_segmentation, segment

        h, w = self.image_size
        size = (h * self.display_scale, w * self.display_scale)
        with self._lock:
            seg = segment(self.animator, frames, size=size, threshold=threshold)
        views = []
        for image, labels in zip(images, seg.labels.cpu().numpy()):
            shown = np.asarray(Image.fromarray(image).resize(size[::-1], Image.BICUBIC))
            counts = np.bincount(labels.ravel(), minlength=seg.num_parts + 1)
            overlay = overlay_segmentation(shown, labels, seg.num_parts)
            views.append(PartsView(overlay, labels, counts / counts.sum() * 100))
        return views

    def segment_source(
        self, path: str | os.PathLike | None, threshold: float | None, crop: bool = False
    ) -> PartsView:
        """Parts of the source image."""
        threshold = _threshold(threshold)
        _, image = self.load_source(path, crop)
        return self.parts_view(image, threshold)

    def segment_driving(
        self,
        path: str | os.PathLike | None,
        threshold: float | None,
        crop: bool = False,
        progress: ProgressCallback | None = None,
        first_only: bool = False,
    ) -> tuple[PartsView, Path | None]:
        """Parts of the first driving frame and (unless ``first_only``) an overlay video of all frames."""
        from mraa.data.video_io import VideoWriter
        from mraa.visualize import uint8_to_tensor

        threshold = _threshold(threshold)
        if first_only:
            frame, _ = self.inspect_driving(path, crop)
            return self.parts_view(frame, threshold), None
        clip = self.load_driving(path, crop)
        total = len(clip.frames)
        output = self._new_result_dir() / f"parts_{Path(str(path)).stem[:40]}.mp4"
        first: PartsView | None = None
        batch_size = self.animator.batch_size
        with VideoWriter(output, clip.fps) as writer:
            for start in range(0, total, batch_size):
                images = clip.frames[start : start + batch_size]
                views = self._segment_and_draw(images, uint8_to_tensor(np.stack(images)), threshold)
                first = first or views[0]
                writer.write_many(view.overlay for view in views)
                if progress is not None:
                    progress(writer.num_frames, total)
        return first, output

    def swap(
        self,
        source_path: str | os.PathLike | None,
        driving_path: str | os.PathLike | None,
        parts: str | list[int] | None,
        mode: str = "standard",
        feather: float = 0.0,
        threshold: float | None = 1e-3,
        crop: bool = False,
        progress: ProgressCallback | None = None,
    ) -> AnimationResult:
        """Part swap: the driving video with ``parts`` (1-based) showing the source's appearance."""
        from mraa.data.video_io import VideoWriter
        from mraa.segmentation import feather_mask, parse_parts, swap_parts_iter
        from mraa.visualize import tensor_to_uint8, uint8_to_tensor

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
        frames = (uint8_to_tensor(f) for f in clip.frames)
        audio_from = Path(driving_path) if clip.has_audio else None
        with self._lock, VideoWriter(output, clip.fps, audio_from=audio_from) as writer:
            batches = swap_parts_iter(
                self.animator, source, frames, chosen, mode=mode, feather=float(feather), threshold=threshold
            )
            for batch in batches:
                writer.write_many(tensor_to_uint8(batch.result))
                if progress is not None:
                    progress(writer.num_frames, total)
        return AnimationResult(output, total, clip.fps, mode, notes)

    def cleanup(self) -> None:
        """Remove the result videos when they live in a temporary folder this service made."""
        if self._own_work_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def _new_result_dir(self) -> Path:
        folders = sorted(
            (p for p in self.work_dir.iterdir() if p.is_dir() and p.name.startswith("run-")),
            key=lambda p: p.stat().st_mtime,
        )
        for old in folders[: max(0, len(folders) - KEEP_RESULTS + 1)]:
            shutil.rmtree(old, ignore_errors=True)
        folder = self.work_dir / f"run-{uuid.uuid4().hex[:12]}"
        folder.mkdir()
        return folder
