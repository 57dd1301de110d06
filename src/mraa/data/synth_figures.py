"""Synthetic figures (see :mod:`mraa.data.synthetic`): kinematic trees of parts, their joint-angle motion
and their placement in the frame. Frame-normalised units: the frame is the unit square, x right, y down."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MARGIN = 0.04  # the figure keeps this fraction of the frame away from every border
TWO_PI = 2.0 * math.pi


# --------------------------------------------------------------------------------------------------
# figures: kinematic trees in "figure units" (torso length about 1); the final scale is fitted later


@dataclass
class Part:
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


def _humanoid(rng: np.random.Generator) -> list[Part]:
    u = rng.uniform
    torso_w = u(0.5, 0.7)
    head = u(0.4, 0.5)
    upper_arm, arm_w = u(0.5, 0.62), u(0.2, 0.27)
    lower_arm = upper_arm * u(0.85, 1.05)
    thigh, leg_w = u(0.6, 0.72), u(0.24, 0.31)
    shin = thigh * u(0.9, 1.1)
    parts = [
        # the torso's local x axis points down the body (rest angle pi / 2 in image coordinates)
        Part("torso", -1, (0.0, 0.0), math.pi / 2, 0.0, 1.0, torso_w, "torso", 2, center=0.0, pad=0.0),
        Part("head", 0, (-0.48, 0.0), math.pi, 0.35, head, head * u(0.75, 0.9), "head", 3, pad=0.0,
              shape="ellipse"),
    ]  # fmt: skip
    for side, tag in ((1.0, "left"), (-1.0, "right")):
        shoulder = (-0.5 + arm_w * 0.45, side * (torso_w / 2 - arm_w * 0.3))
        hip = (0.5 - leg_w * 0.3, side * torso_w * 0.26)
        arm = len(parts)
        parts += [
            Part(f"{tag}_upper_arm", 0, shoulder, side * 0.55, 1.1, upper_arm, arm_w, "upper_arm", 4),
            Part(f"{tag}_lower_arm", arm, (upper_arm, 0.0), side * 0.6, 0.6, lower_arm, arm_w * 0.9,
                  "lower_arm", 5),
        ]  # fmt: skip
        leg = len(parts)
        parts += [
            Part(f"{tag}_thigh", 0, hip, side * 0.15, 0.45, thigh, leg_w, "thigh", 1),
            Part(f"{tag}_shin", leg, (thigh, 0.0), -side * 0.35, 0.35, shin, leg_w * 0.85, "shin", 0),
        ]
    return parts


def _quadruped(rng: np.random.Generator) -> list[Part]:
    u = rng.uniform
    body_w = u(0.38, 0.5)
    neck, neck_w = u(0.3, 0.42), u(0.2, 0.26)
    head, head_w = u(0.32, 0.42), u(0.22, 0.28)
    upper_leg, lower_leg, leg_w = u(0.34, 0.44), u(0.32, 0.42), u(0.15, 0.2)
    tail = u(0.35, 0.5)
    parts = [
        Part("body", -1, (0.0, 0.0), 0.0, 0.0, 1.0, body_w, "body", 3, center=0.0, pad=0.0),
        Part("neck", 0, (0.4, -body_w * 0.2), -0.9, 0.3, neck, neck_w, "neck", 4),
        Part("head", 1, (neck, 0.0), 0.9, 0.35, head, head_w, "head", 5),
        Part("tail", 0, (-0.48, -body_w * 0.15), math.pi + 0.5, 0.5, tail, u(0.08, 0.11), "tail", 2),
    ]
    for x, end in ((0.36, "front"), (-0.36, "back")):
        for near, shift, tag in ((False, 0.06, "far"), (True, 0.0, "near")):
            depth, shade = (6, 1.0) if near else (0, 0.7)
            upper = len(parts)
            parts += [
                Part(f"{end}_{tag}_upper_leg", 0, (x + shift, body_w * 0.25), math.pi / 2, 0.55,
                      upper_leg, leg_w, f"{end}_upper_leg", depth + 1, shade=shade),
                Part(f"{end}_{tag}_lower_leg", upper, (upper_leg, 0.0), 0.0, 0.5, lower_leg,
                      leg_w * 0.85, f"{end}_lower_leg", depth, shade=shade),
            ]  # fmt: skip
    return parts


def _snake(rng: np.random.Generator) -> list[Part]:
    count = int(rng.integers(4, 7))
    segment = rng.uniform(0.45, 0.6)
    width = segment * rng.uniform(0.55, 0.7)
    mid = count // 2  # the root is a middle segment, so the body bends around its centre

    def make(k: int, parent: int, attach: tuple[float, float], rest: float) -> Part:
        taper = 0.6 + 0.4 * k / (count - 1)  # thinner towards the tail (k = 0)
        amplitude = 0.0 if parent < 0 else 0.4
        center = 0.0 if parent < 0 else None
        return Part(f"segment_{k}", parent, attach, rest, amplitude, segment, width * taper, f"band_{k % 2}",
                     k, center=center, wave=k)  # fmt: skip

    parts = [make(mid, -1, (0.0, 0.0), 0.0)]
    for k in range(mid + 1, count):  # towards the head
        parts.append(make(k, len(parts) - 1, (segment / 2 if k == mid + 1 else segment, 0.0), 0.0))
    parts.append(
        Part("head", len(parts) - 1, (segment / 2 if count == mid + 1 else segment, 0.0), 0.0, 0.45,
              width * 1.3, width * 1.15, "head", count, shape="ellipse", pad=0.0, wave=count)
    )  # fmt: skip
    for k in range(mid - 1, -1, -1):  # towards the tail
        first = k == mid - 1
        parts.append(make(k, 0 if first else len(parts) - 1, (-segment / 2 if first else segment, 0.0),
                          math.pi if first else 0.0))  # fmt: skip
    return parts


def _starfish(rng: np.random.Generator) -> list[Part]:
    arms = int(rng.integers(4, 7))
    inner, outer, width = rng.uniform(0.4, 0.55), rng.uniform(0.35, 0.5), rng.uniform(0.18, 0.26)
    body = rng.uniform(0.45, 0.6)
    parts = [Part("body", -1, (0.0, 0.0), 0.0, 0.0, body, body, "body", 2, center=0.0, pad=0.0)]
    start = rng.uniform(0, TWO_PI)
    for k in range(arms):
        angle = start + TWO_PI * k / arms
        base = len(parts)
        joint = (0.3 * body * math.cos(angle), 0.3 * body * math.sin(angle))
        parts += [
            Part(f"arm_{k}_inner", 0, joint, angle, 0.4, inner, width, "arm_inner", 1),
            Part(f"arm_{k}_outer", base, (inner, 0.0), 0.0, 0.6, outer, width * 0.75, "arm_outer", 0),
        ]
    return parts


BUILDERS = {"humanoid": _humanoid, "quadruped": _quadruped, "snake": _snake, "starfish": _starfish}


# --------------------------------------------------------------------------------------------------
# motion


def smooth_signals(rng: np.random.Generator, t: np.ndarray, count: int, speed: float) -> np.ndarray:
    """(count, T) smooth random signals in [-1, 1]: weighted sums of three sinusoids."""
    freq = rng.uniform(0.012, 0.05, size=(count, 3, 1)) * speed  # cycles per frame
    phase = rng.uniform(0.0, TWO_PI, size=(count, 3, 1))
    weight = rng.uniform(0.2, 1.0, size=(count, 3, 1))
    weight /= weight.sum(axis=1, keepdims=True)
    return (weight * np.sin(TWO_PI * freq * t + phase)).sum(axis=1)


def joint_angles(rng: np.random.Generator, parts: list[Part], t: np.ndarray, speed: float) -> np.ndarray:
    """(P, T) joint angles relative to the parents, within rest +- amplitude."""
    signal = smooth_signals(rng, t, len(parts), speed)
    waves = [i for i, part in enumerate(parts) if part.wave >= 0]
    if waves:  # a travelling body wave (snake-like undulation) mixed with the independent signals
        freq = rng.uniform(0.02, 0.045) * speed
        lag, phase = rng.uniform(0.5, 1.1), rng.uniform(0, TWO_PI)
        for i in waves:
            wave = np.sin(TWO_PI * freq * t + phase - lag * parts[i].wave)
            signal[i] = 0.7 * wave + 0.3 * signal[i]
    rest = np.array([p.rest for p in parts])[:, None]
    amplitude = np.array([p.amplitude for p in parts])[:, None]
    return rest + amplitude * signal


def _rotation(angle: np.ndarray) -> np.ndarray:
    """(..., 2, 2) rotation matrices."""
    c, s = np.cos(angle), np.sin(angle)
    return np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)


def _forward_kinematics(
    parts: list[Part], angles: np.ndarray, root_linear: np.ndarray
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


def shape_box(part: Part) -> tuple[float, float, float]:
    """Centre on the local x axis and half sizes (along, across) of a part's shape."""
    center = part.length / 2 if part.center is None else part.center
    return center, part.length / 2 + part.pad * part.width, part.width / 2


