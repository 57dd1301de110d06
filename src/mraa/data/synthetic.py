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

import colorsys
import dataclasses
import json
import logging
import math
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mraa.atomic import atomic_write_text, remove_stale_temps, temp_dir
from mraa.errors import MRAAError

log = logging.getLogger(__name__)

FIGURE_TYPES = ("humanoid", "quadruped", "snake", "starfish")
BACKGROUND_TYPES = ("flat", "gradient", "noise")
SHAPE_TYPES = ("ellipse", "rounded", "polygon")
TEXTURE_TYPES = ("flat", "stripes", "dots", "gradient")
TEST_INDEX_OFFSET = 1_000_000  # test video i is video index TEST_INDEX_OFFSET + i
GENERATOR_VERSION = 1  # bump when the same (seed, index) would render differently

_MARGIN = 0.04  # the figure keeps this fraction of the frame away from every border
_TWO_PI = 2.0 * math.pi


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
        if not 0.05 <= low <= high <= 1.0 - 2 * _MARGIN:
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


# --------------------------------------------------------------------------------------------------
# figures: kinematic trees in "figure units" (torso length about 1); the final scale is fitted later


@dataclass
class _Part:
    name: str
    parent: int  # index of the parent part (parents come first), -1 for the root
    attach: tuple[float, float]  # joint position in the parent's local frame
    rest: float  # rest angle relative to the parent, radians
    amplitude: float  # the joint angle stays within rest +- amplitude
    length: float  # joint-to-tip length along the local x axis (children attach at (length, 0))
    width: float
    group: str  # parts of one group share colour, texture and shape (left / right limbs)
    depth: int  # drawing order, lowest first
    center: float | None = None  # shape centre on the local x axis; default length / 2
    pad: float = 0.3  # the shape extends pad * width beyond both ends (overlap at the joints)
    shape: str | None = None  # forced shape kind, else drawn per group
    wave: int = -1  # snake segments: position along the body wave
    shade: float = 1.0  # colour multiplier (darker limbs on the far side)


def _humanoid(rng: np.random.Generator) -> list[_Part]:
    u = rng.uniform
    torso_w = u(0.5, 0.7)
    head = u(0.4, 0.5)
    upper_arm, arm_w = u(0.5, 0.62), u(0.2, 0.27)
    lower_arm = upper_arm * u(0.85, 1.05)
    thigh, leg_w = u(0.6, 0.72), u(0.24, 0.31)
    shin = thigh * u(0.9, 1.1)
    parts = [
        # the torso's local x axis points down the body (rest angle pi / 2 in image coordinates)
        _Part("torso", -1, (0.0, 0.0), math.pi / 2, 0.0, 1.0, torso_w, "torso", 2, center=0.0, pad=0.0),
        _Part("head", 0, (-0.48, 0.0), math.pi, 0.35, head, head * u(0.75, 0.9), "head", 3, pad=0.0,
              shape="ellipse"),
    ]  # fmt: skip
    for side, tag in ((1.0, "left"), (-1.0, "right")):
        shoulder = (-0.5 + arm_w * 0.45, side * (torso_w / 2 - arm_w * 0.3))
        hip = (0.5 - leg_w * 0.3, side * torso_w * 0.26)
        arm = len(parts)
        parts += [
            _Part(f"{tag}_upper_arm", 0, shoulder, side * 0.55, 1.1, upper_arm, arm_w, "upper_arm", 4),
            _Part(f"{tag}_lower_arm", arm, (upper_arm, 0.0), side * 0.6, 0.6, lower_arm, arm_w * 0.9,
                  "lower_arm", 5),
        ]  # fmt: skip
        leg = len(parts)
        parts += [
            _Part(f"{tag}_thigh", 0, hip, side * 0.15, 0.45, thigh, leg_w, "thigh", 1),
            _Part(f"{tag}_shin", leg, (thigh, 0.0), -side * 0.35, 0.35, shin, leg_w * 0.85, "shin", 0),
        ]
    return parts


