"""Procedurally generated videos of articulated 2D figures: offline training and test data.

Each video shows one figure, a kinematic tree of rigid parts (torso, limbs, sub-limbs) joined at joints.
Joint angles follow smooth, bounded random trajectories (sums of a few sinusoids), and the whole figure
translates, zooms and rotates a little in front of a flat, gradient or smooth-noise background that may
drift (camera motion). Every part is a filled ellipse, rounded rectangle or convex polygon with its own
colour and texture (stripes, dots or gradient) attached to the part, so the motion of each region is
(close to) affine: the kind of data an MRAA region predictor can learn from in a short CPU run.

Conventions:
    * Geometry lives in frame-normalised units: the frame is the unit square, x to the right, y down.
    * Shapes are rendered from signed distance functions with analytic anti-aliasing (the coverage of a
      pixel is ``clip(0.5 - distance_in_pixels, 0, 1)``), so the look does not depend on the resolution
      and no supersampling is needed.
    * Every random choice for video ``index`` comes from ``np.random.default_rng([seed, index])``, so any
      video can be regenerated alone. Test videos use indices from ``TEST_INDEX_OFFSET`` on, which keeps
      them disjoint from the training videos.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mraa.atomic import atomic_write_text, remove_stale_temps, temp_dir
from mraa.data.synth_drawing import (
    SHAPE_TYPES,
    TEXTURE_TYPES,
    Background,
    Look,
    draw_part,
    render_background,
    sample_background,
    sample_looks,
)
from mraa.data.synth_figures import BUILDERS, MARGIN, Part, Placement, joint_angles, place_figure, shape_box
from mraa.errors import MRAAError

log = logging.getLogger(__name__)

__all__ = [
    "SHAPE_TYPES",
    "TEXTURE_TYPES",
    "FIGURE_TYPES",
    "BACKGROUND_TYPES",
    "TEST_INDEX_OFFSET",
    "GENERATOR_VERSION",
    "SynthConfig",
    "SynthParts",
    "figure_type",
    "render_video",
    "iter_videos",
    "preview_grid",
    "video_name",
    "write_dataset",
]

FIGURE_TYPES = ("humanoid", "quadruped", "snake", "starfish")
BACKGROUND_TYPES = ("flat", "gradient", "noise")
TEST_INDEX_OFFSET = 1_000_000  # test video i is video index TEST_INDEX_OFFSET + i
GENERATOR_VERSION = 1  # bump when the same (seed, index) would render differently


@dataclass(frozen=True)
class SynthConfig:
    """What the synthetic videos look like.

    Attributes:
        size: frame height and width in pixels (at least 16).
        num_frames: frames per video (at least 2).
        figure_types: figure kinds to draw from ``FIGURE_TYPES``; video ``index`` gets
            ``figure_types[index % len(figure_types)]``, so the kinds are balanced.
        camera_motion: probability that a video's background drifts smoothly (0 = never, 1 = always).
        backgrounds: background kinds from ``BACKGROUND_TYPES``, drawn uniformly.
        fill: range of the figure's larger extent (height for a humanoid) as a fraction of the frame.
        motion_speed: multiplies the frequencies of the joint-angle trajectories.
        global_motion: multiplies the translation, zoom and rotation of the whole figure (0 = none).
        fps: frame rate written into mp4 files.
    """

    size: int = 64
    num_frames: int = 32
    figure_types: tuple[str, ...] = ("humanoid", "quadruped", "snake")
    camera_motion: float = 0.5
    backgrounds: tuple[str, ...] = BACKGROUND_TYPES
    fill: tuple[float, float] = (0.5, 0.8)
    motion_speed: float = 1.0
    global_motion: float = 1.0
    fps: float = 25.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "figure_types", tuple(self.figure_types))
        object.__setattr__(self, "backgrounds", tuple(self.backgrounds))
        object.__setattr__(self, "fill", tuple(float(v) for v in self.fill))
        if int(self.size) != self.size or self.size < 16:
            raise MRAAError(f"synthetic video size must be an integer >= 16, got {self.size}")
        if int(self.num_frames) != self.num_frames or self.num_frames < 2:
            raise MRAAError(f"synthetic videos need at least 2 frames, got {self.num_frames}")
        if not self.figure_types:
            raise MRAAError("no figure types given")
        for name in self.figure_types:
            if name not in FIGURE_TYPES:
                raise MRAAError(f"unknown figure type {name!r} (choose from {', '.join(FIGURE_TYPES)})")
        if not self.backgrounds:
            raise MRAAError("no background types given")
        for name in self.backgrounds:
            if name not in BACKGROUND_TYPES:
                raise MRAAError(
                    f"unknown background type {name!r} (choose from {', '.join(BACKGROUND_TYPES)})"
                )
        if not 0.0 <= self.camera_motion <= 1.0:
            raise MRAAError(f"camera motion probability must be in [0, 1], got {self.camera_motion}")
        low, high = self.fill if len(self.fill) == 2 else (0.0, 0.0)
        if not 0.05 <= low <= high <= 1.0 - 2 * MARGIN:
            raise MRAAError(f"fill must be two fractions 0.05 <= low <= high <= 0.92, got {self.fill}")
        if self.motion_speed < 0 or self.global_motion < 0 or self.fps <= 0:
            raise MRAAError("motion_speed and global_motion must be >= 0 and fps > 0")


@dataclass
class SynthParts:
    """Ground truth of one rendered video.

    Attributes:
        labels: (T, H, W) uint8 label map: 0 = background, ``k`` = part ``names[k - 1]`` (the topmost
            part covering at least half of the pixel).
        centers: (T, P, 2) float32 part centres in pixels, (x, y), pixel (0, 0) spanning [0, 1]^2.
        names: the P part names, in label order.
        figure: the figure type.
    """

    labels: np.ndarray
    centers: np.ndarray
    names: tuple[str, ...]
    figure: str


@dataclass
class _Plan:
    figure: str
    parts: list[Part]
    placement: Placement
    looks: dict[str, Look]
    background: Background


def _plan_video(seed: int, index: int, cfg: SynthConfig) -> _Plan:
    if index < 0 or seed < 0:
        raise MRAAError(f"seed and index must be >= 0, got seed={seed} index={index}")
    rng = np.random.default_rng([int(seed), int(index)])
    figure = cfg.figure_types[index % len(cfg.figure_types)]
    parts = BUILDERS[figure](rng)
    t = np.arange(cfg.num_frames, dtype=np.float64)
    angles = joint_angles(rng, parts, t, cfg.motion_speed)
    placement = place_figure(
        rng,
        parts,
        figure,
        angles,
        fill=cfg.fill,
        motion_speed=cfg.motion_speed,
        global_motion=cfg.global_motion,
    )
    background = sample_background(
        rng, t, kinds=cfg.backgrounds, camera_motion=cfg.camera_motion, motion_speed=cfg.motion_speed
    )
    looks = sample_looks(rng, parts, background.colors.mean(axis=0))
    return _Plan(figure, parts, placement, looks, background)


def figure_type(index: int, cfg: SynthConfig | None = None) -> str:
    """The figure type of video ``index`` (known without rendering)."""
    cfg = cfg or SynthConfig()
    return cfg.figure_types[index % len(cfg.figure_types)]


def render_video(
    seed: int, index: int, cfg: SynthConfig | None = None, return_parts: bool = False
) -> np.ndarray | tuple[np.ndarray, SynthParts]:
    """Render synthetic video ``index`` of the dataset defined by ``seed``.

    Args:
        seed: dataset seed (>= 0).
        index: video index (>= 0); the same (seed, index, cfg) always gives the same video.
        cfg: appearance settings; ``SynthConfig()`` when None.
        return_parts: also return the part label maps and centres.

    Returns:
        frames (T, H, W, 3) uint8, or ``(frames, SynthParts)`` when ``return_parts``.
    """
    cfg = cfg or SynthConfig()
    plan = _plan_video(seed, index, cfg)
    T, size = cfg.num_frames, cfg.size
    frames = render_background(plan.background, size, T)  # (T, H, W, 3) float32
    labels = np.zeros((T, size, size), np.uint8) if return_parts else None
    placement = plan.placement
    for i in sorted(range(len(plan.parts)), key=lambda k: (plan.parts[k].depth, k)):
        part = plan.parts[i]
        look = plan.looks[part.group]
        draw_part(
            frames, labels, i + 1, part, look, placement.linear[i], placement.origin[i], placement.scale
        )
    video = (np.clip(frames, 0, 1) * 255 + 0.5).astype(np.uint8)
    if not return_parts:
        return video
    centers = np.stack([shape_box(p)[0] for p in plan.parts])  # (P,) local x of each shape centre
    centers = placement.linear[:, :, :, 0] * centers[:, None, None] + placement.origin  # (P, T, 2)
    parts = SynthParts(
        labels=labels,
        centers=(centers.transpose(1, 0, 2) * size).astype(np.float32),
        names=tuple(p.name for p in plan.parts),
        figure=plan.figure,
    )
    return video, parts


def iter_videos(
    num_videos: int, seed: int = 0, cfg: SynthConfig | None = None, start: int = 0
) -> Iterator[np.ndarray]:
    """Yield videos ``start .. start + num_videos - 1`` of dataset ``seed`` as (T, H, W, 3) uint8 arrays."""
    for index in range(start, start + num_videos):
        yield render_video(seed, index, cfg)


def preview_grid(
    seed: int = 0, cfg: SynthConfig | None = None, num_videos: int = 3, num_columns: int = 8, start: int = 0
) -> np.ndarray:
    """One row per video (``num_columns`` evenly spaced frames): a (rows*H, columns*W, 3) uint8 image."""
    rows = []
    for video in iter_videos(num_videos, seed, cfg, start=start):
        columns = np.linspace(0, len(video) - 1, num_columns).round().astype(int)
        rows.append(np.concatenate(list(video[columns]), axis=1))
    return np.concatenate(rows, axis=0)


# --------------------------------------------------------------------------------------------------
# datasets on disk


def video_name(index: int, cfg: SynthConfig | None = None, position: int | None = None) -> str:
    """File name (without suffix) of a video: ``<position>_<figure>``, position defaulting to the index."""
    return f"{index if position is None else position:06d}_{figure_type(index, cfg)}"


def _check_destination(root: Path, overwrite: bool) -> None:
    if root.exists() and not root.is_dir():
        raise MRAAError(f"dataset path exists and is not a folder: {root}")
    if root.is_dir() and any(root.iterdir()):
        if not overwrite:
            raise MRAAError(
                f"dataset folder is not empty: {root} (overwrite it to replace its train, test and metadata.json)"
            )
        for name in ("train", "test"):  # only remove what this generator writes
            shutil.rmtree(root / name, ignore_errors=True)
        (root / "metadata.json").unlink(missing_ok=True)
        remove_stale_temps(root, "synth")  # the marked staging folder of an interrupted run
        leftovers = [p.name for p in root.iterdir()]
        if leftovers:
            log.warning("%s: keeping unrelated files: %s", root, ", ".join(sorted(leftovers)[:5]))


def _check_dataset_values(num_train: int, num_test: int, seed: int, fmt: str) -> None:
    if fmt not in ("mp4", "png"):
        raise MRAAError(f"unknown dataset format {fmt!r} (use mp4 or png)")
    if num_train < 0 or num_test < 0 or num_train + num_test == 0:
        raise MRAAError(f"need a positive number of videos, got num_train={num_train} num_test={num_test}")
    if num_train > TEST_INDEX_OFFSET:
        raise MRAAError(f"at most {TEST_INDEX_OFFSET} training videos")
    if seed < 0:
        raise MRAAError(f"seed must be >= 0, got {seed}")


def _render_videos(
    staging: Path, jobs: list[tuple[str, int, int]], seed: int, cfg: SynthConfig, fmt: str, progress: bool
) -> list[dict[str, Any]]:
    """Render ``(split, position, index)`` jobs into ``staging/<split>/``; their metadata entries."""
    from tqdm.auto import tqdm

    from mraa.data.video_io import write_frame_folder, write_video

    for split in ("train", "test"):
        (staging / split).mkdir()
    videos = []
    for split, position, index in tqdm(jobs, desc="synth", unit="video", disable=not progress):
        name = video_name(index, cfg, position)
        frames = render_video(seed, index, cfg)
        if fmt == "mp4":
            write_video(staging / split / f"{name}.mp4", frames, fps=cfg.fps)
        else:
            write_frame_folder(staging / split / name, frames)
        videos.append({"split": split, "name": name, "index": index, "figure": figure_type(index, cfg)})
    return videos


def write_dataset(
    root: str | os.PathLike,
    num_train: int = 200,
    num_test: int = 20,
    seed: int = 0,
    cfg: SynthConfig | None = None,
    fmt: str = "mp4",
    progress: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Render a dataset to ``root/train`` and ``root/test`` plus ``root/metadata.json``.

    Train video i is video index i; test video i is index ``TEST_INDEX_OFFSET + i``, so the splits never
    share a video. The splits are written into a hidden temporary folder and moved into place at the end.

    Args:
        root: dataset folder; must be missing or empty unless ``overwrite``.
        num_train: number of training videos.
        num_test: number of test videos.
        seed: dataset seed.
        cfg: appearance settings; ``SynthConfig()`` when None.
        fmt: ``"mp4"`` (``<name>.mp4`` files) or ``"png"`` (``<name>/000000.png ...`` frame folders).
        progress: show a tqdm progress bar.
        overwrite: replace the ``train``, ``test`` and ``metadata.json`` of an existing dataset.

    Returns:
        The metadata written to ``metadata.json``.
    """
    cfg = cfg or SynthConfig()
    _check_dataset_values(num_train, num_test, seed, fmt)
    root = Path(root)
    if not root.parent.exists():
        raise MRAAError(f"parent folder does not exist: {root.parent}")
    _check_destination(root, overwrite)
    root.mkdir(exist_ok=True)
    jobs = [("train", i, i) for i in range(num_train)]
    jobs += [("test", i, TEST_INDEX_OFFSET + i) for i in range(num_test)]
    staging = temp_dir(root, "synth")  # .mraa-tmp-synth-XXXXXXXX, marked as mraa's
    try:
        videos = _render_videos(staging, jobs, seed, cfg, fmt, progress)
        for split in ("train", "test"):
            os.replace(staging / split, root / split)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    metadata = {
        "generator": "mraa.data.synthetic",
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "format": fmt,
        "num_train": num_train,
        "num_test": num_test,
        "test_index_offset": TEST_INDEX_OFFSET,
        "config": dataclasses.asdict(cfg),
        "videos": videos,
    }
    atomic_write_text(root / "metadata.json", json.dumps(metadata, indent=1))
    log.debug("wrote %d train and %d test videos to %s", num_train, num_test, root)
    return metadata
