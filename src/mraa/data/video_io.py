"""Reading and writing images and videos (uint8 HxWx3 numpy frames) with imageio and ffmpeg.

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
from mraa.atomic import atomic_path, lock_temp, release_temp
from mraa.errors import MRAAError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
VIDEO_SUFFIXES = {".mp4", ".mov", ".webm", ".avi", ".mkv", ".gif", ".m4v", ".mpg", ".mpeg"}
DEFAULT_FPS = 25.0


MIN_IMAGE_SIDE = 8  # smaller inputs are refused rather than blown up into a blur


def to_rgb_uint8(image: np.ndarray, name: str = "image", warn: bool = True) -> np.ndarray:
    """Convert an image array (gray, gray+alpha, RGB, RGBA, 16-bit, float) to uint8 HxWx3.

    Four channels are read as RGBA: decode CMYK files with :func:`read_image`, which converts by mode.
    """
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 2, 3, 4):
        raise MRAAError(f"{name}: expected a 2D image, got an array of shape {array.shape}")
    channels = array.shape[2]
    if array.dtype == np.uint16:
        if warn:
            log.warning("%s: 16-bit image converted to 8 bits", name)
        array = (array.astype(np.float32) / 65535.0 * 255.0 + 0.5).astype(np.uint8)
    elif array.dtype in (np.float16, np.float32, np.float64):
        array = (np.clip(np.nan_to_num(array), 0, 1) * 255.0 + 0.5).astype(np.uint8)
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


def pil_to_rgb_uint8(image, name: str = "image", warn: bool = True) -> np.ndarray:
    """A Pillow image in any mode as uint8 HxWx3, upright (EXIF orientation applied).

    CMYK, YCbCr, LAB and HSV are converted to RGB by Pillow; palette images keep their transparency
    (composited on white); 1-bit, 16-bit (``I;16``), 32-bit integer (``I``) and float (``F``) grey
    images are scaled to 8 bits.
    """
    from PIL import ExifTags, ImageOps

    if image.getexif().get(ExifTags.Base.Orientation, 1) != 1:  # exif_transpose copies even upright images
        image = ImageOps.exif_transpose(image)
    mode = image.mode
    if mode in ("CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        image = image.convert("RGB")
    elif mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in image.info
        image = image.convert("RGBA" if has_alpha else "RGB")
    elif mode == "1":
        image = image.convert("L")
    elif mode == "La":
        image = image.convert("LA")
    elif mode == "RGBa":
        image = image.convert("RGBA")
    if image.mode == "I" or image.mode.startswith("I;16"):
        array = np.asarray(image).astype(np.int64)
        if image.mode == "I" and array.max(initial=0) <= 255 and array.min(initial=0) >= 0:
            return to_rgb_uint8(array.astype(np.uint8), name, warn)
        return to_rgb_uint8(np.clip(array, 0, 65535).astype(np.uint16), name, warn)
    if image.mode == "F":
        array = np.nan_to_num(np.asarray(image, dtype=np.float64))
        scale = 1.0 if array.max(initial=0.0) <= 1.0 else 255.0  # [0, 1] floats or 0-255 floats
        return to_rgb_uint8((array / scale).astype(np.float32), name, warn)
    if image.mode not in ("L", "LA", "RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in image.mode else "RGB")
    return to_rgb_uint8(np.array(image), name, warn)  # a writable copy (np.asarray of an image is read-only)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image as uint8 HxWx3, upright, in RGB whatever its mode (CMYK, palette, 16-bit...)."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.exists():
        raise MRAAError(f"image not found: {path}")
    if path.is_dir():
        raise MRAAError(f"expected an image file, got a directory: {path}")
    try:
        with Image.open(path) as image:
            image.seek(0)  # the first frame of an animated gif/webp/tiff
            image.load()
            return pil_to_rgb_uint8(image, name=str(path))
    except MRAAError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:  # Pillow's decode errors
        raise MRAAError(f"cannot read image {path}: {exc.__class__.__name__}: {exc}") from exc


def check_image_size(image: np.ndarray, name: str = "image", minimum: int = MIN_IMAGE_SIDE) -> np.ndarray:
    """Refuse an image smaller than ``minimum`` pixels on a side (it would only be blown up into a blur)."""
    h, w = image.shape[:2]
    if h < minimum or w < minimum:
        raise MRAAError(f"{name} is only {w}x{h} pixels; at least {minimum}x{minimum} are needed")
    return image


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
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise MRAAError(f"no video stream in {path}")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.thread_count = runtime.io_threads()  # the compute threads keep the other cores (mraa.runtime)
        rate = stream.average_rate or stream.guessed_rate
        decoded = (
            (_frame_time(frame), reformatter.reformat(frame, format="rgb24").to_ndarray())
            for frame in container.decode(stream)
        )
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
        if not self.path.parent.exists():
            raise MRAAError(f"output directory does not exist: {self.path.parent}")
        if self.path.is_dir():
            raise MRAAError(f"output path is a directory: {self.path}")
        if not fps > 0 or fps == float("inf"):
            raise MRAAError(f"the frame rate must be a positive number, got {fps}")
        self.fps = float(fps)
        self.audio_from = Path(audio_from) if audio_from else None
        self.quality = quality
        self.suffix = self.path.suffix.lower()
        if self.suffix not in WRITER_SUFFIXES:
            raise MRAAError(
                f"unsupported output format {self.suffix!r} (use .mp4, .mov, .mkv, .webm or .gif)"
            )
        fd, tmp = tempfile.mkstemp(suffix=self.suffix, prefix=f".{self.path.stem}-", dir=self.path.parent)
        os.close(fd)
        self._tmp = Path(tmp)
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
            _ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(self._tmp),
            "-t", f"{self.num_frames / self.fps:.6f}", "-i", str(self.audio_from),
            "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", "-c:a", audio_codec, str(muxed),
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
                [*cmd, str(path)], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._stderr
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

    with av.open(str(path)) as container:
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


class FolderWriter:
    """Write image files into a temporary sibling folder, moved into place (replacing ``folder``) on success.

    On an exception inside the ``with`` block the temporary folder is removed and ``folder`` is untouched.
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self._tmp = Path(tempfile.mkdtemp(prefix=f".{self.folder.name}-", dir=self.folder.parent))
        self._lock = lock_temp(self._tmp)  # in use: not a stale temporary (see mraa.atomic)

    def write(self, name: str, image: np.ndarray) -> None:
        """Write ``image`` as ``name`` (a relative path; its subfolders are made) inside the folder."""
        import imageio.v3 as iio

        path = self._tmp / name
        try:
            if path.parent != self._tmp:
                path.parent.mkdir(parents=True, exist_ok=True)
            iio.imwrite(path, np.ascontiguousarray(image))
        except OSError as exc:  # a full disk
            raise MRAAError(f"cannot write {self.folder}: {exc.strerror or exc}") from exc

    def __enter__(self) -> FolderWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        import shutil

        try:
            if exc_type is None:
                if self.folder.exists():
                    shutil.rmtree(self.folder)
                os.replace(self._tmp, self.folder)
        finally:
            if self._tmp.exists():  # an exception (in the block or above): drop what was written
                shutil.rmtree(self._tmp, ignore_errors=True)
            release_temp(self._lock)