def _quadruped(rng: np.random.Generator) -> list[_Part]:
    u = rng.uniform
    body_w = u(0.38, 0.5)
    neck, neck_w = u(0.3, 0.42), u(0.2, 0.26)
    head, head_w = u(0.32, 0.42), u(0.22, 0.28)
    upper_leg, lower_leg, leg_w = u(0.34, 0.44), u(0.32, 0.42), u(0.15, 0.2)
    tail = u(0.35, 0.5)
    parts = [
        _Part("body", -1, (0.0, 0.0), 0.0, 0.0, 1.0, body_w, "body", 3, center=0.0, pad=0.0),
        _Part("neck", 0, (0.4, -body_w * 0.2), -0.9, 0.3, neck, neck_w, "neck", 4),
        _Part("head", 1, (neck, 0.0), 0.9, 0.35, head, head_w, "head", 5),
        _Part("tail", 0, (-0.48, -body_w * 0.15), math.pi + 0.5, 0.5, tail, u(0.08, 0.11), "tail", 2),
    ]
    for x, end in ((0.36, "front"), (-0.36, "back")):
        for near, shift, tag in ((False, 0.06, "far"), (True, 0.0, "near")):
            depth, shade = (6, 1.0) if near else (0, 0.7)
            upper = len(parts)
            parts += [
                _Part(f"{end}_{tag}_upper_leg", 0, (x + shift, body_w * 0.25), math.pi / 2, 0.55,
                      upper_leg, leg_w, f"{end}_upper_leg", depth + 1, shade=shade),
                _Part(f"{end}_{tag}_lower_leg", upper, (upper_leg, 0.0), 0.0, 0.5, lower_leg,
                      leg_w * 0.85, f"{end}_lower_leg", depth, shade=shade),
            ]  # fmt: skip
    return parts


def _snake(rng: np.random.Generator) -> list[_Part]:
    count = int(rng.integers(4, 7))
    segment = rng.uniform(0.45, 0.6)
    width = segment * rng.uniform(0.55, 0.7)
    mid = count // 2  # the root is a middle segment, so the body bends around its centre

    def make(k: int, parent: int, attach: tuple[float, float], rest: float) -> _Part:
        taper = 0.6 + 0.4 * k / (count - 1)  # thinner towards the tail (k = 0)
        amplitude = 0.0 if parent < 0 else 0.4
        center = 0.0 if parent < 0 else None
        return _Part(f"segment_{k}", parent, attach, rest, amplitude, segment, width * taper, f"band_{k % 2}",
                     k, center=center, wave=k)  # fmt: skip

    parts = [make(mid, -1, (0.0, 0.0), 0.0)]
    for k in range(mid + 1, count):  # towards the head
        parts.append(make(k, len(parts) - 1, (segment / 2 if k == mid + 1 else segment, 0.0), 0.0))
    parts.append(
        _Part("head", len(parts) - 1, (segment / 2 if count == mid + 1 else segment, 0.0), 0.0, 0.45,
              width * 1.3, width * 1.15, "head", count, shape="ellipse", pad=0.0, wave=count)
    )  # fmt: skip
    for k in range(mid - 1, -1, -1):  # towards the tail
        first = k == mid - 1
        parts.append(make(k, 0 if first else len(parts) - 1, (-segment / 2 if first else segment, 0.0),
                          math.pi if first else 0.0))  # fmt: skip
    return parts


