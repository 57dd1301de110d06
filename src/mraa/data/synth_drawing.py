"""Synthetic appearance and drawing (see :mod:`mraa.data.synthetic`): part shapes, colours and textures,
backgrounds, and parts rendered from signed distance functions with analytic anti-aliasing."""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import numpy as np

from mraa.data.synth_figures import TWO_PI, Part, shape_box, smooth_signals

SHAPE_TYPES = ("ellipse", "rounded", "polygon")
TEXTURE_TYPES = ("flat", "stripes", "dots", "gradient")


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
class Look:
    shape: str
    polygon: np.ndarray | None  # (V, 2) unit-box vertices of a convex polygon
    corner: float  # rounded rectangle: corner radius as a fraction of the half width
    texture: str
    color: np.ndarray  # (3,)
    second: np.ndarray  # (3,) the texture's other colour
    period: float  # texture period in figure units
    direction: float  # texture orientation, radians
    phase: np.ndarray  # (2,)


def sample_looks(rng: np.random.Generator, parts: list[Part], background: np.ndarray) -> dict[str, Look]:
    looks: dict[str, Look] = {}
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
        looks[part.group] = Look(
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
class Background:
    kind: str
    colors: np.ndarray  # (2, 3)
    direction: np.ndarray  # (2,) gradient direction
    waves: np.ndarray  # (K, 2) noise wave vectors, cycles per frame
    phases: np.ndarray  # (K,)
    tints: np.ndarray  # (K, 3) colour of each noise wave
    drift: np.ndarray | None  # (T, 2) camera offset in frame units, None when static


def sample_background(
    rng: np.random.Generator,
    t: np.ndarray,
    *,
    kinds: tuple[str, ...],
    camera_motion: float,
    motion_speed: float,
) -> Background:
    """A background of one of ``kinds``, drifting with probability ``camera_motion`` (SynthConfig values)."""
    kind = kinds[int(rng.integers(len(kinds)))]
    colors = np.stack([_random_color(rng, (0.05, 0.6), (0.2, 0.95)) for _ in range(2)])
    angle = rng.uniform(0, TWO_PI)
    count = 6
    frequency = rng.uniform(0.6, 2.5, size=count)
    orientation = rng.uniform(0, TWO_PI, size=count)
    waves = np.stack([np.cos(orientation), np.sin(orientation)], -1) * frequency[:, None]
    tints = rng.normal(0, 1, size=(count, 3)) * 0.025 + rng.normal(0, 1, size=(count, 1)) * 0.04
    drift = None
    moving = rng.uniform() < camera_motion
    signals = smooth_signals(rng, t, 2, motion_speed * 0.6)
    amount = rng.uniform(0.03, 0.08)
    if moving:
        drift = amount * signals.T  # (T, 2)
    return Background(
        kind, colors, np.array([math.cos(angle), math.sin(angle)]), waves, rng.uniform(0, TWO_PI, count),
        tints, drift,
    )  # fmt: skip


def render_background(bg: Background, size: int, num_frames: int) -> np.ndarray:
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
            value = np.sin(TWO_PI * (wave[0] * x + wave[1] * y) + phase)  # (T', H, W)
            image = image + value[..., None] * tint.astype(np.float32)
    image = np.clip(image, 0, 1).astype(np.float32)
    return np.broadcast_to(image, (num_frames, size, size, 3)).copy()


# --------------------------------------------------------------------------------------------------
# rendering


def _signed_distance(look: Look, u: np.ndarray, v: np.ndarray, hx: float, hy: float) -> np.ndarray:
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


def _texture(look: Look, u: np.ndarray, v: np.ndarray, hx: float, units_per_pixel: float) -> np.ndarray:
    """Mix weight of the second colour, in [0, 1], as a function of the part's local coordinates."""
    period = max(look.period, 3.0 * units_per_pixel)  # no stripes or dots finer than 3 pixels
    if look.texture == "stripes":
        w = u * math.cos(look.direction) + v * math.sin(look.direction)
        return 0.5 + 0.5 * np.sin(TWO_PI * (w / period + look.phase[0]))
    if look.texture == "dots":
        period = max(period, 4.0 * units_per_pixel)
        du = (u / period + look.phase[0]) % 1.0 - 0.5
        dv = (v / period + look.phase[1]) % 1.0 - 0.5
        distance = np.sqrt(du**2 + dv**2) * period
        return np.clip((0.3 * period - distance) / units_per_pixel + 0.5, 0, 1)
    if look.texture == "gradient":
        return np.clip(0.5 + 0.5 * u / hx, 0, 1)
    return np.zeros_like(u)


def draw_part(
    frames: np.ndarray,
    labels: np.ndarray | None,
    label: int,
    part: Part,
    look: Look,
    linear: np.ndarray,
    origin: np.ndarray,
    scale: np.ndarray,
) -> None:
    """Composite one part over ``frames`` (T, H, W, 3) in place; ``linear`` (T, 2, 2), ``origin`` (T, 2)."""
    size = frames.shape[1]
    c, hx, hy = shape_box(part)
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
