"""Figures of the toy experiment: test error against training-set size (needs matplotlib, the ``toy``
extra) and a grid of sample images (does not)."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from mraa.atomic import atomic_path
from mraa.errors import MRAAError
from mraa.toy.networks import NETWORKS
from mraa.toy.runner import RunResult, summarize

log = logging.getLogger(__name__)

LABELS = {"naive": "Naive", "regression": "Regression-based", "pca": "PCA-based"}


def plot_error_vs_size(
    results: Iterable[RunResult], path: str | os.PathLike, title: str | None = None
) -> Path:
    """Save a PNG of test L1 error (degrees) against training-set size, log x axis.

    One line per network (mean over seeds) with 95 % t-interval error bars (Student t over seeds) and
    the individual seeds as dots.

    Raises:
        MRAAError: if matplotlib is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise MRAAError("plotting needs matplotlib: pip install 'mraa[toy]'") from exc
    results = list(results)
    if not results:
        raise MRAAError("no toy results to plot")
    stats = summarize(results)
    networks = [n for n in NETWORKS if any(r.network == n for r in results)]
    fig, ax = plt.subplots(figsize=(6.0, 4.0), dpi=120)
    for index, network in enumerate(networks):
        color = f"C{index}"
        sizes = sorted(size for name, size in stats if name == network)
        means = [stats[(network, s)][0] for s in sizes]
        halves = [stats[(network, s)][3] for s in sizes]
        nudge = 2.0 ** (0.08 * (index - (len(networks) - 1) / 2))  # side by side on the log axis
        label = LABELS.get(network, network)
        xs = [size * nudge for size in sizes]
        ax.errorbar(xs, means, yerr=halves, fmt="-o", color=color, label=label, markersize=4, capsize=3)
        seeds = [r for r in results if r.network == network]
        ax.scatter(
            [r.size * nudge for r in seeds], [r.test_l1_deg for r in seeds], color=color, s=6, alpha=0.5
        )
    all_sizes = sorted({r.size for r in results})
    ax.set_xscale("log", base=2)
    ax.set_xticks(all_sizes)
    ax.set_xticklabels([str(s) for s in all_sizes])
    ax.set_ylim(bottom=0)
    ax.set_xlabel("training-set size (images)")
    ax.set_ylabel("test L1 angle error (degrees)")
    ax.set_title(title or "Rotated rectangles: test error (mean, 95 % CI over seeds)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return path


def sample_grid(images: Tensor, angles: Tensor, columns: int = 8, scale: int = 4) -> np.ndarray:
    """Tile images (N, 3, H, W) in [0, 1] into one uint8 (rows*H*scale, columns*W*scale, 3) array.

    Each tile is upscaled ``scale`` times (nearest) and gets a thin white line along its labelled long
    axis through the image centre, so the angle convention can be checked by eye.
    """
    count, _, h, w = images.shape
    rows = -(-count // columns)
    tiles = images.clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    tiles = tiles.repeat(scale, axis=1).repeat(scale, axis=2)  # (N, H*s, W*s, 3)
    size_h, size_w = h * scale, w * scale
    for tile, angle in zip(tiles, angles.tolist()):
        direction = np.array([math.cos(math.radians(angle)), math.sin(math.radians(angle))])
        for t in np.linspace(-0.2, 0.2, 2 * min(size_h, size_w)) * min(size_h, size_w):
            x, y = np.array([size_w / 2, size_h / 2]) + t * direction  # y grows downwards
            tile[min(int(y), size_h - 1), min(int(x), size_w - 1)] = 255
    grid = np.zeros((rows * size_h, columns * size_w, 3), dtype=np.uint8)
    for index, tile in enumerate(tiles):
        row, col = divmod(index, columns)
        grid[row * size_h : (row + 1) * size_h, col * size_w : (col + 1) * size_w] = tile
    return grid


def write_sample_grid(path: str | os.PathLike, image_size: int, count: int = 16, seed: int = 0) -> Path:
    """Write the first ``count`` training images of ``seed`` as a PNG grid (no matplotlib needed)."""
    from mraa.data.video_io import write_image
    from mraa.toy.dataset import make_rectangles

    images, angles = make_rectangles(count, seed, image_size)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_image(path, sample_grid(images, angles, columns=min(count, 8)))