def _starfish(rng: np.random.Generator) -> list[_Part]:
    arms = int(rng.integers(4, 7))
    inner, outer, width = rng.uniform(0.4, 0.55), rng.uniform(0.35, 0.5), rng.uniform(0.18, 0.26)
    body = rng.uniform(0.45, 0.6)
    parts = [_Part("body", -1, (0.0, 0.0), 0.0, 0.0, body, body, "body", 2, center=0.0, pad=0.0)]
    start = rng.uniform(0, _TWO_PI)
    for k in range(arms):
        angle = start + _TWO_PI * k / arms
        base = len(parts)
        joint = (0.3 * body * math.cos(angle), 0.3 * body * math.sin(angle))
        parts += [
            _Part(f"arm_{k}_inner", 0, joint, angle, 0.4, inner, width, "arm_inner", 1),
            _Part(f"arm_{k}_outer", base, (inner, 0.0), 0.0, 0.6, outer, width * 0.75, "arm_outer", 0),
        ]
    return parts


_BUILDERS = {"humanoid": _humanoid, "quadruped": _quadruped, "snake": _snake, "starfish": _starfish}


# --------------------------------------------------------------------------------------------------
# motion


def _smooth_signals(rng: np.random.Generator, t: np.ndarray, count: int, speed: float) -> np.ndarray:
    """(count, T) smooth random signals in [-1, 1]: weighted sums of three sinusoids."""
    freq = rng.uniform(0.012, 0.05, size=(count, 3, 1)) * speed  # cycles per frame
    phase = rng.uniform(0.0, _TWO_PI, size=(count, 3, 1))
    weight = rng.uniform(0.2, 1.0, size=(count, 3, 1))
    weight /= weight.sum(axis=1, keepdims=True)
    return (weight * np.sin(_TWO_PI * freq * t + phase)).sum(axis=1)


def _joint_angles(rng: np.random.Generator, parts: list[_Part], t: np.ndarray, speed: float) -> np.ndarray:
    """(P, T) joint angles relative to the parents, within rest +- amplitude."""
    signal = _smooth_signals(rng, t, len(parts), speed)
    waves = [i for i, part in enumerate(parts) if part.wave >= 0]
    if waves:  # a travelling body wave (snake-like undulation) mixed with the independent signals
        freq = rng.uniform(0.02, 0.045) * speed
        lag, phase = rng.uniform(0.5, 1.1), rng.uniform(0, _TWO_PI)
        for i in waves:
            wave = np.sin(_TWO_PI * freq * t + phase - lag * parts[i].wave)
            signal[i] = 0.7 * wave + 0.3 * signal[i]
    rest = np.array([p.rest for p in parts])[:, None]
    amplitude = np.array([p.amplitude for p in parts])[:, None]
    return rest + amplitude * signal


def _rotation(angle: np.ndarray) -> np.ndarray:
    """(..., 2, 2) rotation matrices."""
    c, s = np.cos(angle), np.sin(angle)
    return np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)


