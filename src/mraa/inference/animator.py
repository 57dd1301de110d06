"""Animation: re-pose a source image with the motion of a driving video.

``Animator`` encodes the source once (through its engine, :mod:`mraa.inference.engines`) and then animates
driving frames in batches, streaming, so memory does not grow with the video's length. It owns the animation
behaviour: modes, background motion, temporal smoothing, the default (best) mode; the engine owns the compute.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from mraa.checkpoint import load_model
from mraa.config import AnimateParams, MRAAConfig
from mraa.devices import resolve_device
from mraa.errors import MRAAError
from mraa.geometry import RegionParams
from mraa.inference.background import BackgroundMotion, background_params, background_schedule
from mraa.inference.batching import iter_batches
from mraa.inference.engines import Engine, SourceState, make_engine
from mraa.inference.motion import MODES, animation_region_params, movement_scale
from mraa.inputs import DrivingInput, ImageInput, count_frames, driving_tensors, source_tensor
from mraa.models import MRAAModels
from mraa.smoothing import RegionSmoother, SmoothingSpec, make_smoother

if TYPE_CHECKING:
    from mraa.pipeline import AnimateResult

STILL_BACKGROUNDS = ("identity", "source")
# frames per batch when none is given: on CPU batch 1 was faster per frame than 2-8 (docs/benchmarks.md)
DEFAULT_BATCH_SIZES = {"cpu": 1, "cuda": 8, "mps": 4}


@dataclass
class AnimatedBatch:
    """One batch of results: ``prediction`` (B, C, H, W), the driving frames at the model's size and their
    (smoothed) regions (for visualisation), and the regions rendered."""

    prediction: Tensor
    driving_region_params: RegionParams
    region_params: RegionParams
    frame_indices: Tensor
    driving: Tensor | None = None  # (B, C, H, W) on the device


class Animator:
    """Animate a source image with driving frames.

    Args:
        engine: an :class:`~mraa.inference.engines.Engine`, or the MRAA networks, from which one is made
            with ``engine_options`` (:func:`~mraa.inference.engines.make_engine`: ``device``, ``fuse``,
            ``precision``, ``compile``, ``prepack``, ``backend`` ``torch`` / ``onnxruntime``, ``onnx_dir``;
            the ONNX graphs are exported at :attr:`image_size`).
        animate_params: the config's ``animate_params`` (default mode, still background).
        batch_size: driving frames processed together; None: the device's default
            (:data:`DEFAULT_BATCH_SIZES`: 1 on CPU, where batching was measured slower per frame).
        has_trained_avd: whether the AVD network holds trained weights (default mode ``avd``).
        config: the model's config (its frame size).
        still_background: ``identity`` (official) or ``source`` (the background predictor's output for the
            source and itself; other background motions are applied on top of it). Default: the config's
            ``animate_params.still_background``.
    """

    def __init__(
        self,
        engine: Engine | MRAAModels,
        animate_params: AnimateParams | None = None,
        *,
        batch_size: int | None = None,
        has_trained_avd: bool = True,
        config: MRAAConfig | None = None,
        still_background: str | None = None,
        **engine_options: Any,
    ) -> None:
        self.config = config
        self.animate_params = animate_params or AnimateParams()
        self.still_background = still_background or self.animate_params.still_background
        if self.still_background not in STILL_BACKGROUNDS:
            raise MRAAError(
                f"still background must be {' or '.join(STILL_BACKGROUNDS)}, got {self.still_background!r}"
            )
        if isinstance(engine, MRAAModels):
            engine = make_engine(engine, size=self.image_size, **engine_options)
        elif engine_options:
            raise TypeError(f"engine options {sorted(engine_options)} need networks, not an engine")
        self.engine = engine
        if batch_size is None:
            batch_size = DEFAULT_BATCH_SIZES.get(self.device.type, 1)
        if batch_size < 1:
            raise MRAAError(f"batch size must be at least 1, got {batch_size}")
        self.batch_size = batch_size
        self.has_trained_avd = has_trained_avd
        self.shipped_model = False  # set by from_checkpoint for the synthetic-figure model shipped with mraa

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: str | os.PathLike | None = None,
        config: str | os.PathLike | MRAAConfig | None = None,
        device: str | torch.device = "cpu",
        **kwargs,
    ) -> Animator:
        """Build from an official ``.pth``, a training checkpoint, or a safetensors export (read once).

        ``config`` may be omitted when the checkpoint carries one (training runs, exports). With neither,
        the model shipped with mraa is used.
        """
        device = resolve_device(device)
        loaded = load_model(checkpoint, config)
        cfg, trained_avd = loaded.config, loaded.has_trained_avd
        animator = cls(
            loaded.models,
            cfg.animate_params,
            device=device,
            has_trained_avd=trained_avd,
            config=cfg,
            **kwargs,
        )
        animator.shipped_model = loaded.shipped
        return animator

    # --------------------------------------------------------------- what the engine holds
    @property
    def device(self) -> torch.device:
        return self.engine.device

    @property
    def models(self) -> MRAAModels:
        """The networks as the engine runs them (fused, packed, or onnxruntime drop-ins)."""
        return self.engine.models

    @property
    def prepacked(self) -> bool:
        return self.engine.prepacked

    @property
    def model_size(self) -> tuple[int, int] | None:
        """(H, W) of the config's frame shape, or None without a config or when the config leaves
        ``frame_shape`` null (all official YAMLs: ted384's models run at 384): source tensors then keep
        their size, as in the official code, and other source forms are read at :attr:`image_size`."""
        if self.config is None or not self.config.dataset_params.frame_shape:
            return None
        return tuple(self.config.dataset_params.frame_shape[:2])

    @property
    def image_size(self) -> tuple[int, int]:
        """(H, W) the model works at (the config's frame shape)."""
        if self.config is None:
            return (256, 256)
        return tuple(self.config.dataset_params.resolved_frame_shape[:2])

    def default_mode(self) -> str:
        """``avd`` when the AVD network is trained (as the official demo), else ``relative``."""
        return "avd" if self.has_trained_avd else "relative"

    def resolve_mode(self, mode: str | None) -> str:
        """``mode``, or :meth:`default_mode` when None; an unknown mode raises MRAAError."""
        mode = mode or self.default_mode()
        if mode not in MODES:
            raise MRAAError(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
        return mode

    # --------------------------------------------------------------- core
    @torch.no_grad()
    def encode_source(self, source: ImageInput, crop: bool = False) -> SourceState:
        """Run everything that depends only on the source once. ``source``: a (1, C, H, W) / (C, H, W)
        tensor in [0, 1], a uint8 (H, W, 3) array, a PIL image or a path, resized to the model's size."""
        size = self.model_size
        if size is None and not isinstance(source, Tensor):  # a file or array: the config's default size
            size = self.image_size if self.config is not None else None
        state = self.engine.encode_source(source_tensor(source, size, crop))
        if self.still_background == "source" and self.engine.moves_background:
            state.bg_reference = self.engine.background(state.image, state.image)
        return state

    @torch.no_grad()
    def region_params(self, frames: Tensor) -> RegionParams:
        """Region params of a batch of frames (B, C, H, W)."""
        return self.engine.regions(frames)

    @torch.no_grad()
    def render(
        self, state: SourceState, region_params: RegionParams, bg_params: Tensor | None = None
    ) -> dict[str, Tensor]:
        """Generator output for target region params (B frames) using the cached source."""
        return self.engine.render(state, region_params, bg_params)

    @torch.no_grad()
    def driving_region_stream(
        self,
        driving: DrivingInput,
        size: tuple[int, int],
        smooth: str | SmoothingSpec | None = None,
        crop: bool = False,
    ) -> Iterator[tuple[Tensor, RegionParams]]:
        """Driving batches (B, C, H, W) at ``size`` on the device with their region params, smoothed.

        A look-ahead smoother (savgol) holds frames back until their params are ready (a delay buffer),
        so batches may come in other sizes than ``batch_size``; all frames come out, in order.
        """
        frames = iter_batches(driving_tensors(driving, size, crop), self.batch_size)
        batches = (batch.to(self.device) for batch in frames)
        yield from smoothed_regions(batches, self.region_params, make_smoother(smooth))

    @torch.no_grad()
    def animate_iter(
        self,
        source: ImageInput | SourceState,
        driving: DrivingInput,
        mode: str | None = None,
        background: str | BackgroundMotion | None = None,
        progress: bool = False,
        total: int | None = None,
        smooth: str | SmoothingSpec | None = None,
        crop: bool = False,
    ) -> Iterator[AnimatedBatch]:
        """Yield animated batches, consuming the driving frames lazily.

        Args:
            source: an image (tensor, uint8 array, PIL image or path; see :mod:`mraa.inputs`) or a
                :class:`SourceState` from :meth:`encode_source` (to reuse it across driving videos).
            driving: a tensor (T, C, H, W), an array (T, H, W, 3), a video path or folder of frames, or an
                iterable of frames / batches in any image form. Other sizes are resized (with ``crop``,
                centre-cropped to the model's aspect ratio first).
            mode, background: see :meth:`animate`.
            progress, total: show a progress bar (with ``total`` frames and an ETA when known).
            smooth: temporal smoothing of the driving regions (see :mod:`mraa.smoothing`).
        """
        mode = self.resolve_mode(mode)
        if not isinstance(background, BackgroundMotion):
            background = background_schedule(background)
        state = source if isinstance(source, SourceState) else self.encode_source(source, crop=crop)
        stream = self.driving_region_stream(driving, tuple(state.image.shape[2:]), smooth, crop)
        initial: RegionParams | None = None
        scale, count = 1.0, 0
        with progress_bar(progress, total, f"animating ({mode})") as bar:
            for frames, driving_params in stream:
                if initial is None:
                    initial = {k: v[:1] for k, v in driving_params.items()}
                    scale = movement_scale(state.region_params["shift"][0], initial["shift"][0])
                params = animation_region_params(
                    state.region_params, driving_params, initial, mode, self.engine.avd, scale=scale
                )
                indices = torch.arange(count, count + frames.shape[0])
                bg_params = background_params(self.engine.background, state, background, frames, indices)
                out = self.render(state, params, bg_params)
                count += frames.shape[0]
                bar.update(frames.shape[0])
                yield AnimatedBatch(out["prediction"], driving_params, params, indices, frames)
        if count == 0:
            raise MRAAError("the driving video has no frames")

    def animate(
        self,
        source: ImageInput | SourceState,
        driving: DrivingInput,
        mode: str | None = None,
        background: str | BackgroundMotion | None = None,
        progress: bool = False,
        smooth: str | SmoothingSpec | None = None,
        crop: bool = False,
    ) -> Tensor:
        """Animate and return all frames (T, C, H, W) in [0, 1] on the CPU. See :meth:`animate_iter` for
        streaming and :meth:`animate_file` for files.

        Args:
            source: (1, C, H, W) / (C, H, W) tensor in [0, 1], uint8 (H, W, 3) array, PIL image or path;
                resized to the model's size when needed.
            driving: (T, C, H, W) tensor in [0, 1], (T, H, W, 3) array, video path, or an iterable of frames.
            mode: ``standard``, ``relative`` or ``avd`` (default: :meth:`default_mode`).
            background: see :func:`~mraa.inference.background.background_schedule` (default: still).
            smooth: ``none``, ``ema:ALPHA``, ``one-euro[:MIN_CUTOFF,BETA]`` or ``savgol:WINDOW``.
            crop: centre-crop inputs to the model's aspect ratio before resizing.
        """
        total = count_frames(driving) if progress else None
        batches = self.animate_iter(
            source, driving, mode, background, progress=progress, total=total, smooth=smooth, crop=crop
        )
        return torch.cat([batch.prediction.cpu() for batch in batches])

    def animate_file(
        self,
        source: ImageInput | SourceState,
        driving: DrivingInput,
        output: str | os.PathLike,
        **kwargs,
    ) -> AnimateResult:
        """Animate files into a video file; see :func:`mraa.pipeline.animate_file` for the options."""
        from mraa.pipeline import animate_file

        return animate_file(self, source, driving, output, **kwargs)


def smoothed_regions(
    batches: Iterable[Tensor], regions: Callable[[Tensor], RegionParams], smoother: RegionSmoother | None
) -> Iterator[tuple[Tensor, RegionParams]]:
    """Batches (B, C, H, W) with their ``regions``, smoothed; a look-ahead smoother holds frames back until
    their params are ready (a delay buffer), so batches may come out in other sizes; all come out, in order."""
    held: list[Tensor] = []  # frames waiting for their smoothed params
    for batch in batches:
        params = regions(batch)
        if smoother is None:
            yield batch, params
            continue
        held.extend(batch.unbind(0))
        ready = smoother.push(params)
        if ready is not None:
            n = ready["shift"].shape[0]
            yield torch.stack(held[:n]), ready
            del held[:n]
    rest = smoother.flush() if smoother is not None else None
    if rest is not None:
        yield torch.stack(held), rest


@contextlib.contextmanager
def progress_bar(enabled: bool, total: int | None, desc: str) -> Iterator[Any]:
    """A tqdm frame bar (total and ETA when ``total`` is known), or a no-op when disabled."""
    if not enabled:
        yield _NoBar()
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=total, unit="frame", desc=desc)
    try:
        yield bar
    finally:
        bar.close()


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass
