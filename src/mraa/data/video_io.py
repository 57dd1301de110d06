"""Reading and writing images and videos (uint8 HxWx3 numpy frames) with imageio and ffmpeg.

Image files are read and written by :mod:`mraa.data.image_io`, whose names are importable from here too.

Videos can be files ffmpeg reads (mp4, mov, webm, avi, mkv, gif), folders of frames, or
"png strips" (the official datasets' layout: frames concatenated horizontally in one image).
Writers go to a temporary file in the target folder and are renamed into place only when
complete and checked (encoder and audio-mux exit status, frame count or size read back), so an
interrupted or failed run (a full disk) never leaves a half-written output.

Readers: images come out upright (EXIF orientation) and as RGB whatever their Pillow mode; video
files with a variable frame rate are resampled to their average rate by timestamps.
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

from mraa import runtime
from mraa.atomic import lock_temp, release_temp, temp_file
from mraa.data.image_io import (
    IMAGE_SUFFIXES,
    MIN_IMAGE_SIDE,
    FolderWriter,
    centre_crop_box,
    check_image_size,
    check_output_parent,
    fit_frame,
    pil_to_rgb_uint8,
    read_image,
    to_rgb_uint8,
    verify_image,
    write_frame_folder,
    write_image,
)
from mraa.data.orientation import Orientation, frame_orientation, orient_frame
from mraa.errors import MRAAError

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_FPS", "IMAGE_SUFFIXES", "MAX_FPS", "MAX_GIF_BYTES", "MIN_IMAGE_SIDE", "VIDEO_SUFFIXES",
    "WRITER_SUFFIXES", "centre_crop_box", "check_fps", "check_gif_size", "check_image_size",
    "check_output_parent", "count_video_frames", "ffmpeg_name", "fit_frame", "FolderWriter",
    "has_audio_stream", "iter_video", "pil_to_rgb_uint8", "probe_video", "read_image", "read_video",
    "resample_by_time", "to_rgb_uint8", "verify_image", "verify_video", "VideoInfo", "VideoWriter",
    "write_frame_folder", "write_image", "write_video"]  # fmt: skip

VIDEO_SUFFIXES = {".mp4", ".mov", ".webm", ".avi", ".mkv", ".gif", ".m4v", ".mpg", ".mpeg"}
DEFAULT_FPS = 25.0


MAX_FPS = 1000.0  # frame rates above this are a typo (1e9): refused before anything is written


def check_fps(fps: float, name: str = "the frame rate") -> float:
    """``fps`` if it is a usable frame rate (above 0, at most :data:`MAX_FPS`), else :class:`MRAAError`."""
    if not 0 < fps <= MAX_FPS:  # also refuses nan
        raise MRAAError(
            f"{name} must be positive and at most {MAX_FPS:g} (a frame rate, in frames per second), got {fps}"
        )
    return float(fps)


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


def ffmpeg_name(path: str | os.PathLike) -> str:
    """``path`` as ffmpeg and PyAV must be given it: absolute, so a name such as ``take:2.mp4`` is not
    read as a protocol (``take:``)."""
    return os.path.abspath(path)


def _ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def has_audio_stream(path: str | os.PathLike) -> bool:
    """True if ffmpeg sees an audio stream in the file."""
    path = Path(path)
    if path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES | {".gif"}:
        return False
    result = subprocess.run(
        [_ffmpeg_exe(), "-hide_banner", "-i", ffmpeg_name(path)], capture_output=True, text=True, check=False
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
        frames = _iter_strip(path)  # checks that the image is a png strip
        height = next(frames).shape[0]
        return VideoInfo(DEFAULT_FPS, 1 + sum(1 for _ in frames), (height, height), False)
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
        with av.open(ffmpeg_name(path)) as container:
            if not container.streams.video:
                raise MRAAError(f"no video stream in {path}")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            fps = float(rate) if rate else DEFAULT_FPS
            frames = int(stream.frames) if stream.frames else None
            size = (stream.codec_context.height, stream.codec_context.width)
            has_audio = bool(container.streams.audio)
            first = next(container.decode(stream), None)  # the display matrix comes with the frames
            if first is not None and frame_orientation(first, str(path), stream)[0] % 2:
                size = size[::-1]  # shown turned a quarter: (height, width) as displayed
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
    """Yield the frames of a video (file, folder of frames or png strip) as uint8 HxWx3, streaming.

    A video file with a variable frame rate is resampled to its average rate by the frames' timestamps
    (frames repeated or dropped, with one warning), so the frames keep their place against the audio.
    """
    path = Path(path)
    if not path.exists():
        raise MRAAError(f"video not found: {path}")
    if path.is_dir():
        yield from _iter_folder(path)
        return
    if path.suffix.lower() in IMAGE_SUFFIXES:
        yield from _iter_strip(path)
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
            raise MRAAError(f"cannot read video {path}: {exc.__class__.__name__}: {exc}") from exc
        log.warning("%s: stopped reading after %d frames: %s", path, count, exc)
    if count == 0:
        raise MRAAError(f"video has no frames: {path}")


def _iter_folder(folder: Path) -> Iterator[np.ndarray]:
    files = _frame_files(folder)
    if not files:
        raise MRAAError(f"no image frames in folder {folder}")
    first_shape = None
    for file in files:
        frame = read_image(file)
        if first_shape is None:
            first_shape = frame.shape
        elif frame.shape != first_shape:
            raise MRAAError(
                f"frame {file} is {frame.shape[1]}x{frame.shape[0]} but the first frame of {folder} is "
                f"{first_shape[1]}x{first_shape[0]}: all frames of a folder must have the same size"
            )
        yield frame


def _iter_strip(path: Path) -> Iterator[np.ndarray]:
    if path.suffix.lower() != ".png":
        raise MRAAError(
            f"{path} is a still image, not a video: give a video file, a folder of frames, or a png strip "
            "(T square frames side by side)"
        )
    strip = read_image(path)
    height, width = strip.shape[:2]
    if width % height:
        raise MRAAError(
            f"{path} is a single {width}x{height} image, not a video: a png strip holds T square frames side "
            "by side (its width a multiple of its height)"
        )
    for t in range(width // height):
        yield strip[:, t * height : (t + 1) * height]


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
    with av.open(ffmpeg_name(path)) as container:
        if not container.streams.video:
            raise MRAAError(f"no video stream in {path}")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.thread_count = runtime.io_threads()  # the compute threads keep the other cores (mraa.runtime)
        rate = stream.average_rate or stream.guessed_rate
        orientation: Orientation | None = None

        def upright(frame) -> np.ndarray:  # the display matrix applied, as ffmpeg's player does
            nonlocal orientation
            if orientation is None:
                orientation = frame_orientation(frame, str(path), stream)
            return orient_frame(reformatter.reformat(frame, format="rgb24").to_ndarray(), orientation)

        decoded = ((_frame_time(frame), upright(frame)) for frame in container.decode(stream))
        if not rate:
            yield from (image for _, image in decoded)
            return
        yield from resample_by_time(decoded, float(rate), name=str(path))


def _frame_time(frame) -> float | None:
    """Presentation time of a decoded PyAV frame in seconds (None when the stream has no timestamps)."""
    if frame.pts is None or frame.time_base is None:
        return None
    return float(frame.pts * frame.time_base)


def resample_by_time(
    frames: Iterable[tuple[float | None, np.ndarray]], fps: float, name: str = "video"
) -> Iterator[np.ndarray]:
    """Place timestamped frames on a constant ``fps`` grid: output frame n shows the frame nearest to
    time n / fps (from the first timestamp). Frames of a constant-rate video pass one to one; those of
    a variable-rate video are repeated or dropped (one warning). Frames without a timestamp pass as they are.
    """
    start: float | None = None
    previous: tuple[float, np.ndarray] | None = None
    emitted = received = 0
    warned = False
    period = 1.0 / fps
    for time, image in frames:
        received += 1
        if time is None:  # no timestamps: trust the order
            if previous is not None:
                yield previous[1]
                emitted += 1
                previous = None
            yield image
            emitted += 1
            continue
        if start is None:
            start = time
        time -= start
        if previous is not None:
            boundary = (previous[0] + time) / 2  # slots before the midpoint are nearer the previous frame
            while emitted * period < boundary - 1e-6 * period:
                yield previous[1]
                emitted += 1
        if not warned and emitted != received - 1:
            log.warning(
                "%s has a variable frame rate: frames are placed by their timestamps at a constant %g fps "
                "(some repeated or dropped) so they stay in sync with the audio",
                name,
                fps,
            )
            warned = True
        previous = (time, image)
    if previous is not None:  # the last frame lasts one period
        end = previous[0] + period / 2
        while emitted * period < end - 1e-6 * period:
            yield previous[1]
            emitted += 1


def read_video(path: str | os.PathLike) -> np.ndarray:
    """All frames of a video as a uint8 array of shape (T, H, W, 3)."""
    frames = list(iter_video(path))
    return np.stack(frames)


class VideoWriter:
    """Stream frames to an H.264 mp4 (or webm / mov / mkv / gif by suffix), atomically and verified.

    Frames go to an ffmpeg process writing a temporary file next to ``path``. ``close()`` checks the
    encoder's exit status, muxes the audio of ``audio_from`` (when it has any; the mux is checked too),
    probes the finished file for its frame count and only then renames it into place. Any failure (a full
    disk, a killed encoder) raises :class:`MRAAError` and leaves no output. On an exception inside a
    ``with`` block the temporary file is removed and nothing is written.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fps: float,
        audio_from: str | os.PathLike | None = None,
        quality: int = 8,
    ) -> None:
        self.path = Path(path)
        check_output_parent(self.path)
        if self.path.is_dir():
            raise MRAAError(f"output path is a directory: {self.path}")
        self.fps = check_fps(fps)
        self.audio_from = Path(audio_from) if audio_from else None
        self.quality = quality
        self.suffix = self.path.suffix.lower()
        if self.suffix not in WRITER_SUFFIXES:
            raise MRAAError(
                f"unsupported output format {self.suffix!r} (use .mp4, .mov, .mkv, .webm or .gif)"
            )
        self._tmp = temp_file(self.path.parent, self.path.stem, self.suffix)  # marked as mraa's
        self._lock = lock_temp(self._tmp)  # marks the temporary file as in use (see remove_stale_temps)
        self._encoder: _Encoder | None = None
        self._gif_frames: list[np.ndarray] = []
        self._size: tuple[int, int] | None = None
        self.num_frames = 0
        self.has_audio = False  # set by close() when an audio track was muxed

    def write(self, frame: np.ndarray) -> None:
        """Append one uint8 HxWx3 frame (all frames must have the first frame's size)."""
        frame = np.ascontiguousarray(frame, dtype=np.uint8)
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise MRAAError(f"a video frame must be HxWx3, got shape {frame.shape}")
        if self._size is None:
            self._size = frame.shape[:2]
            if self.suffix != ".gif":
                self._encoder = _Encoder(self._tmp, self.suffix, frame.shape[:2], self.fps, self.quality)
        elif frame.shape[:2] != self._size:
            raise MRAAError(f"frame {self.num_frames} is {frame.shape[:2]} but the first was {self._size}")
        if self._encoder is None:
            check_gif_size(self.num_frames + 1, self._size, str(self.path))
            self._gif_frames.append(frame)
        else:
            self._encoder.write(frame)
        self.num_frames += 1

    def write_many(self, frames: Iterable[np.ndarray]) -> None:
        for frame in frames:
            self.write(frame)

    def abort(self) -> None:
        """Drop everything written so far."""
        if self._encoder is not None:
            self._encoder.kill()
            self._encoder = None
        self._tmp.unlink(missing_ok=True)
        self._tmp.with_name(self._tmp.stem + "-audio" + self.suffix).unlink(missing_ok=True)
        release_temp(self._lock)
        self._lock = None

    def close(self) -> Path:
        """Finish and check the file (adding audio if asked), move it into place and return its path."""
        try:
            if self.num_frames == 0:
                raise MRAAError("no frames were written")
            if self._encoder is None:
                self._write_gif()
            else:
                self._encoder.finish()
                self._encoder = None
                verify_video(self._tmp, self.num_frames, name=str(self.path))
                if self.audio_from is not None and has_audio_stream(self.audio_from):
                    self._mux_audio()
                    self.has_audio = True
            os.chmod(self._tmp, 0o644)
            os.replace(self._tmp, self.path)
        except BaseException:
            self.abort()
            raise
        release_temp(self._lock)
        self._lock = None
        return self.path

    def _write_gif(self) -> None:
        from PIL import Image

        try:
            import imageio.v3 as iio

            iio.imwrite(self._tmp, np.stack(self._gif_frames), duration=1000.0 / self.fps, loop=0)
        except OSError as exc:
            raise MRAAError(f"cannot write {self.path}: {exc}") from exc
        try:
            with Image.open(self._tmp) as image:
                frames = getattr(image, "n_frames", 1)
        except Exception as exc:
            raise MRAAError(f"{self.path}: the written gif cannot be read back ({exc})") from exc
        if not 1 <= frames <= self.num_frames:  # Pillow merges identical consecutive frames
            raise MRAAError(f"{self.path}: the written gif has {frames} frames, {self.num_frames} were sent")

    def _mux_audio(self) -> None:
        muxed = self._tmp.with_name(self._tmp.stem + "-audio" + self.suffix)
        audio_codec = "libopus" if self.suffix == ".webm" else "aac"
        cmd = [
            _ffmpeg_exe(), "-y", "-loglevel", "error", "-i", ffmpeg_name(self._tmp),
            "-t", f"{self.num_frames / self.fps:.6f}", "-i", ffmpeg_name(self.audio_from),
            "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", "-c:a", audio_codec, ffmpeg_name(muxed),
        ]  # fmt: skip
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            muxed.unlink(missing_ok=True)
            raise MRAAError(
                f"{self.path}: copying the audio of {self.audio_from} failed "
                f"(ffmpeg exit status {result.returncode}: {_last_line(result.stderr)})"
            )
        verify_video(muxed, self.num_frames, name=str(self.path))
        os.replace(muxed, self._tmp)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


