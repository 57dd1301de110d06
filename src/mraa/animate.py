"""The animation API under its first name: re-exports :mod:`mraa.inference.animator` (the ``Animator``),
:mod:`mraa.inference.engines` (the compute), :mod:`mraa.inference.background`, :mod:`mraa.inference.motion` and
:mod:`mraa.inference.batching`, so ``from mraa.animate import Animator`` keeps working. Code inside mraa imports
from those modules (this one sits above them)."""

from __future__ import annotations

from mraa.checkpoint import DEFAULT_MODEL_DIR, default_checkpoint
from mraa.devices import resolve_device
from mraa.inference.animator import (
    DEFAULT_BATCH_SIZES,
    STILL_BACKGROUNDS,
    AnimatedBatch,
    Animator,
    progress_bar,
)
from mraa.inference.background import BackgroundMotion, background_params, background_schedule
from mraa.inference.batching import as_batch, iter_batches
from mraa.inference.engines import (
    AUTOCAST_DTYPES,
    Engine,
    OnnxEngine,
    SourceState,
    TorchEngine,
    fuse_models,
    make_engine,
    prepack_models,
)
from mraa.inference.motion import MODES, animation_region_params, movement_scale
from mraa.modules.fusion import fuse_conv_bn

__all__ = [
    "AUTOCAST_DTYPES",
    "DEFAULT_BATCH_SIZES",
    "DEFAULT_MODEL_DIR",
    "MODES",
    "STILL_BACKGROUNDS",
    "AnimatedBatch",
    "Animator",
    "BackgroundMotion",
    "Engine",
    "OnnxEngine",
    "SourceState",
    "TorchEngine",
    "animation_region_params",
    "as_batch",
    "background_params",
    "background_schedule",
    "default_checkpoint",
    "fuse_conv_bn",
    "fuse_models",
    "iter_batches",
    "make_engine",
    "movement_scale",
    "prepack_models",
    "progress_bar",
    "resolve_device",
]
