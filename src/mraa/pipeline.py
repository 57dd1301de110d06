"""One call from files to an animated video: what ``mraa animate`` does for each source/driving pair.

:func:`animate_file` is a short sequence of steps: read the source (or take an encoded
:class:`~mraa.animate.SourceState`) -> a stream of driving frames at the model's size, decoded and resized
ahead on a reader thread -> :meth:`Animator.animate_iter <mraa.animate.Animator.animate_iter>` -> the
video writers, fed on a writer thread. Queues between the threads are bounded, an error on either thread is
raised in the caller, and outputs are atomic (nothing is left behind on failure).
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from mraa.errors import MRAAError
from mraa.framing import animate_framed, default_mode_for, prepare_framing
from mraa.inputs import DrivingInput, ImageInput, count_frames, driving_tensors, gif_frames

if TYPE_CHECKING:
    from mraa.animate import AnimatedBatch, Animator, BackgroundMotion, SourceState
    from mraa.smoothing import SmoothingSpec

T = TypeVar("T")
PREFETCH_FRAMES = 16  # decoded driving frames kept ready ahead of the model
PENDING_BATCHES = 4  # animated batches waiting for the encoder


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


# ----------------------------------------------------------------------------- threads
class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


_DONE = object()


def prefetch(items: Iterable[T], depth: int = PREFETCH_FRAMES) -> Iterator[T]:
    """Iterate ``items`` on a background thread, at most ``depth`` items ahead; its errors are raised here.

    Closing the returned generator early stops the thread (and closes ``items`` if it is a generator).
    """
    pending: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                pending.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        iterator = iter(items)
        try:
            for item in iterator:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as error:  # handed to the consumer, which re-raises it
            put(_Failure(error))
        finally:
            getattr(iterator, "close", lambda: None)()

    thread = threading.Thread(target=run, name="mraa-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = pending.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join(timeout=10)


class BackgroundWorker:
    """Runs submitted calls in order on one thread, with a bounded queue.

    The first error of a call is raised by the next :meth:`submit` or on leaving the ``with`` block; after
    an error (or when the block exits with one) the remaining calls are skipped.
    """

    def __init__(self, depth: int = PENDING_BATCHES, name: str = "mraa-writer") -> None:
        self._pending: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._cancelled = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (task := self._pending.get()) is not None:
            if self._error is None and not self._cancelled:
                try:
                    task()
                except BaseException as error:  # re-raised on the caller's thread
                    self._error = error

    def submit(self, task: Callable[[], Any]) -> None:
        if self._error is not None:
            raise self._error
        self._pending.put(task)

    def __enter__(self) -> BackgroundWorker:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._cancelled = exc_type is not None
        self._pending.put(None)
        self._thread.join()
        if exc_type is None and self._error is not None:
            raise self._error


# ----------------------------------------------------------------------------- steps
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


def driving_info(driving: DrivingInput, fps: float | None) -> tuple[float, int | None, bool]:
    """(frame rate, frame count or None, has audio) of a driving input; ``fps`` overrides the rate."""
    from mraa.data.video_io import DEFAULT_FPS, probe_video

    if isinstance(driving, (str, os.PathLike)):
        info = probe_video(driving)  # count_frames would probe it again: only the gif count is missing
        rate, total, audio = info.fps, info.num_frames or gif_frames(Path(driving)), info.has_audio
    else:
        rate, total, audio = DEFAULT_FPS, count_frames(driving), False
    rate = rate if fps is None else float(fps)
    if not rate > 0:
        raise MRAAError(f"the frame rate must be positive, got {rate}")
    return rate, total, audio


def source_panel(state: SourceState) -> np.ndarray:
    """The source with its region heatmaps and ellipses (uint8 H, W, 3), for the visualisation; at least
    :data:`~mraa.visualize.READABLE_HEIGHT` tall."""
    from mraa.visualize import heatmap_overlay, readable_factor, tensor_to_uint8, upscale

    params = state.region_params
    image = tensor_to_uint8(state.image.float().cpu())[0]
    factor = readable_factor(image.shape[0])
    heat = heatmap_overlay(upscale(image, factor), params["heatmap"][0].float().cpu())
    return readable_regions(heat, params["shift"][0].float().cpu(), params["affine"][0].float().cpu(), factor)


def readable_regions(image: np.ndarray, shift: Any, affine: Any, factor: int) -> np.ndarray:
    """``image`` (already enlarged ``factor`` times) with the regions drawn in lines that scale with it."""
    from mraa.visualize import draw_regions

    return draw_regions(image, shift, affine, radius=1 + factor, width=max(1, factor // 2))


def _write_batch(writer: Any, viz_writer: Any | None, panel: np.ndarray | None, batch: AnimatedBatch) -> None:
    """Encode one animated batch (on the writer thread)."""
    from mraa.visualize import make_grid, readable_factor, tensor_to_uint8, upscale

    images = tensor_to_uint8(batch.prediction)
    writer.write_many(images)
    if viz_writer is None:
        return
    driving = tensor_to_uint8(batch.driving)
    factor = readable_factor(driving.shape[1])  # the panels are enlarged to a readable size
    driving, shown = upscale(driving, factor), upscale(images, readable_factor(images.shape[1]))
    # numpy once per batch: draw_regions reads each region's floats, which is twice as slow from tensors
    shifts = batch.driving_region_params["shift"].numpy()
    affines = batch.driving_region_params["affine"].numpy()
    for i, image in enumerate(shown):
        viz_writer.write(
            make_grid([[panel, readable_regions(driving[i], shifts[i], affines[i], factor), image]])
        )


def _to_cpu(batch: AnimatedBatch, keep_driving: bool) -> AnimatedBatch:
    from mraa.animate import AnimatedBatch

    params = {k: batch.driving_region_params[k].float().cpu() for k in ("shift", "affine")}
    driving = batch.driving.float().cpu() if keep_driving and batch.driving is not None else None
    return AnimatedBatch(batch.prediction.float().cpu(), params, {}, batch.frame_indices, driving)


def write_batches(
    batches: Iterable[AnimatedBatch],
    output: Path,
    fps: float,
    audio_from: Path | None = None,
    viz_path: Path | None = None,
    state: SourceState | None = None,
) -> int:
    """Encode animated batches to ``output`` (and the side-by-side ``viz_path``) on a writer thread;
    atomic: on any error neither file appears. Returns the number of frames written."""
    from mraa.data.video_io import VideoWriter

    with contextlib.ExitStack() as stack:
        writer = stack.enter_context(VideoWriter(output, fps, audio_from=audio_from))
        viz_writer = None
        if viz_path is not None:
            viz_writer = stack.enter_context(VideoWriter(viz_path, fps, audio_from=audio_from))
        panel = source_panel(state) if viz_writer is not None and state is not None else None
        worker = stack.enter_context(BackgroundWorker())
        for batch in batches:
            worker.submit(
                partial(_write_batch, writer, viz_writer, panel, _to_cpu(batch, viz_writer is not None))
            )
    return writer.num_frames


# over 60 lines only because of its keyword list and their documentation: the body is about 20 lines
def animate_file(
    animator: Animator,
    source: ImageInput | SourceState,
    driving: DrivingInput,
    output: str | os.PathLike,
    *,
    mode: str | None = None,
    background: str | BackgroundMotion | None = None,
    crop: bool | str = False,
    smooth: str | SmoothingSpec | None = None,
    fps: float | None = None,
    visualize: bool | str | os.PathLike | None = None,
    progress: bool = True,
    audio: bool = True,
    paste_back: bool | str | None = None,
    output_size: str | tuple[int, int] | None = None,
    best_frame: bool = False,
    crop_preview: str | os.PathLike | None = None,
) -> AnimateResult:
    """Animate ``source`` with ``driving`` and write the video ``output`` (streaming, atomic).

    Args:
        source: an image path, array, PIL image or tensor, or an encoded :class:`SourceState` (reused).
        driving: a video path or folder of frames (its frame rate and audio are kept), or frames in any
            form :meth:`Animator.animate_iter <mraa.animate.Animator.animate_iter>` takes (25 fps, silent).
        output: ``.mp4`` (H.264), ``.webm``, ``.mov``, ``.mkv`` or ``.gif``.
        mode, background, smooth: as for ``animate_iter``.
        crop (auto, face, upper-body, full-body, center/True, none/False), paste_back (box, regions, True),
            output_size ("WxH"), best_frame, crop_preview (a path): see :mod:`mraa.framing` and docs/framing.md.
        fps: output frame rate (default: the driving video's). visualize: also write a side-by-side video
            (True: next to the output with a ``_visualization`` suffix, or a path).
        progress: a frame progress bar with the total and an ETA when the frame count is known.
        audio: copy the driving video's audio track.

    Returns:
        :class:`AnimateResult` (output path, frames, fps, audio, mode, visualisation path, seconds).
    """
    from mraa.animate import SourceState

    start = time.perf_counter()
    output = Path(output)
    viz_path = visualization_path(output, visualize)
    outputs = {"output": output, "visualization": viz_path, "crop preview": crop_preview}
    check_not_inputs(outputs, [source, driving])
    rate, total, has_audio = driving_info(driving, fps)
    mode = animator.resolve_mode(mode or default_mode_for(animator, source))
    # subject crops, paste-back, output size, best frame, preview: mraa.framing
    framed, crop = prepare_framing(
        animator, source, driving, crop, paste_back, output_size, best_frame, crop_preview
    )
    source = framed.source_crop if framed is not None else source
    state = source if isinstance(source, SourceState) else animator.encode_source(source, crop=crop)
    frames_in = framed.driving_frames() if framed is not None else driving
    frames = prefetch(driving_tensors(frames_in, tuple(state.image.shape[2:]), crop))
    if framed is not None:
        batches = animate_framed(animator, framed, state, frames, mode=mode, background=background,
                                 progress=progress, total=total, smooth=smooth)  # fmt: skip
    else:
        batches = animator.animate_iter(state, frames, mode, background, progress, total, smooth)
    audio_from = Path(driving) if audio and has_audio else None
    with contextlib.closing(frames), contextlib.closing(batches):  # stops the reader thread on errors
        count = write_batches(batches, output, rate, audio_from, viz_path, state)
    seconds = time.perf_counter() - start
    return AnimateResult(output, count, rate, audio_from is not None, mode, viz_path, seconds)
