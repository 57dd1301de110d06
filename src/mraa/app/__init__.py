"""Local web app (``mraa app``): animate, segment and swap parts in the browser.

The page is built with Gradio, an optional extra (``pip install -e .[app]``); importing this package does not
import Gradio, and :mod:`mraa.app.service` (the checks and the animation behind the page) works without it.

Example::

    from mraa.app import create_service, launch_app
    service = create_service(checkpoint="model.safetensors")
    launch_app(service, port=7860)          # serves http://127.0.0.1:7860 until Ctrl+C
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path

from mraa.app.service import AnimationResult, AnimationService, Limits, Samples, find_samples
from mraa.errors import MRAAError

log = logging.getLogger(__name__)

__all__ = [
    "AnimationResult",
    "AnimationService",
    "Limits",
    "Samples",
    "create_service",
    "default_samples_dir",
    "find_samples",
    "has_segmentation",
    "launch_app",
    "require_gradio",
]

EXTRA_HINT = "the web app needs the optional 'app' extra: pip install -e '.[app]' (installs gradio)"


def require_gradio() -> None:
    """Raise a clear :class:`MRAAError` naming the extra when Gradio is not installed."""
    if importlib.util.find_spec("gradio") is None:
        raise MRAAError(EXTRA_HINT)


def default_samples_dir() -> Path:
    """Where the shipped sample source image and driving video live (next to the default model)."""
    from mraa.animate import DEFAULT_MODEL_DIR

    return DEFAULT_MODEL_DIR


def create_service(
    checkpoint: str | os.PathLike | None = None,
    config: str | os.PathLike | None = None,
    device: str = "cpu",
    batch_size: int | None = None,
    limits: Limits | None = None,
    samples_dir: str | os.PathLike | None = None,
    work_dir: str | os.PathLike | None = None,
) -> AnimationService:
    """Load a model (the shipped one when ``checkpoint`` is None) and wrap it for the app.

    Args:
        batch_size: driving frames per batch (None: the device's default, as ``mraa animate``: 1 on CPU).
        samples_dir: folder with the sample image and video the page offers (default: the shipped samples).
        work_dir: results go to its ``.mraa-app`` subfolder (default: a new temporary folder).
    """
    from mraa.animate import Animator, default_checkpoint

    path = Path(checkpoint) if checkpoint is not None else default_checkpoint()
    animator = Animator.from_checkpoint(path, config, device=device, batch_size=batch_size)
    samples = find_samples(samples_dir if samples_dir is not None else default_samples_dir())
    name = path.parent.name if path.name == "model.safetensors" else path.name
    return AnimationService(
        animator, work_dir, limits, samples, model_name=name, shipped_model=checkpoint is None
    )


def launch_app(
    service: AnimationService,
    host: str = "127.0.0.1",
    port: int = 7860,
    block: bool = True,
):
    """Build the page for ``service`` and serve it. Returns ``(blocks, url)``; with ``block=False`` the
    server runs in the background until ``blocks.close()``."""
    require_gradio()
    from mraa.app.ui import build_ui, launch

    blocks = build_ui(service, segmentation=has_segmentation())
    url = launch(blocks, service, host=host, port=port, block=block)
    return blocks, url


def has_segmentation() -> bool:
    """Whether this build has :mod:`mraa.segmentation` (without it the page says the tabs are missing)."""
    return importlib.util.find_spec("mraa.segmentation") is not None