def _corner_points(parts: list[Part], linear: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """(P, T, 4, 2) corners of every part's shape box, in figure coordinates."""
    corners = []
    for part in parts:
        c, hx, hy = shape_box(part)
        corners.append([(c - hx, -hy), (c + hx, -hy), (c + hx, hy), (c - hx, hy)])
    local = np.asarray(corners)  # (P, 4, 2)
    return np.einsum("ptij,pkj->ptki", linear, local) + origin[:, :, None, :]


@dataclass
class Placement:
    linear: np.ndarray  # (P, T, 2, 2) local -> frame-normalised coordinates
    origin: np.ndarray  # (P, T, 2)
    scale: np.ndarray  # (T,) length of one figure unit in frame units


def place_figure(
    rng: np.random.Generator,
    parts: list[Part],
    figure: str,
    angles: np.ndarray,
    *,
    fill: tuple[float, float],
    motion_speed: float,
    global_motion: float,
) -> Placement:
    """Fit zoom and translation so the figure fills ``fill`` of the frame and never leaves it (SynthConfig values)."""
    T = angles.shape[1]
    t = np.arange(T, dtype=np.float64)
    motion = global_motion
    signals = smooth_signals(rng, t, 4, motion_speed * 0.7)  # zoom, rotation, x, y
    upright = figure in ("humanoid", "quadruped")
    base_angle = rng.uniform(-0.12, 0.12) if upright else rng.uniform(0, TWO_PI)
    flip = rng.choice([-1.0, 1.0])
    zoom = 1.0 + 0.08 * motion * signals[0]  # (T,)
    angle = base_angle + 0.12 * motion * signals[1]
    root_linear = zoom[:, None, None] * _rotation(angle) @ np.diag([flip, 1.0])  # (T, 2, 2)
    linear, origin = _forward_kinematics(parts, angles, root_linear)
    points = _corner_points(parts, linear, origin).transpose(1, 0, 2, 3).reshape(T, -1, 2)
    low, high = points.min(axis=1), points.max(axis=1)  # (T, 2) per-frame extent
    extent = (high - low).max(axis=1).mean()
    union = high.max(axis=0) - low.min(axis=0)  # (2,) extent over the whole video
    scale = min(rng.uniform(*fill) / extent, float(((1 - 2 * MARGIN) / union).min()))
    lo = MARGIN - scale * low.min(axis=0)  # admissible translations, (2,)
    hi = 1 - MARGIN - scale * high.max(axis=0)
    slack = np.maximum(hi - lo, 0.0)
    center = lo + slack * rng.uniform(0.3, 0.7, size=2)
    reach = np.minimum(center - lo, lo + slack - center) * min(motion, 1.0)
    translation = center[None] + reach[None] * signals[2:].T  # (T, 2)
    return Placement(scale * linear, scale * origin + translation[None], scale * zoom)