WRITER_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".gif", ".m4v"}
MAX_GIF_BYTES = 256 << 20  # a gif is encoded from all its frames at once: they are held in memory


def check_gif_size(num_frames: int, size: tuple[int, int], name: str = "gif") -> None:
    """Refuse a gif whose frames (H, W) would take more than :data:`MAX_GIF_BYTES` of memory."""
    if num_frames * size[0] * size[1] * 3 > MAX_GIF_BYTES:
        limit = MAX_GIF_BYTES // (size[0] * size[1] * 3)
        raise MRAAError(
            f"{name}: a .gif is made from all its frames in memory, and at {size[1]}x{size[0]} it can hold at "
            f"most {limit} frames ({MAX_GIF_BYTES >> 20} MiB): write .mp4 or .webm instead, or fewer or "
            "smaller frames"
        )


def _last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


class _Encoder:
    """One ffmpeg process reading raw RGB frames on stdin and encoding them to ``path``."""

    def __init__(self, path: Path, suffix: str, size: tuple[int, int], fps: float, quality: int) -> None:
        from fractions import Fraction

        self.path = path
        h, w = size
        codec = {".webm": "libvpx-vp9"}.get(suffix, "libx264")
        level = 1 - quality / 10.0  # imageio's quality scale: 10 best, 0 worst
        cmd = [
            _ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "rawvideo", "-vcodec", "rawvideo",
            "-s", f"{w}x{h}", "-pix_fmt", "rgb24", "-r", str(Fraction(fps).limit_denominator()), "-i", "-",
            "-an", "-vcodec", codec, "-pix_fmt", "yuv420p", "-threads", str(runtime.io_threads()),
        ]  # fmt: skip
        cmd += (
            ["-crf", str(int(level * 51))] if codec == "libx264" else ["-qscale:v", str(int(level * 30) + 1)]
        )
        if (h % 2 or w % 2) and codec == "libx264":
            cmd += ["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2"]
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed by finish/kill)
        try:
            self._process = subprocess.Popen(
                [*cmd, ffmpeg_name(path)],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=self._stderr,
            )
        except OSError as exc:
            self._stderr.close()
            raise MRAAError(f"cannot start the video encoder ffmpeg: {exc}") from exc

    def _message(self) -> str:
        self._stderr.seek(0)
        return _last_line(self._stderr.read().decode("utf-8", "replace"))

    def write(self, frame: np.ndarray) -> None:
        try:
            self._process.stdin.write(frame)  # C-contiguous (VideoWriter.write): its buffer, no copy
        except OSError as exc:  # a broken pipe: the encoder died (full disk, killed)
            self._process.wait()
            raise MRAAError(
                f"the video encoder stopped (exit status {self._process.returncode}: {self._message()})"
            ) from exc

    def finish(self) -> None:
        """Close the input, wait for ffmpeg and check that it succeeded."""
        with contextlib.suppress(OSError):  # a failure shows in the exit status below
            self._process.stdin.close()
        status = self._process.wait()
        message = self._message()
        self._stderr.close()
        if status != 0:
            raise MRAAError(f"the video encoder failed (exit status {status}: {message})")

    def kill(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
        with contextlib.suppress(OSError):
            self._process.stdin.close()
        self._process.wait()
        with contextlib.suppress(OSError, ValueError):
            self._stderr.close()


def count_video_frames(path: str | os.PathLike) -> int:
    """Number of video packets (= frames for the codecs mraa writes) in a file; raises if unreadable."""
    import av

    with av.open(ffmpeg_name(path)) as container:
        if not container.streams.video:
            raise MRAAError(f"no video stream in {path}")
        stream = container.streams.video[0]
        return sum(1 for packet in container.demux(stream) if packet.size)


def verify_video(path: str | os.PathLike, expected: int, name: str | None = None) -> None:
    """Check that a written video can be opened and holds ``expected`` frames (else :class:`MRAAError`)."""
    name = name or str(path)
    if not _has_pyav():
        return
    try:
        frames = count_video_frames(path)
    except MRAAError:
        raise
    except Exception as exc:
        raise MRAAError(
            f"{name}: the written video cannot be read back ({exc.__class__.__name__}: {exc}); "
            "is the disk full?"
        ) from exc
    if frames != expected:
        raise MRAAError(
            f"{name}: the written video has {frames} frames, {expected} were sent; is the disk full?"
        )


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
