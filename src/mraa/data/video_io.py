"""Reading and writing images and videos (uint8 HxWx3 numpy frames) with imageio and ffmpeg.

Videos can be files ffmpeg reads (mp4, mov, webm, avi, mkv, gif), folders of frames, or
"png strips" (the official datasets' layout: frames concatenated horizontally in one image).
Writers go to a temporary file in the target folder and are renamed into place only when
complete, so an interrupted run never leaves a half-written output.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mraa.atomic import atomic_path
from mraa.errors import MRAAError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
VIDEO_SUFFIXES = {".mp4", ".mov", ".webm", ".avi", ".mkv", ".gif", ".m4v", ".mpg", ".mpeg"}
DEFAULT_FPS = 25.0


def to_rgb_uint8(image: np.ndarray, name: str = "image", warn: bool = True) -> np.ndarray:
    """Convert any imageio array (gray, gray+alpha, RGB, RGBA, 16-bit, float) to uint8 HxWx3."""
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3:
        raise MRAAError(f"{name}: expected a 2D image, got an array of shape {array.shape}")
    channels = array.shape[2]
    if array.dtype == np.uint16:
        if warn:
            log.warning("%s: 16-bit image converted to 8 bits", name)
        array = (array.astype(np.float32) / 65535.0 * 255.0 + 0.5).astype(np.uint8)
    elif array.dtype in (np.float32, np.float64):
        array = (np.clip(array, 0, 1) * 255.0 + 0.5).astype(np.uint8)
    elif array.dtype == bool:
        array = array.astype(np.uint8) * 255
    elif array.dtype != np.uint8:
        array = np.clip(array, 0, 255).astype(np.uint8)
    if channels in (2, 4):
        if warn and np.any(array[:, :, -1] < 255):
            log.warning("%s: transparency dropped (composited on white)", name)
        color = array[:, :, :-1].astype(np.float32)
        alpha = array[:, :, -1:].astype(np.float32) / 255.0
        array = (color * alpha + 255.0 * (1.0 - alpha) + 0.5).astype(np.uint8)
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    return np.ascontiguousarray(array[:, :, :3])


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image as uint8 HxWx3 (converting gray, alpha and 16-bit images, with a warning)."""
    import imageio.v3 as iio

    path = Path(path)
    if not path.exists():
        raise MRAAError(f"image not found: {path}")
    if path.is_dir():
        raise MRAAError(f"expected an image file, got a directory: {path}")
    try:
        image = iio.imread(path, index=0) if path.suffix.lower() == ".gif" else iio.imread(path)
    except Exception as exc:  # imageio raises many types for unreadable files
        raise MRAAError(f"cannot read image {path}: {exc.__class__.__name__}: {exc}") from None
    return to_rgb_uint8(image, name=str(path))


@dataclass
class VideoInfo:
    """What is known about a video before reading it."""

    fps: float
    num_frames: int | None
    size: tuple[int, int] | None  # (height, width)
    has_audio: bool


def _frame_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    return files


