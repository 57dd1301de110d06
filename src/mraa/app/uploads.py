"""The app's first job: checking uploads and reading them at the model's size, framed as the model expects.

Every failure is an :class:`~mraa.errors.MRAAError` whose message names the uploaded file by its own name
(never the server's temporary path), so the page can show it as it is.
"""

from __future__ import annotations

import itertools
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import Tensor

from mraa.data.video_io import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from mraa.errors import MRAAError

log = logging.getLogger(__name__)

CROP_OPTIONS = ("none", "center", "auto", "face", "upper-body", "full-body")


@dataclass(frozen=True)
class Limits:
    """What the app accepts: upload size in MiB, driving length in frames and the output video's longer side
    (a pasted-back or resized video is composited while the model is held, so its size is bounded)."""

    max_upload_mb: float = 200.0
    max_frames: int = 600
    max_output_side: int = 2048

    def __post_init__(self) -> None:
        if self.max_output_side < 2:
            raise MRAAError(f"the output size limit must be at least 2 pixels, got {self.max_output_side}")
        if self.max_upload_mb <= 0:
            raise MRAAError(f"the upload limit must be positive, got {self.max_upload_mb} MB")
        if self.max_frames < 1:
            raise MRAAError(f"the frame limit must be at least 1, got {self.max_frames}")


@dataclass
class DrivingClip:
    """Driving frames at the model's size (uint8 H x W x 3), with what the page reports about them."""

    frames: list[np.ndarray]
    fps: float
    truncated: bool
    has_audio: bool


def unreadable_video(path: Path, exc: Exception) -> MRAAError:
    """A clear error for a driving video that cannot be read: no frames, or not a video at all."""
    log.info("cannot read %s: %s", path, exc)
    if "no frames" in str(exc):
        return MRAAError(f"driving video {path.name} has no frames")
    try:
        import av

        from mraa.data.video_io import ffmpeg_name

        with av.open(ffmpeg_name(path)) as container:
            if not container.streams.video:
                return MRAAError(f"driving video {path.name} has no frames (it has no video stream)")
            if next(container.decode(video=0), None) is None:
                return MRAAError(f"driving video {path.name} has no frames")
    except Exception:  # not a container at all: the message below says so
        pass
    return MRAAError(
        f"driving {path.name} is not a video mraa can read (use mp4, webm, mov, avi, mkv or gif)"
    )


