"""Kept for existing imports: the file pipeline lives in :mod:`mraa.inference.pipeline`."""

from mraa.inference.pipeline import (
    AnimateOptions,
    AnimateResult,
    DecodedDriving,
    animate_file,
    check_not_inputs,
    driving_info,
    visualization_path,
    write_batches,
)
from mraa.inference.threads import BackgroundWorker, prefetch

__all__ = [
    "AnimateOptions",
    "AnimateResult",
    "BackgroundWorker",
    "DecodedDriving",
    "animate_file",
    "check_not_inputs",
    "driving_info",
    "prefetch",
    "visualization_path",
    "write_batches",
]