def _ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def has_audio_stream(path: str | os.PathLike) -> bool:
    """True if ffmpeg sees an audio stream in the file."""
    path = Path(path)
    if path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES | {".gif"}:
        return False
    result = subprocess.run(
        [_ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True, check=False
    )
    return any("Audio:" in line for line in result.stderr.splitlines() if "Stream #" in line)


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Frame rate, frame count (when cheap to know), size and audio presence of a video."""
    path = Path(path)
    if not path.exists():
        raise MRAAError(f"video not found: {path}")
    if path.is_dir():
        files = _frame_files(path)
        if not files:
            raise MRAAError(f"no image frames in folder {path}")
        first = read_image(files[0])
        return VideoInfo(DEFAULT_FPS, len(files), first.shape[:2], False)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        strip = read_image(path)
        height = strip.shape[0]
        return VideoInfo(DEFAULT_FPS, max(1, strip.shape[1] // height), (height, height), False)
    import imageio.v3 as iio

    if path.suffix.lower() != ".gif" and _has_pyav():
        return _probe_av(path)
    try:
        meta = iio.immeta(path)
    except Exception as exc:
        raise MRAAError(f"cannot read video {path}: {exc.__class__.__name__}: {exc}") from None
    fps = meta.get("fps")
    if not fps and meta.get("duration") and path.suffix.lower() == ".gif":
        fps = 1000.0 / float(meta["duration"]) if meta["duration"] else None
    fps = float(fps) if fps else DEFAULT_FPS
    return VideoInfo(fps, None, None, has_audio_stream(path))


def _probe_av(path: Path) -> VideoInfo:
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise MRAAError(f"no video stream in {path}")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            fps = float(rate) if rate else DEFAULT_FPS
            frames = int(stream.frames) if stream.frames else None
            size = (stream.codec_context.height, stream.codec_context.width)
            has_audio = bool(container.streams.audio)
    except MRAAError:
        raise
    except Exception as exc:
        raise MRAAError(f"cannot read video {path}: {exc.__class__.__name__}: {exc}") from None
    return VideoInfo(fps, frames, size, has_audio)


def _has_pyav() -> bool:
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


def iter_video(path: str | os.PathLike) -> Iterator[np.ndarray]:
    """Yield the frames of a video (file, folder of frames or png strip) as uint8 HxWx3, streaming."""
    path = Path(path)
    if not path.exists():
        raise MRAAError(f"video not found: {path}")
    if path.is_dir():
        files = _frame_files(path)
        if not files:
            raise MRAAError(f"no image frames in folder {path}")
        for file in files:
            yield read_image(file)
        return
    if path.suffix.lower() in IMAGE_SUFFIXES:
        strip = read_image(path)
        height = strip.shape[0]
        if strip.shape[1] % height:
            raise MRAAError(f"{path}: a png strip must be T square frames side by side, got {strip.shape}")
        for t in range(strip.shape[1] // height):
            yield strip[:, t * height : (t + 1) * height]
        return
    count = 0
    try:
        for frame in _decode_frames(path):
            count += 1
            yield to_rgb_uint8(frame, name=str(path), warn=count == 1)
    except MRAAError:
        raise
    except Exception as exc:
        if count == 0:
            raise MRAAError(f"cannot read video {path}: {exc.__class__.__name__}: {exc}") from None
        log.warning("%s: stopped reading after %d frames: %s", path, count, exc)
    if count == 0:
        raise MRAAError(f"video has no frames: {path}")


def _decode_frames(path: Path) -> Iterator[np.ndarray]:
    """Decode a video file. PyAV directly (one colour converter for all frames, and none of imageio's
    per-file ``gc.collect``) for real videos; imageio for gifs, so transparency is composited."""
    import imageio.v3 as iio

    if path.suffix.lower() == ".gif" or not _has_pyav():
        yield from iio.imiter(path)
        return
    import av
    from av.video.reformatter import VideoReformatter

    reformatter = VideoReformatter()
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise MRAAError(f"no video stream in {path}")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            yield reformatter.reformat(frame, format="rgb24").to_ndarray()


def read_video(path: str | os.PathLike) -> np.ndarray:
    """All frames of a video as a uint8 array of shape (T, H, W, 3)."""
    frames = list(iter_video(path))
    return np.stack(frames)


class VideoWriter:
    """Stream frames to an H.264 mp4 (or gif / frame folder by suffix), atomically.

    Frames go to a temporary file next to ``path``; ``close()`` muxes the audio of ``audio_from``
    (when it has any) and renames the result into place. On an exception inside a ``with`` block
    the temporary file is removed and nothing is written.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fps: float,
        audio_from: str | os.PathLike | None = None,
        quality: int = 8,
    ) -> None:
        self.path = Path(path)
        if not self.path.parent.exists():
            raise MRAAError(f"output directory does not exist: {self.path.parent}")
        if self.path.is_dir():
            raise MRAAError(f"output path is a directory: {self.path}")
        self.fps = float(fps)
        self.audio_from = Path(audio_from) if audio_from else None
        self.quality = quality
        self.suffix = self.path.suffix.lower()
        if self.suffix not in {".mp4", ".mov", ".mkv", ".webm", ".avi", ".gif", ".m4v"}:
            raise MRAAError(
                f"unsupported output format {self.suffix!r} (use .mp4, .mov, .mkv, .webm or .gif)"
            )
        fd, tmp = tempfile.mkstemp(suffix=self.suffix, prefix=f".{self.path.stem}-", dir=self.path.parent)
        os.close(fd)
        self._tmp = Path(tmp)
        self._writer = None
        self._gif_frames: list[np.ndarray] = []
        self.num_frames = 0

    def _open(self, frame: np.ndarray) -> None:
        import imageio.v2 as iio2

        if self.suffix == ".gif":
            return
        codec = {".webm": "libvpx-vp9"}.get(self.suffix, "libx264")
        h, w = frame.shape[:2]
        params = ["-pix_fmt", "yuv420p"] if codec == "libx264" else []
        if (h % 2 or w % 2) and codec == "libx264":
            params += ["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2"]
        self._writer = iio2.get_writer(
            self._tmp,
            format="FFMPEG",
            mode="I",
            fps=self.fps,
            codec=codec,
            quality=self.quality,
            macro_block_size=1,
            ffmpeg_log_level="error",
            output_params=params,
        )

    def write(self, frame: np.ndarray) -> None:
        """Append one uint8 HxWx3 frame."""
        frame = np.ascontiguousarray(frame)
        if self._writer is None and not self._gif_frames:
            self._open(frame)
        if self.suffix == ".gif":
            self._gif_frames.append(frame)
        else:
            self._writer.append_data(frame)
        self.num_frames += 1

    def write_many(self, frames: Iterable[np.ndarray]) -> None:
        for frame in frames:
            self.write(frame)

    def abort(self) -> None:
        """Drop everything written so far."""
        if self._writer is not None:
            with contextlib.suppress(Exception):  # the file is discarded anyway
                self._writer.close()
            self._writer = None
        self._tmp.unlink(missing_ok=True)

    def close(self) -> Path:
        """Finish the file (adding audio if asked), move it into place and return its path."""
        if self.num_frames == 0:
            self.abort()
            raise MRAAError("no frames were written")
        if self.suffix == ".gif":
            import imageio.v3 as iio

            iio.imwrite(self._tmp, np.stack(self._gif_frames), duration=1000.0 / self.fps, loop=0)
        else:
            self._writer.close()
            self._writer = None
            if self.audio_from is not None and has_audio_stream(self.audio_from):
                self._mux_audio()
        os.chmod(self._tmp, 0o644)
        os.replace(self._tmp, self.path)
        return self.path

    def _mux_audio(self) -> None:
        muxed = self._tmp.with_name(self._tmp.stem + "-audio" + self.suffix)
        audio_codec = "libopus" if self.suffix == ".webm" else "aac"
        cmd = [
            _ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(self._tmp),
            "-t", f"{self.num_frames / self.fps:.6f}", "-i", str(self.audio_from),
            "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", "-c:a", audio_codec, str(muxed),
        ]  # fmt: skip
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            muxed.unlink(missing_ok=True)
            log.warning("could not copy the audio track: %s", result.stderr.strip().splitlines()[-1:])
            return
        os.replace(muxed, self._tmp)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_video(
    path: str | os.PathLike,
    frames: Iterable[np.ndarray],
    fps: float = DEFAULT_FPS,
    audio_from: str | os.PathLike | None = None,
) -> Path:
    """Write uint8 HxWx3 frames to a video file (atomically). A folder path writes numbered PNGs."""
    path = Path(path)
    if path.suffix == "":
        return write_frame_folder(path, frames)
    with VideoWriter(path, fps, audio_from=audio_from) as writer:
        writer.write_many(frames)
    return path


