"""Helpers shared by the commands that load a model and read images/videos."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # heavy imports stay out of `mraa --help`
    import numpy as np
    from torch import Tensor


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """--checkpoint / --config / --device options."""
    parser.add_argument(
        "--checkpoint",
        help="official .pth, mraa training checkpoint or safetensors export (default: the model shipped with mraa)",
    )
    parser.add_argument(
        "--config", help="YAML config in the official schema (default: the one stored with the checkpoint)"
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps (default: cpu)")


def check_output_path(path: str | os.PathLike) -> Path:
    """Fail early (before any heavy work) when an output cannot be written."""
    from mraa.data.video_io import check_output_parent
    from mraa.errors import MRAAError

    path = check_output_parent(path)
    if path.is_dir():
        raise MRAAError(f"output path is a directory: {path}")
    return path


def load_animator(args: argparse.Namespace, batch_size: int | None = None, announce: bool = True):
    from mraa.checkpoint import default_checkpoint
    from mraa.inference.animator import Animator

    checkpoint = args.checkpoint
    if checkpoint is None:
        checkpoint = default_checkpoint()
        if announce:
            print(
                f"using the model shipped with mraa ({checkpoint.parent.name}: trained on synthetic figures)"
            )
    return Animator.from_checkpoint(
        checkpoint,
        args.config,
        device=args.device,
        batch_size=batch_size,
        precision=getattr(args, "precision", "fp32"),
        compile=getattr(args, "compile", False),
        still_background=getattr(args, "still_background", None),
        backend=getattr(args, "backend", None) or "torch",
        onnx_dir=getattr(args, "onnx_dir", None),
    )


def image_tensor(frame: np.ndarray) -> Tensor:
    """uint8 (H, W, 3) -> float (1, 3, H, W) in [0, 1]."""
    from mraa.image import to_batch

    return to_batch(frame)


def load_source(path: str | os.PathLike, size: tuple[int, int], crop: bool) -> tuple[Tensor, np.ndarray]:
    """The source image at the model's size, as a tensor (1, 3, H, W) and as uint8 (H, W, 3)."""
    from mraa.data.video_io import read_image
    from mraa.image import fit_frame

    frame = fit_frame(read_image(path), size, crop)
    return image_tensor(frame), frame


def driving_frames(
    path: str | os.PathLike, size: tuple[int, int], crop: bool, keep: list | None = None
) -> Iterator[Tensor]:
    """Stream driving frames resized to the model's size as (1, 3, H, W) tensors.

    When ``keep`` is a list, the resized uint8 frames are appended to it (for visualisation).
    """
    from mraa.data.video_io import iter_video
    from mraa.image import fit_frame

    for frame in iter_video(path):
        frame = fit_frame(frame, size, crop)
        if keep is not None:
            keep.append(frame)
        yield image_tensor(frame)
