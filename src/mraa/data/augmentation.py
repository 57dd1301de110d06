"""Clip-consistent data augmentation driven by ``dataset_params.augmentation_params``.

A clip is a list of HxWx3 float32 frames in [0, 1] (the source and driving frames of one training item).
Every random choice (resize ratio, crop offset, flips, colour factors) is drawn once per clip and applied
to all its frames, so the frames stay a plausible pair of moments of the same video. The steps run in a
fixed order: random resize, random crop (with edge padding when the frame is smaller than the crop),
horizontal and time flips, then colour jitter (brightness, contrast, saturation and hue in a random order).

Randomness comes from a ``numpy.random.Generator`` passed to ``__call__``; without one, the transform uses
:func:`worker_rng`, which gives every DataLoader worker (and every epoch of non-persistent workers) its own
stream.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import get_worker_info

from mraa.config import CropParams, FlipParams, JitterParams, ResizeParams, from_dict
from mraa.errors import MRAAError

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601 weights, as in PIL's "L" mode
_RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


def worker_rng(seed: int, epoch: int | None = None) -> np.random.Generator:
    """A generator for the calling process, from ``seed`` (and ``epoch`` when given).

    Inside a DataLoader worker the torch worker seed (``base_seed + worker_id``, redrawn every epoch for
    non-persistent workers) is mixed in, so workers never repeat each other's random choices.
    """
    keys = [seed] if epoch is None else [seed, epoch]
    info = get_worker_info()
    if info is not None:
        keys.append(info.seed)
    return np.random.default_rng(keys)


class ProcessLocalRng:
    """Lazily (re)creates a :func:`worker_rng` when used from a new process or worker, or after ``set_epoch``."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.epoch: int | None = None
        self._key: tuple | None = None
        self._rng: np.random.Generator | None = None

    def set_epoch(self, epoch: int) -> None:
        """Restart the stream from ``(seed, epoch)``, so an epoch's randomness does not depend on earlier ones."""
        self.epoch = int(epoch)

    def get(self) -> np.random.Generator:
        info = get_worker_info()
        key = (os.getpid(), None if info is None else info.seed, self.epoch)
        if self._rng is None or key != self._key:
            self._rng = worker_rng(self.seed, self.epoch)
            self._key = key
        return self._rng

    def __getstate__(self) -> dict[str, Any]:  # a pickled copy (spawned worker) starts a fresh stream
        return {"seed": self.seed, "epoch": self.epoch, "_key": None, "_rng": None}


def _as_params(value: Any, cls: type, name: str) -> Any:
    if value is None or isinstance(value, cls):
        return value
    if isinstance(value, dict):
        return from_dict(cls, value, strict=True, prefix=name)
    raise MRAAError(f"{name} must be a mapping or {cls.__name__}, got {type(value).__name__}")