def write_frame_folder(folder: str | os.PathLike, frames: Iterable[np.ndarray]) -> Path:
    """Write frames as ``000000.png``, ``000001.png``... into a new folder (atomically)."""
    folder = Path(folder)
    if not folder.parent.exists():
        raise MRAAError(f"output directory does not exist: {folder.parent}")
    with FolderWriter(folder) as writer:
        for index, frame in enumerate(frames):
            writer.write(f"{index:06d}.png", frame)
    return folder


def write_image(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write one uint8 image atomically."""
    import imageio.v3 as iio

    path = Path(path)
    if not path.parent.exists():
        raise MRAAError(f"output directory does not exist: {path.parent}")
    image = np.ascontiguousarray(image)
    try:
        with atomic_path(path) as tmp:
            iio.imwrite(tmp, image, extension=path.suffix)
            verify_image(tmp, image.shape[:2], name=str(path))
    except OSError as exc:  # a full disk, a read-only folder
        raise MRAAError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return path


def verify_image(path: str | os.PathLike, size: tuple[int, int], name: str | None = None) -> None:
    """Check that a written image can be opened and has ``size`` (H, W) (else :class:`MRAAError`)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
            width, height = image.size
    except Exception as exc:
        raise MRAAError(
            f"{name or path}: the written image cannot be read back ({exc}); is the disk full?"
        ) from exc
    if (height, width) != tuple(size):
        raise MRAAError(
            f"{name or path}: the written image is {width}x{height}, expected {size[1]}x{size[0]}"
        )


def centre_crop_box(height: int, width: int, aspect: float) -> tuple[int, int, int, int]:
    """``(y0, y1, x0, x1)`` of the largest centred crop of width/height ratio ``aspect``."""
    if width / height > aspect:
        new_w = max(1, round(height * aspect))
        x0 = (width - new_w) // 2
        return 0, height, x0, x0 + new_w
    new_h = max(1, round(width / aspect))
    y0 = (height - new_h) // 2
    return y0, y0 + new_h, 0, width


def fit_frame(
    frame: np.ndarray, size: tuple[int, int], crop: bool = False, name: str = "an input image"
) -> np.ndarray:
    """Resize a uint8 frame to ``size`` (H, W); with ``crop`` first take the centred crop of that aspect ratio.

    Uses Pillow's anti-aliased bilinear filter (like scikit-image's ``resize``, which the official demo uses).
    Frames under :data:`MIN_IMAGE_SIDE` pixels on a side are refused (they would be blown up into a blur).
    """
    from PIL import Image

    check_image_size(frame, name)
    h, w = size
    if crop:
        y0, y1, x0, x1 = centre_crop_box(frame.shape[0], frame.shape[1], w / h)
        frame = frame[y0:y1, x0:x1]
    if frame.shape[:2] == (h, w):
        return frame
    return np.asarray(Image.fromarray(frame).resize((w, h), Image.BILINEAR))