class UploadReader:
    """Checks uploads against :class:`Limits` and reads them at ``image_size``, cropped per ``crop``.

    ``model_framing`` is what the ``auto`` crop means (the model's ``animate_params.framing``).
    """

    def __init__(self, image_size: tuple[int, int], limits: Limits, model_framing: str = "none") -> None:
        self.image_size = image_size
        self.limits = limits
        self.model_framing = model_framing

    def framing(self, crop: str | bool | None) -> str:
        """face, upper_body, full_body, center or none for a crop option."""
        from mraa.framing import crop_option, framing_from_crop

        return framing_from_crop(crop_option(crop), self.model_framing)

    def check_upload(self, path: str | os.PathLike | None, what: str) -> Path:
        """The upload as a path, or a clear error when it is missing, not a file, empty or too large."""
        if path is None or str(path) == "":
            raise MRAAError(f"no {what} given: upload one or use the samples")
        path = Path(path)
        if not path.is_file():
            raise MRAAError(f"{what} {path.name} was not found on the server: upload it again")
        size = path.stat().st_size
        if size == 0:
            raise MRAAError(f"{what} {path.name} is an empty file")
        if size > self.limits.max_upload_mb * 1024 * 1024:
            raise MRAAError(
                f"{what} {path.name} is too large: {size / 1024 / 1024:.1f} MB "
                f"(the limit is {self.limits.max_upload_mb:g} MB)"
            )
        return path

    def read_source_image(self, path: str | os.PathLike | None) -> np.ndarray:
        """The source image at its own resolution (uint8 H x W x 3)."""
        from mraa.data.video_io import read_image

        path = self.check_upload(path, "source image")
        if path.suffix.lower() in VIDEO_SUFFIXES - {".gif"}:
            raise MRAAError(f"source {path.name} looks like a video: the source must be a still image")
        try:
            return read_image(path)
        except MRAAError:
            raise MRAAError(
                f"source {path.name} is not an image mraa can read (use png, jpg, webp, bmp or tiff)"
            ) from None

    def load_source(
        self, path: str | os.PathLike | None, crop: str | bool = "none"
    ) -> tuple[Tensor, np.ndarray]:
        """The source image at the model's size: a tensor (1, 3, H, W) in [0, 1] and uint8 (H, W, 3)."""
        from mraa.framing import crop_resize, frame_source
        from mraa.image import to_batch

        image = self.read_source_image(path)
        h, w = self.image_size
        frame = crop_resize(image, frame_source(image, self.framing(crop), w / h).box, self.image_size)
        return to_batch(frame), frame

    def check_driving(self, path: str | os.PathLike | None) -> Path:
        """:meth:`check_upload` for the driving video, which must not be a still image (png strips pass)."""
        path = self.check_upload(path, "driving video")
        if path.suffix.lower() in IMAGE_SUFFIXES - {".png"}:
            raise MRAAError(f"driving {path.name} is a still image: upload a video (mp4, webm, mov, gif...)")
        return path

    def probe(self, path: Path):
        from mraa.data.video_io import probe_video

        try:
            return probe_video(path)
        except MRAAError as exc:
            raise unreadable_video(path, exc) from None

    def plan(self, source: np.ndarray, driving_path: str | os.PathLike | None, crop: str | bool):
        """The crop plan (:class:`mraa.framing.CropPlan`) for a source image and an uploaded driving video,
        None for ``none``/``center`` (they need no detection)."""
        from mraa.framing import plan_for_files

        framing = self.framing(crop)
        if framing in ("none", "center"):
            return None
        path = self.check_driving(driving_path)
        h, w = self.image_size
        try:
            return plan_for_files(source, path, framing, w / h, self.limits.max_frames)
        except MRAAError as exc:
            raise unreadable_video(path, exc) from None

    def _driving_frames(
        self, path: Path, crop: str | bool, limit: int, boxes=None
    ) -> tuple[list[np.ndarray], bool]:
        """Up to ``limit`` frames at the model's size, cut per ``boxes`` (a
        :class:`mraa.framing.DrivingFraming`; found here when ``crop`` asks for a subject and none are given),
        and whether the video has more."""
        from mraa.data.video_io import iter_video
        from mraa.framing import frame_driving_file, framed_frames

        framing = self.framing(crop)
        h, w = self.image_size
        frames: list[np.ndarray] = []
        try:
            if boxes is None and framing not in ("none", "center"):
                boxes = frame_driving_file(path, framing, w / h, limit)
            raw = itertools.islice(iter_video(path), limit + 1)
            for frame in framed_frames(raw, boxes, self.image_size, framing):
                if len(frames) == limit:
                    return frames, True
                frames.append(frame)
        except MRAAError as exc:
            raise unreadable_video(path, exc) from None
        if not frames:
            raise MRAAError(f"driving video {path.name} has no frames")
        return frames, False

    def inspect_driving(
        self, path: str | os.PathLike | None, crop: str | bool = "none"
    ) -> tuple[np.ndarray, str]:
        """The first driving frame at the model's size and a line about the video (reads one frame)."""
        from mraa.data.video_io import iter_video
        from mraa.framing import crop_resize, frame_source

        path = self.check_driving(path)
        info = self.probe(path)
        try:
            first = next(iter_video(path), None)
        except MRAAError as exc:
            raise unreadable_video(path, exc) from None
        if first is None:
            raise MRAAError(f"driving video {path.name} has no frames")
        h, w = self.image_size
        frame = crop_resize(first, frame_source(first, self.framing(crop), w / h).box, self.image_size)
        count = f"{info.num_frames} frames, " if info.num_frames else ""
        audio = ", with audio" if info.has_audio else ""
        return frame, f"driving video {path.name}: {count}{info.fps:g} fps{audio}"

    def load_driving(
        self, path: str | os.PathLike | None, crop: str | bool = "none", boxes=None
    ) -> DrivingClip:
        """Up to ``limits.max_frames`` driving frames at the model's size (an error when there are none)."""
        path = self.check_driving(path)
        info = self.probe(path)
        frames, truncated = self._driving_frames(path, crop, self.limits.max_frames, boxes)
        return DrivingClip(frames, info.fps, truncated, info.has_audio)
