"""The one file pipeline: read -> frame -> animate / swap / segment -> paste -> write.

Every front-end (``mraa animate``, ``mraa swap``, ``mraa segment``, the web app, the Python
``Animator.animate_file``) calls these functions, and this is the only module that drives a
:class:`~mraa.data.video_io.VideoWriter` for results. The guarantees live here once: outputs are checked
against the inputs by :func:`mraa.safety.check_outputs` before anything is written, frames come from the
one frame reader (:mod:`mraa.data.video_io` through :func:`mraa.inputs.driving_tensors`), and every video
is written atomically and verified (nothing is left behind on failure).

:func:`animate_file` reads driving frames ahead on a reader thread and encodes on a writer thread (queues
are bounded, an error on either thread is raised in the caller). The animator is any object with the
methods of :class:`AnimatorLike` (this module never imports the Animator, so the Animator can call it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from mraa.errors import MRAAError
from mraa.framing import animate_framed, default_mode_for, prepare_framing
from mraa.inference.threads import BackgroundWorker, prefetch
from mraa.inputs import DrivingInput, ImageInput, count_frames, driving_tensors, gif_frames

ProgressCallback = Callable[[int, int], None]  # (frames done, frames in all or 0 when unknown)


class AnimatorLike(Protocol):
    """What the pipeline needs of an animator (:class:`mraa.animate.Animator` has it)."""

    batch_size: int

    @property
    def image_size(self) -> tuple[int, int]: ...

    def resolve_mode(self, mode: str) -> str: ...

    def encode_source(self, source: ImageInput, crop: bool = False) -> Any: ...

    def animate_iter(self, state: Any, driving: Iterable, *args: Any) -> Iterator[Any]: ...


@dataclass(frozen=True)
class AnimateOptions:
    """How to animate a file (the options of ``mraa animate`` and ``Animator.animate_file``).

    mode, background, smooth: as for ``Animator.animate_iter``. crop (auto, face, upper-body, full-body,
    center/True, none/False), paste_back (box, regions, True), output_size ("WxH"), best_frame,
    crop_preview (a path): see :mod:`mraa.framing` and docs/framing.md. fps: the output frame rate (default:
    the driving video's). visualize: also write a side-by-side video (True or "": next to the output with a
    ``_visualization`` suffix; or a path). progress: a frame progress bar (True), none (False), or a
    callback ``(frames done, frames in all)``. audio: copy the driving video's audio track. composite: a
    paste step of the caller's own applied to each animated uint8 frame (the app's size-limited one).
    """

    mode: str | None = None
    background: Any = None  # str or mraa.animate.BackgroundMotion
    crop: bool | str = False
    smooth: Any = None  # str or mraa.smoothing.SmoothingSpec
    fps: float | None = None
    visualize: bool | str | os.PathLike | None = None
    progress: bool | ProgressCallback = True
    audio: bool = True
    paste_back: bool | str | None = None
    output_size: str | tuple[int, int] | None = None
    best_frame: bool = False
    crop_preview: str | os.PathLike | None = None
    composite: Callable[[np.ndarray], np.ndarray] | None = None


@dataclass(frozen=True)
class DecodedDriving:
    """Driving frames already read and checked (the app's uploads): uint8 (H, W, 3) at the model's size,
    their frame rate and the file whose audio track to keep (None: silent)."""

    frames: Sequence[np.ndarray]
    fps: float
    audio_from: Path | None = None


@dataclass
class AnimateResult:
    """What :func:`animate_file` wrote."""

    output: Path
    frames: int
    fps: float
    has_audio: bool
    mode: str
    visualization: Path | None = None
    seconds: float = 0.0


# ----------------------------------------------------------------------------- checks and inputs
def visualization_path(output: Path, visualize: bool | str | os.PathLike | None) -> Path | None:
    """None for no visualisation; ``True`` or ``""``: OUTPUT with a ``_visualization`` suffix; else the path."""
    if visualize is None or visualize is False:
        return None
    if visualize is True or str(visualize) == "":
        return output.with_name(f"{output.stem}_visualization{output.suffix}")
    return Path(visualize)


def check_not_inputs(outputs: dict[str, Path | None], inputs: Iterable[object]) -> None:
    """Refuse outputs that would overwrite an input (also through a symlink or hard link) or each other:
    :func:`mraa.safety.check_outputs` for the path inputs (an encoded source or a frame array has none)."""
    from mraa.safety import check_outputs

    paths = [("input", Path(p)) for p in inputs if isinstance(p, (str, os.PathLike))]
    check_outputs(inputs=paths, outputs=outputs, clean_temps=False)


def probe_driving(path: str | os.PathLike) -> Any:
    """:func:`mraa.data.video_io.probe_video` once per version of a file: the CLI's early check (before
    the model loads) and the pipeline share one probe. Keyed by the resolved path, inode, size and
    modification time, so a replaced file is probed again; errors are not remembered."""
    from mraa.data.video_io import probe_video

    try:
        stat = os.stat(path)
    except OSError:
        return probe_video(path)  # its own clear error for a missing or unreadable path
    return _probe_cached(str(Path(path).resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _probe_cached(path: str, inode: int, size: int, mtime_ns: int) -> Any:
    from mraa.data.video_io import probe_video

    return probe_video(path)


def driving_info(driving: DrivingInput | DecodedDriving, fps: float | None) -> tuple[float, int | None, bool]:
    """(frame rate, frame count or None, has audio) of a driving input; ``fps`` overrides the rate."""
    from mraa.data.video_io import DEFAULT_FPS

    if isinstance(driving, DecodedDriving):
        rate, total, audio = driving.fps, len(driving.frames), driving.audio_from is not None
    elif isinstance(driving, (str, os.PathLike)):
        info = probe_driving(driving)  # count_frames would probe it again: only the gif count is missing
        rate, total, audio = info.fps, info.num_frames or gif_frames(Path(driving)), info.has_audio
    else:
        rate, total, audio = DEFAULT_FPS, count_frames(driving), False
    rate = rate if fps is None else float(fps)
    if not rate > 0:
        raise MRAAError(f"the frame rate must be positive, got {rate}")
    return rate, total, audio


def _is_encoded(source: object) -> bool:
    """Whether ``source`` is an encoded source (``mraa.animate.SourceState``), reused as it is."""
    return hasattr(source, "region_params") and hasattr(source, "features")


# ----------------------------------------------------------------------------- writing
def source_panel(state: Any) -> np.ndarray:
    """The source with its region heatmaps and ellipses (uint8 H, W, 3), for the visualisation; at least
    :data:`~mraa.visualize.READABLE_HEIGHT` tall."""
    from mraa.image import to_uint8
    from mraa.visualize import heatmap_overlay, readable_factor, upscale

    params = state.region_params
    image = to_uint8(state.image.float().cpu())[0]
    factor = readable_factor(image.shape[0])
    heat = heatmap_overlay(upscale(image, factor), params["heatmap"][0].float().cpu())
    return readable_regions(heat, params["shift"][0].float().cpu(), params["affine"][0].float().cpu(), factor)


def readable_regions(image: np.ndarray, shift: Any, affine: Any, factor: int) -> np.ndarray:
    """``image`` (already enlarged ``factor`` times) with the regions drawn in lines that scale with it."""
    from mraa.visualize import draw_regions

    return draw_regions(image, shift, affine, radius=1 + factor, width=max(1, factor // 2))


@dataclass
class _CpuBatch:
    """An animated batch moved to the CPU for the writer thread."""

    prediction: Any  # (B, 3, H, W) float
    shift: Any  # (B, K, 2)
    affine: Any  # (B, K, 2, 2)
    driving: Any = None  # (B, 3, H, W) float, for the visualisation


def _to_cpu(batch: Any, keep_driving: bool) -> _CpuBatch:
    params = batch.driving_region_params
    driving = batch.driving.float().cpu() if keep_driving and batch.driving is not None else None
    return _CpuBatch(
        batch.prediction.float().cpu(), params["shift"].float().cpu(), params["affine"].float().cpu(), driving
    )


def _write_batch(writer: Any, viz_writer: Any, panel: Any, composite: Any, batch: _CpuBatch) -> None:
    """Encode one animated batch (on the writer thread)."""
    from mraa.image import to_uint8
    from mraa.visualize import make_grid, readable_factor, upscale

    images = to_uint8(batch.prediction)
    if composite is not None:
        images = np.stack([composite(image) for image in images])
    writer.write_many(images)
    if viz_writer is None:
        return
    driving = to_uint8(batch.driving)
    factor = readable_factor(driving.shape[1])  # the panels are enlarged to a readable size
    driving, shown = upscale(driving, factor), upscale(images, readable_factor(images.shape[1]))
    # numpy once per batch: draw_regions reads each region's floats, which is twice as slow from tensors
    shifts, affines = batch.shift.numpy(), batch.affine.numpy()
    for i, image in enumerate(shown):
        viz_writer.write(
            make_grid([[panel, readable_regions(driving[i], shifts[i], affines[i], factor), image]])
        )


def write_batches(
    batches: Iterable[Any],
    output: Path,
    fps: float,
    audio_from: Path | None = None,
    viz_path: Path | None = None,
    state: Any = None,
    composite: Callable[[np.ndarray], np.ndarray] | None = None,
    on_progress: ProgressCallback | None = None,
    total: int | None = None,
) -> int:
    """Encode animated batches to ``output`` (and the side-by-side ``viz_path``) on a writer thread;
    atomic: on any error neither file appears. Returns the number of frames written."""
    from mraa.data.video_io import VideoWriter

    done = 0
    with contextlib.ExitStack() as stack:
        writer = stack.enter_context(VideoWriter(output, fps, audio_from=audio_from))
        viz_writer = None
        if viz_path is not None:
            viz_writer = stack.enter_context(VideoWriter(viz_path, fps, audio_from=audio_from))
        panel = source_panel(state) if viz_writer is not None and state is not None else None
        worker = stack.enter_context(BackgroundWorker())
        if on_progress is not None:
            on_progress(0, total or 0)
        for batch in batches:
            cpu = _to_cpu(batch, viz_writer is not None)
            worker.submit(partial(_write_batch, writer, viz_writer, panel, composite, cpu))
            done += cpu.prediction.shape[0]
            if on_progress is not None:
                on_progress(done, total or 0)
    return writer.num_frames


def write_frames(
    output: Path,
    fps: float,
    batches: Iterable[Iterable[np.ndarray]],
    audio_from: str | os.PathLike | None = None,
    on_progress: ProgressCallback | None = None,
    total: int | None = None,
) -> int:
    """Write batches of uint8 frames (H, W, 3) to the video ``output``, atomically and verified; the
    number of frames written."""
    from mraa.data.video_io import VideoWriter

    with VideoWriter(output, fps, audio_from=audio_from) as writer:
        if on_progress is not None:
            on_progress(0, total or 0)
        for frames in batches:
            writer.write_many(frames)
            if on_progress is not None:
                on_progress(writer.num_frames, total or 0)
    return writer.num_frames


# ----------------------------------------------------------------------------- animate
def animate_file(
    animator: AnimatorLike,
    source: ImageInput | Any,
    driving: DrivingInput | DecodedDriving,
    output: str | os.PathLike,
    options: AnimateOptions | None = None,
    **changes: Any,
) -> AnimateResult:
    """Animate ``source`` with ``driving`` and write the video ``output`` (streaming, atomic).

    Args:
        source: an image path, array, PIL image or tensor, or an encoded ``SourceState`` (reused).
        driving: a video path or folder of frames (its frame rate and audio are kept), frames in any form
            ``Animator.animate_iter`` takes (25 fps, silent), or :class:`DecodedDriving`.
        output: ``.mp4`` (H.264), ``.webm``, ``.mov``, ``.mkv`` or ``.gif``.
        options: :class:`AnimateOptions`; ``changes`` replace its fields (``smooth="savgol:5"``).

    Returns:
        :class:`AnimateResult` (output path, frames, fps, audio, mode, visualisation path, seconds).
    """
    options = dataclasses.replace(options or AnimateOptions(), **changes)
    start = time.perf_counter()
    output = Path(output)
    viz_path = visualization_path(output, options.visualize)
    decoded = isinstance(driving, DecodedDriving)
    driving_file = driving.audio_from if decoded else driving
    outputs = {"output": output, "visualization": viz_path, "crop preview": options.crop_preview}
    check_not_inputs(outputs, [source, driving_file])
    rate, total, has_audio = driving_info(driving, options.fps)
    mode = animator.resolve_mode(options.mode or default_mode_for(animator, source))
    # subject crops, paste-back, output size, best frame, preview: mraa.framing
    framed, crop = prepare_framing(
        animator, source, driving, options.crop, options.paste_back, options.output_size,
        options.best_frame, options.crop_preview,
    )  # fmt: skip
    source = framed.source_crop if framed is not None else source
    state = source if _is_encoded(source) else animator.encode_source(source, crop=crop)
    frames_in = framed.driving_frames() if framed is not None else driving.frames if decoded else driving
    frames = prefetch(driving_tensors(frames_in, tuple(state.image.shape[2:]), crop))
    callback = options.progress if callable(options.progress) else None
    bar = bool(options.progress) and callback is None
    if framed is not None:
        batches = animate_framed(animator, framed, state, frames, mode=mode, background=options.background,
                                 progress=bar, total=total, smooth=options.smooth)  # fmt: skip
    else:
        batches = animator.animate_iter(state, frames, mode, options.background, bar, total, options.smooth)
    audio_from = Path(driving_file) if options.audio and has_audio else None
    with contextlib.closing(frames), contextlib.closing(batches):  # stops the reader thread on errors
        count = write_batches(
            batches, output, rate, audio_from, viz_path, state, options.composite, callback, total
        )
    seconds = time.perf_counter() - start
    return AnimateResult(output, count, rate, audio_from is not None, mode, viz_path, seconds)


# ----------------------------------------------------------------------------- swap
@dataclass(frozen=True)
class SwapOptions:
    """How to swap parts (``mraa swap`` and the app): ``parts`` 1-based as in the segmentation labels;
    ``labels``: label maps to use instead of segmenting the driving frames; progress as for animating."""

    parts: tuple[int, ...]
    mode: str = "standard"
    feather: float = 0.0
    threshold: float = 1e-3
    labels: Any = None  # (H, W) int64 tensor for all frames, or an iterator of them
    progress: bool | ProgressCallback = True


def swap_video(
    animator: AnimatorLike,
    source: Any,
    frames: Iterable[Any],
    output: str | os.PathLike,
    options: SwapOptions,
    fps: float,
    audio_from: str | os.PathLike | None = None,
    total: int | None = None,
) -> int:
    """Part swap of the driving ``frames`` (tensors at the model's size) with the ``source`` tensor
    (1, 3, H, W), written to ``output`` at least 256 px tall (bilinear); the number of frames written."""
    from mraa.image import to_uint8
    from mraa.segmentation import swap_parts_iter
    from mraa.visualize import readable

    output = Path(output)
    check_not_inputs({"output": output}, [audio_from] if audio_from is not None else [])
    callback = options.progress if callable(options.progress) else None
    batches = swap_parts_iter(
        animator, source, frames, list(options.parts), mode=options.mode, feather=options.feather,
        threshold=options.threshold, labels=options.labels, progress=options.progress is True, total=total,
    )  # fmt: skip
    shown = (readable(to_uint8(batch.result)) for batch in batches)  # >= 256 px tall
    with contextlib.closing(batches):
        return write_frames(output, fps, shown, audio_from, callback, total)


# ----------------------------------------------------------------------------- segment
@dataclass(frozen=True)
class SegmentOptions:
    """How to segment a video (``mraa segment``): background ``threshold``, overlay opacity ``alpha`` and
    upscaling ``scale``, ``soft_masks`` (also each part's mask), frames per batch, a progress bar."""

    threshold: float = 1e-3
    alpha: float = 0.5
    scale: int = 1
    soft_masks: bool = False
    batch_size: int = 4
    progress: bool = True


def label_image(labels: Any, num_parts: int) -> np.ndarray:
    """Label map (H, W) as uint8 (uint16 beyond 255 parts) for a grey PNG."""
    return np.asarray(labels.cpu(), dtype=np.uint8 if num_parts < 256 else np.uint16)


def display_labels(seg: Any, scale: int) -> Any:
    """Label maps (B, H*scale, W*scale) for the overlays, re-segmented from the heatmaps at that size."""
    if scale == 1:
        return seg.labels.cpu()
    h, w = seg.labels.shape[-2:]
    return seg.resize((h * scale, w * scale)).labels.cpu()


def display_overlay(frame: np.ndarray, labels: Any, num_parts: int, alpha: float) -> np.ndarray:
    """Overlay of one frame (upscaled to the size of ``labels`` (H', W') when they are larger)."""
    from mraa.image import resize
    from mraa.visualize import overlay_segmentation

    return overlay_segmentation(resize(frame, tuple(labels.shape), "bicubic"), labels, num_parts, alpha=alpha)


def segment_video(
    animator: AnimatorLike,
    frames: Iterable[Any],
    kept: list[np.ndarray],
    out: Path,
    options: SegmentOptions,
    fps: float,
    audio_from: str | os.PathLike | None = None,
    total: int | None = None,
) -> tuple[np.ndarray | None, int]:
    """Segment driving ``frames`` (tensors; ``kept`` receives their uint8 pictures as they are read) into
    ``out``: overlay.mp4, labels/ and (``soft_masks``) masks/, all or nothing. Returns (pixel count per
    label, 0 = background; frames)."""
    from mraa.data.video_io import FolderWriter, VideoWriter
    from mraa.image import mask_to_uint8
    from mraa.segmentation import iter_segment

    counts = None
    index = 0
    with contextlib.ExitStack() as stack:
        if options.progress:
            from tqdm.auto import tqdm

            bar = stack.enter_context(contextlib.closing(tqdm(total=total, unit="frame", desc="segmenting")))
        overlay = stack.enter_context(VideoWriter(out / "overlay.mp4", fps, audio_from=audio_from))
        labels = stack.enter_context(FolderWriter(out / "labels"))
        masks = stack.enter_context(FolderWriter(out / "masks")) if options.soft_masks else None
        for batch, seg in iter_segment(
            animator, frames, threshold=options.threshold, batch_size=options.batch_size
        ):
            num_parts = seg.num_parts
            batch_counts = np.bincount(seg.labels.flatten().cpu().numpy(), minlength=num_parts + 1)
            counts = batch_counts if counts is None else counts + batch_counts
            shown = display_labels(seg, options.scale)
            for i in range(batch.shape[0]):
                overlay.write(display_overlay(kept.pop(0), shown[i], num_parts, options.alpha))
                labels.write(f"{index:06d}.png", label_image(seg.labels[i], num_parts))
                if masks is not None:
                    for k in range(num_parts):
                        masks.write(f"part_{k + 1:02d}/{index:06d}.png", mask_to_uint8(seg.soft_masks[i, k]))
                index += 1
            if options.progress:
                bar.update(batch.shape[0])
    return counts, index