def write_frame_folder(folder: str | os.PathLike, frames: Iterable[np.ndarray]) -> Path:
    """Write frames as ``000000.png``, ``000001.png``... into a new folder (atomically)."""
    import imageio.v3 as iio

    folder = Path(folder)
    if not folder.parent.exists():
        raise MRAAError(f"output directory does not exist: {folder.parent}")
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        for index, frame in enumerate(frames):
            iio.imwrite(tmp / f"{index:06d}.png", np.ascontiguousarray(frame))
        if folder.exists():
            import shutil

            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def write_image(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write one uint8 image atomically."""
    import imageio.v3 as iio

    path = Path(path)
    if not path.parent.exists():
        raise MRAAError(f"output directory does not exist: {path.parent}")
    with atomic_path(path) as tmp:
        iio.imwrite(tmp, np.ascontiguousarray(image), extension=path.suffix)
    return path


def fit_frame(frame: np.ndarray, size: tuple[int, int], crop: bool = False) -> np.ndarray:
    """Resize a uint8 frame to ``size`` (H, W); with ``crop`` first take the centred crop of that aspect ratio.

    Uses Pillow's anti-aliased bilinear filter (like scikit-image's ``resize``, which the official demo uses).
    """
    from PIL import Image

    h, w = size
    if crop:
        fh, fw = frame.shape[:2]
        target = w / h
        if fw / fh > target:
            new_w = max(1, round(fh * target))
            x0 = (fw - new_w) // 2
            frame = frame[:, x0 : x0 + new_w]
        else:
            new_h = max(1, round(fw / target))
            y0 = (fh - new_h) // 2
            frame = frame[y0 : y0 + new_h]
    if frame.shape[:2] == (h, w):
        return frame
    return np.asarray(Image.fromarray(frame).resize((w, h), Image.BILINEAR))