def _forward_kinematics(
    parts: list[_Part], angles: np.ndarray, root_linear: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Local-to-figure transforms of every part.

    Args:
        parts: the kinematic tree, parents first.
        angles: (P, T) joint angles.
        root_linear: (T, 2, 2) linear map applied to the whole figure (zoom, rotation, flip).

    Returns:
        linear (P, T, 2, 2) and origin (P, T, 2): a local point q maps to ``linear @ q + origin``.
    """
    T = angles.shape[1]
    linear = np.empty((len(parts), T, 2, 2))
    origin = np.empty((len(parts), T, 2))
    rotations = _rotation(angles)  # (P, T, 2, 2)
    for i, part in enumerate(parts):
        if part.parent < 0:
            linear[i] = root_linear @ rotations[i]
            origin[i] = root_linear @ np.asarray(part.attach)
        else:
            parent_linear = linear[part.parent]
            linear[i] = parent_linear @ rotations[i]
            origin[i] = origin[part.parent] + parent_linear @ np.asarray(part.attach)
    return linear, origin


def _shape_box(part: _Part) -> tuple[float, float, float]:
    """Centre on the local x axis and half sizes (along, across) of a part's shape."""
    center = part.length / 2 if part.center is None else part.center
    return center, part.length / 2 + part.pad * part.width, part.width / 2


def _corner_points(parts: list[_Part], linear: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """(P, T, 4, 2) corners of every part's shape box, in figure coordinates."""
    corners = []
    for part in parts:
        c, hx, hy = _shape_box(part)
        corners.append([(c - hx, -hy), (c + hx, -hy), (c + hx, hy), (c - hx, hy)])
    local = np.asarray(corners)  # (P, 4, 2)
    return np.einsum("ptij,pkj->ptki", linear, local) + origin[:, :, None, :]


@dataclass
class _Placement:
    linear: np.ndarray  # (P, T, 2, 2) local -> frame-normalised coordinates
    origin: np.ndarray  # (P, T, 2)
    scale: np.ndarray  # (T,) length of one figure unit in frame units


def _place_figure(
    rng: np.random.Generator, parts: list[_Part], figure: str, angles: np.ndarray, cfg: SynthConfig
) -> _Placement:
    """Fit zoom and translation so the figure fills ``cfg.fill`` of the frame and never leaves it."""
    T = angles.shape[1]
    t = np.arange(T, dtype=np.float64)
    motion = cfg.global_motion
    signals = _smooth_signals(rng, t, 4, cfg.motion_speed * 0.7)  # zoom, rotation, x, y
    upright = figure in ("humanoid", "quadruped")
    base_angle = rng.uniform(-0.12, 0.12) if upright else rng.uniform(0, _TWO_PI)
    flip = rng.choice([-1.0, 1.0])
    zoom = 1.0 + 0.08 * motion * signals[0]  # (T,)
    angle = base_angle + 0.12 * motion * signals[1]
    root_linear = zoom[:, None, None] * _rotation(angle) @ np.diag([flip, 1.0])  # (T, 2, 2)
    linear, origin = _forward_kinematics(parts, angles, root_linear)
    points = _corner_points(parts, linear, origin).transpose(1, 0, 2, 3).reshape(T, -1, 2)
    low, high = points.min(axis=1), points.max(axis=1)  # (T, 2) per-frame extent
    extent = (high - low).max(axis=1).mean()
    union = high.max(axis=0) - low.min(axis=0)  # (2,) extent over the whole video
    scale = min(rng.uniform(*cfg.fill) / extent, float(((1 - 2 * _MARGIN) / union).min()))
    lo = _MARGIN - scale * low.min(axis=0)  # admissible translations, (2,)
    hi = 1 - _MARGIN - scale * high.max(axis=0)
    slack = np.maximum(hi - lo, 0.0)
    center = lo + slack * rng.uniform(0.3, 0.7, size=2)
    reach = np.minimum(center - lo, lo + slack - center) * min(motion, 1.0)
    translation = center[None] + reach[None] * signals[2:].T  # (T, 2)
    return _Placement(scale * linear, scale * origin + translation[None], scale * zoom)


# --------------------------------------------------------------------------------------------------
# appearance


def _random_color(rng: np.random.Generator, saturation: tuple[float, float], value: tuple[float, float]):
    hue = rng.uniform()
    return np.array(colorsys.hsv_to_rgb(hue, rng.uniform(*saturation), rng.uniform(*value)))


def _distinct_color(rng: np.random.Generator, avoid: list[np.ndarray], min_distance: float) -> np.ndarray:
    best, best_distance = None, -1.0
    for _ in range(30):
        color = _random_color(rng, (0.35, 0.95), (0.35, 1.0))
        distance = min((float(np.linalg.norm(color - other)) for other in avoid), default=1.0)
        if distance >= min_distance:
            return color
        if distance > best_distance:
            best, best_distance = color, distance
    return best


@dataclass
class _Look:
    shape: str
    polygon: np.ndarray | None  # (V, 2) unit-box vertices of a convex polygon
    corner: float  # rounded rectangle: corner radius as a fraction of the half width
    texture: str
    color: np.ndarray  # (3,)
    second: np.ndarray  # (3,) the texture's other colour
    period: float  # texture period in figure units
    direction: float  # texture orientation, radians
    phase: np.ndarray  # (2,)


def _sample_looks(rng: np.random.Generator, parts: list[_Part], background: np.ndarray) -> dict[str, _Look]:
    looks: dict[str, _Look] = {}
    taken = [background, background]  # count the background twice to keep parts well away from it
    for part in parts:
        if part.group in looks:
            continue
        shape = part.shape or SHAPE_TYPES[int(rng.integers(len(SHAPE_TYPES)))]
        polygon = None
        if shape == "polygon":
            if rng.uniform() < 0.5:  # tapered limb, wider at the joint
                tip = rng.uniform(0.45, 0.8)
                polygon = np.array([(-1, -1), (1, -tip), (1, tip), (-1, 1)], dtype=np.float64)
            else:  # elongated hexagon
                cut = rng.uniform(0.5, 0.8)
                polygon = np.array([(-1, 0), (-cut, -1), (cut, -1), (1, 0), (cut, 1), (-cut, 1)], float)
        color = _distinct_color(rng, taken, 0.3)
        taken.append(color)
        second = np.clip(color * rng.uniform(0.45, 0.75) if rng.uniform() < 0.5 else
                         color + (1 - color) * rng.uniform(0.4, 0.7), 0, 1)  # fmt: skip
        if rng.uniform() < 0.3:
            second = _random_color(rng, (0.2, 1.0), (0.3, 1.0))
        looks[part.group] = _Look(
            shape=shape,
            polygon=polygon,
            corner=rng.uniform(0.35, 1.0),
            texture=TEXTURE_TYPES[int(rng.integers(len(TEXTURE_TYPES)))],
            color=color,
            second=second,
            period=part.width * rng.uniform(0.45, 0.8),
            direction=float(rng.choice([0.0, math.pi / 2, math.pi / 4, -math.pi / 4])),
            phase=rng.uniform(0, 1, size=2),
        )
    return looks


@dataclass
class _Background:
    kind: str
    colors: np.ndarray  # (2, 3)
    direction: np.ndarray  # (2,) gradient direction
    waves: np.ndarray  # (K, 2) noise wave vectors, cycles per frame
    phases: np.ndarray  # (K,)
    tints: np.ndarray  # (K, 3) colour of each noise wave
    drift: np.ndarray | None  # (T, 2) camera offset in frame units, None when static


def _sample_background(rng: np.random.Generator, cfg: SynthConfig, t: np.ndarray) -> _Background:
    kind = cfg.backgrounds[int(rng.integers(len(cfg.backgrounds)))]
    colors = np.stack([_random_color(rng, (0.05, 0.6), (0.2, 0.95)) for _ in range(2)])
    angle = rng.uniform(0, _TWO_PI)
    count = 6
    frequency = rng.uniform(0.6, 2.5, size=count)
    orientation = rng.uniform(0, _TWO_PI, size=count)
    waves = np.stack([np.cos(orientation), np.sin(orientation)], -1) * frequency[:, None]
    tints = rng.normal(0, 1, size=(count, 3)) * 0.025 + rng.normal(0, 1, size=(count, 1)) * 0.04
    drift = None
    moving = rng.uniform() < cfg.camera_motion
    signals = _smooth_signals(rng, t, 2, cfg.motion_speed * 0.6)
    amount = rng.uniform(0.03, 0.08)
    if moving:
        drift = amount * signals.T  # (T, 2)
    return _Background(
        kind, colors, np.array([math.cos(angle), math.sin(angle)]), waves, rng.uniform(0, _TWO_PI, count),
        tints, drift,
    )  # fmt: skip


def _render_background(bg: _Background, size: int, num_frames: int) -> np.ndarray:
    """(T, H, W, 3) float32 background in [0, 1]."""
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size
    offset = np.zeros((1, 2), np.float32) if bg.drift is None else bg.drift.astype(np.float32)
    x = coords[None, None, :] + offset[:, 0, None, None]  # (T', 1, W)
    y = coords[None, :, None] + offset[:, 1, None, None]  # (T', H, 1)
    if bg.kind == "flat":
        image = np.broadcast_to(bg.colors[0].astype(np.float32), (1, size, size, 3))
    elif bg.kind == "gradient":
        ramp = np.clip((x - 0.5) * bg.direction[0] + (y - 0.5) * bg.direction[1] + 0.5, 0, 1)[..., None]
        image = bg.colors[0] + (bg.colors[1] - bg.colors[0]) * ramp
    else:
        image = np.broadcast_to(bg.colors[0].astype(np.float32), (1, size, size, 3)).copy()
        for wave, phase, tint in zip(bg.waves, bg.phases, bg.tints):
            value = np.sin(_TWO_PI * (wave[0] * x + wave[1] * y) + phase)  # (T', H, W)
            image = image + value[..., None] * tint.astype(np.float32)
    image = np.clip(image, 0, 1).astype(np.float32)
    return np.broadcast_to(image, (num_frames, size, size, 3)).copy()


# --------------------------------------------------------------------------------------------------
# rendering


def _signed_distance(look: _Look, u: np.ndarray, v: np.ndarray, hx: float, hy: float) -> np.ndarray:
    """Signed distance (negative inside, figure units) to a shape centred at 0 with half sizes hx, hy."""
    if look.shape == "ellipse":
        k0 = np.sqrt((u / hx) ** 2 + (v / hy) ** 2)
        k1 = np.sqrt((u / hx**2) ** 2 + (v / hy**2) ** 2) + 1e-9
        return k0 * (k0 - 1.0) / k1
    if look.shape == "rounded":
        radius = look.corner * min(hx, hy)
        qx, qy = np.abs(u) - (hx - radius), np.abs(v) - (hy - radius)
        outside = np.sqrt(np.maximum(qx, 0) ** 2 + np.maximum(qy, 0) ** 2)
        return outside + np.minimum(np.maximum(qx, qy), 0) - radius
    vertices = look.polygon * np.array([hx, hy])  # convex polygon: max of the edge half-plane distances
    distance = None
    for a, b in zip(vertices, np.roll(vertices, -1, axis=0)):
        normal = np.array([b[1] - a[1], a[0] - b[0]])
        normal /= np.linalg.norm(normal)
        if normal @ a < 0:  # point it away from the centre
            normal = -normal
        d = normal[0] * (u - a[0]) + normal[1] * (v - a[1])
        distance = d if distance is None else np.maximum(distance, d)
    return distance


def _texture(look: _Look, u: np.ndarray, v: np.ndarray, hx: float, units_per_pixel: float) -> np.ndarray:
    """Mix weight of the second colour, in [0, 1], as a function of the part's local coordinates."""
    period = max(look.period, 3.0 * units_per_pixel)  # no stripes or dots finer than 3 pixels
    if look.texture == "stripes":
        w = u * math.cos(look.direction) + v * math.sin(look.direction)
        return 0.5 + 0.5 * np.sin(_TWO_PI * (w / period + look.phase[0]))
    if look.texture == "dots":
        period = max(period, 4.0 * units_per_pixel)
        du = (u / period + look.phase[0]) % 1.0 - 0.5
        dv = (v / period + look.phase[1]) % 1.0 - 0.5
        distance = np.sqrt(du**2 + dv**2) * period
        return np.clip((0.3 * period - distance) / units_per_pixel + 0.5, 0, 1)
    if look.texture == "gradient":
        return np.clip(0.5 + 0.5 * u / hx, 0, 1)
    return np.zeros_like(u)


def _draw_part(
    frames: np.ndarray,
    labels: np.ndarray | None,
    label: int,
    part: _Part,
    look: _Look,
    linear: np.ndarray,
    origin: np.ndarray,
    scale: np.ndarray,
) -> None:
    """Composite one part over ``frames`` (T, H, W, 3) in place; ``linear`` (T, 2, 2), ``origin`` (T, 2)."""
    size = frames.shape[1]
    c, hx, hy = _shape_box(part)
    corners = np.array([(c - hx, -hy), (c + hx, -hy), (c + hx, hy), (c - hx, hy)])
    pixels = (np.einsum("tij,kj->tki", linear, corners) + origin[:, None]) * size  # (T, 4, 2)
    x0, y0 = np.maximum(np.floor(pixels.min(axis=(0, 1))).astype(int) - 2, 0)
    x1, y1 = np.minimum(np.ceil(pixels.max(axis=(0, 1))).astype(int) + 2, size)
    if x1 <= x0 or y1 <= y0:
        return
    inverse = np.linalg.inv(linear).astype(np.float32)  # (T, 2, 2) frame -> local
    xs = (np.arange(x0, x1, dtype=np.float32) + 0.5) / size
    ys = (np.arange(y0, y1, dtype=np.float32) + 0.5) / size
    dx = xs[None, None, :] - origin[:, 0, None, None].astype(np.float32)  # (T, 1, w)
    dy = ys[None, :, None] - origin[:, 1, None, None].astype(np.float32)  # (T, h, 1)
    m = inverse[:, :, :, None, None]
    u = m[:, 0, 0] * dx + m[:, 0, 1] * dy - c  # (T, h, w) local coordinates around the shape centre
    v = m[:, 1, 0] * dx + m[:, 1, 1] * dy
    pixels_per_unit = (scale * size).astype(np.float32)[:, None, None]  # (T, 1, 1)
    distance = _signed_distance(look, u, v, hx, hy) * pixels_per_unit  # (T, h, w), in pixels
    alpha = np.clip(0.5 - distance, 0, 1)
    mix = _texture(look, u, v, hx, 1.0 / float(pixels_per_unit.mean()))[..., None]
    color = look.color.astype(np.float32) + (look.second - look.color).astype(np.float32) * mix
    rim = np.clip(1.0 + distance / 1.5, 0, 1)[..., None]  # darken the outer 1.5 pixels: visible edges
    color = color * (part.shade * (1.0 - 0.3 * rim))
    region = frames[:, y0:y1, x0:x1]
    region += (color - region) * alpha[..., None]
    if labels is not None:
        labels[:, y0:y1, x0:x1][alpha >= 0.5] = label


@dataclass
class _Plan:
    figure: str
    parts: list[_Part]
    placement: _Placement
    looks: dict[str, _Look]
    background: _Background


def _plan_video(seed: int, index: int, cfg: SynthConfig) -> _Plan:
    if index < 0 or seed < 0:
        raise MRAAError(f"seed and index must be >= 0, got seed={seed} index={index}")
    rng = np.random.default_rng([int(seed), int(index)])
    figure = cfg.figure_types[index % len(cfg.figure_types)]
    parts = _BUILDERS[figure](rng)
    t = np.arange(cfg.num_frames, dtype=np.float64)
    angles = _joint_angles(rng, parts, t, cfg.motion_speed)
    placement = _place_figure(rng, parts, figure, angles, cfg)
    background = _sample_background(rng, cfg, t)
    looks = _sample_looks(rng, parts, background.colors.mean(axis=0))
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
    frames = _render_background(plan.background, size, T)  # (T, H, W, 3) float32
    labels = np.zeros((T, size, size), np.uint8) if return_parts else None
    placement = plan.placement
    for i in sorted(range(len(plan.parts)), key=lambda k: (plan.parts[k].depth, k)):
        part = plan.parts[i]
        look = plan.looks[part.group]
        _draw_part(
            frames, labels, i + 1, part, look, placement.linear[i], placement.origin[i], placement.scale
        )
    video = (np.clip(frames, 0, 1) * 255 + 0.5).astype(np.uint8)
    if not return_parts:
        return video
    centers = np.stack([_shape_box(p)[0] for p in plan.parts])  # (P,) local x of each shape centre
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