def resize_clip(clip: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinearly resize (antialiased when shrinking) a (T, H, W, 3) float32 clip to ``size`` = (h, w)."""
    if clip.shape[1:3] == tuple(size):
        return clip
    tensor = torch.from_numpy(np.ascontiguousarray(clip)).permute(0, 3, 1, 2)  # (T, 3, H, W)
    tensor = torch.nn.functional.interpolate(
        tensor, size=tuple(size), mode="bilinear", align_corners=False, antialias=True
    )
    return tensor.permute(0, 2, 3, 1).clamp_(0.0, 1.0).contiguous().numpy()


def hue_rotation_matrix(turns: float) -> np.ndarray:
    """3x3 matrix ``M`` that rotates the hue of RGB colours by ``turns`` of the colour wheel (``rgb @ M``).

    The rotation acts on the chroma plane (I, Q) of the YIQ colour space and keeps the luma Y, so it is one
    linear map: cheap, smooth in ``turns``, and the identity at 0 (results may leave [0, 1]; clip them).
    """
    angle = 2.0 * np.pi * turns
    cos, sin = np.cos(angle), np.sin(angle)
    rotation = np.array([[1.0, 0.0, 0.0], [0.0, cos, -sin], [0.0, sin, cos]])
    # column-vector form: yiq = _RGB_TO_YIQ @ rgb; transpose for row-vector pixels
    return (np.linalg.inv(_RGB_TO_YIQ) @ rotation @ _RGB_TO_YIQ).T.astype(np.float32)


class AllAugmentationTransform:
    """Random resize, crop, flips and colour jitter applied identically to every frame of a clip.

    Args:
        flip_param: ``horizontal_flip`` and ``time_flip`` (each applied with probability 0.5).
        jitter_param: ``brightness``, ``contrast``, ``saturation`` (factors drawn from ``[1 - v, 1 + v]``)
            and ``hue`` (a rotation of the hue wheel (in YIQ) drawn from ``[-v, v]`` turns, ``v <= 0.5``).
        crop_param: ``size`` (h, w) of a random crop; smaller frames are edge-padded first.
        resize_param: ``ratio`` (low, high): frames are scaled by a factor drawn from that range.
        seed: seed of the generator used when ``__call__`` gets none (see :func:`worker_rng`).

    Each ``*_param`` may be the config dataclass, a dict with the same keys, or None (step disabled).
    """

    def __init__(
        self,
        flip_param: FlipParams | dict | None = None,
        jitter_param: JitterParams | dict | None = None,
        crop_param: CropParams | dict | None = None,
        resize_param: ResizeParams | dict | None = None,
        seed: int = 0,
    ) -> None:
        self.flip_param = _as_params(flip_param, FlipParams, "flip_param")
        self.jitter_param = _as_params(jitter_param, JitterParams, "jitter_param")
        self.crop_param = _as_params(crop_param, CropParams, "crop_param")
        self.resize_param = _as_params(resize_param, ResizeParams, "resize_param")
        self._validate()
        self._rng = ProcessLocalRng(seed)

    @classmethod
    def from_params(cls, params: Any, seed: int = 0) -> AllAugmentationTransform:
        """Build from an ``AugmentationParams`` dataclass, a dict of its fields, or None (no augmentation)."""
        if params is None:
            return cls(seed=seed)
        if isinstance(params, dict):
            unknown = set(params) - {"flip_param", "jitter_param", "crop_param", "resize_param"}
            if unknown:
                raise MRAAError(f"unknown augmentation_params keys: {sorted(unknown)}")
            return cls(**params, seed=seed)
        return cls(
            flip_param=params.flip_param,
            jitter_param=params.jitter_param,
            crop_param=params.crop_param,
            resize_param=params.resize_param,
            seed=seed,
        )

    def _validate(self) -> None:
        if self.jitter_param is not None:
            for key in ("brightness", "contrast", "saturation", "hue"):
                if getattr(self.jitter_param, key) < 0:
                    raise MRAAError(f"jitter_param.{key} must be >= 0")
            if self.jitter_param.hue > 0.5:
                raise MRAAError(f"jitter_param.hue must be <= 0.5, got {self.jitter_param.hue}")
        if self.crop_param is not None and min(self.crop_param.size) < 1:
            raise MRAAError(f"crop_param.size must be positive, got {self.crop_param.size}")
        if self.resize_param is not None:
            low, high = self.resize_param.ratio
            if not 0 < low <= high:
                raise MRAAError(f"resize_param.ratio must satisfy 0 < low <= high, got {(low, high)}")

    @property
    def is_identity(self) -> bool:
        """True when no step is enabled (the transform returns its input unchanged)."""
        jitter = self.jitter_param
        return (
            (self.flip_param is None or not (self.flip_param.horizontal_flip or self.flip_param.time_flip))
            and (
                jitter is None or not any((jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue))
            )
            and self.crop_param is None
            and self.resize_param is None
        )

    def __call__(
        self, frames: Sequence[np.ndarray], rng: np.random.Generator | None = None
    ) -> list[np.ndarray]:
        """Augment one clip.

        Args:
            frames: HxWx3 float32 frames in [0, 1] (uint8 frames are scaled to [0, 1] first).
            rng: source of randomness; the transform's own per-process generator when None.

        Returns:
            The augmented frames (a new list, possibly reversed in time), float32 in [0, 1].
        """
        if len(frames) == 0:
            return []
        rng = self._rng.get() if rng is None else rng
        clip = np.stack([np.asarray(frame) for frame in frames])  # (T, H, W, 3)
        clip = clip.astype(np.float32) / 255.0 if clip.dtype == np.uint8 else clip.astype(np.float32)
        if clip.ndim != 4 or clip.shape[-1] != 3:
            raise MRAAError(f"expected HxWx3 frames, got a clip of shape {clip.shape}")
        if self.resize_param is not None:
            clip = self._random_resize(clip, rng)
        if self.crop_param is not None:
            clip = self._random_crop(clip, rng)
        if self.flip_param is not None:
            if self.flip_param.horizontal_flip and rng.random() < 0.5:
                clip = clip[:, :, ::-1]
            if self.flip_param.time_flip and rng.random() < 0.5:
                clip = clip[::-1]
        if self.jitter_param is not None:
            clip = self._color_jitter(clip, rng)
        return [np.ascontiguousarray(frame) for frame in clip]

    def _random_resize(self, clip: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        ratio = rng.uniform(*self.resize_param.ratio)
        height, width = clip.shape[1:3]
        size = (max(1, round(height * ratio)), max(1, round(width * ratio)))
        return resize_clip(clip, size)

    def _random_crop(self, clip: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        crop_h, crop_w = self.crop_param.size
        height, width = clip.shape[1:3]
        pad_h, pad_w = max(0, crop_h - height), max(0, crop_w - width)
        if pad_h or pad_w:  # edge padding suits the flat backgrounds of most datasets
            pads = ((0, 0), (pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0))
            clip = np.pad(clip, pads, mode="edge")
            height, width = clip.shape[1:3]
        top = int(rng.integers(0, height - crop_h + 1))
        left = int(rng.integers(0, width - crop_w + 1))
        return clip[:, top : top + crop_h, left : left + crop_w]

    def _color_jitter(self, clip: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        jitter = self.jitter_param
        steps = []
        for key in ("brightness", "contrast", "saturation"):
            amount = getattr(jitter, key)
            if amount > 0:
                steps.append((key, rng.uniform(max(0.0, 1.0 - amount), 1.0 + amount)))
        if jitter.hue > 0:
            steps.append(("hue", rng.uniform(-jitter.hue, jitter.hue)))
        for index in rng.permutation(len(steps)):
            key, factor = steps[index]
            clip = _apply_color_step(clip, key, float(factor))
        return clip


def _apply_color_step(clip: np.ndarray, key: str, factor: float) -> np.ndarray:
    """One colour adjustment of a (T, H, W, 3) clip; each frame blends with its own gray reference."""
    if key == "brightness":
        out = clip * factor
    elif key == "contrast":
        gray_mean = (clip @ _LUMA).mean(axis=(1, 2))[:, None, None, None]  # (T, 1, 1, 1)
        out = clip * factor + gray_mean * (1.0 - factor)
    elif key == "saturation":
        gray = (clip @ _LUMA)[..., None]  # (T, H, W, 1)
        out = clip * factor + gray * (1.0 - factor)
    else:
        out = clip @ hue_rotation_matrix(factor)
    return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)
