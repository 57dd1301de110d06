"""Temporal smoothing of driving region parameters (``shift`` and ``affine``), streaming.

Each region's affine ``A`` (2x2) is smoothed in a parametrisation that always decodes to a valid transform:

1. *Sign alignment.* The region predictor's ``affine = U S^(1/2)`` is defined up to the sign of each column
   of ``U`` (the SVD may flip them between frames). Each frame's columns are flipped (``D = diag(+-1, +-1)``)
   to agree with the previous frame's, and so that ``det(A D) > 0``.
2. *QR parameters.* ``A D = R(theta) [[exp(a), h], [0, exp(b)]]``: rotation ``theta`` (unwrapped over time),
   log-scales ``a, b`` and shear ``h``. These four numbers and the centre ``shift`` are smoothed.
3. *Decoding.* ``A' = R(theta') [[exp(a'), h'], [0, exp(b')]] D``: ``det(A' D) = exp(a' + b') > 0``, so the
   smoothed transform is invertible with the orientation of the input frame's; ``covar' = A' A'^T``.

Smoothers (``--smooth``): ``none``; ``ema:ALPHA`` (causal, weight ALPHA on the new frame); ``one-euro
[:MIN_CUTOFF,BETA]`` (causal, Casiez et al. 2012, in frame units: cut-offs in cycles per frame); ``savgol:WINDOW
[,ORDER]`` (Savitzky-Golay polynomial fit over an odd window, centred, so each output waits WINDOW // 2 frames;
near the ends the window is truncated). Streaming: :meth:`RegionSmoother.push` returns the frames that are
ready, :meth:`RegionSmoother.flush` the rest; the concatenation equals :func:`smooth_region_params`.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from mraa.errors import MRAAError
from mraa.geometry import RegionParams

SMOOTH_HELP = "none, ema:ALPHA, one-euro[:MIN_CUTOFF,BETA] or savgol:WINDOW[,ORDER]"


# ----------------------------------------------------------------------------- parametrisation
def encode_affine(affine: Tensor, previous: Tensor | None) -> tuple[Tensor, Tensor]:
    """Affines (K, 2, 2) -> (params (K, 4) = theta, a, b, h; column signs (K, 2)).

    ``previous`` (K, 2, 2) is the last sign-aligned affine; theta is unwrapped relative to it.
    """
    signs = torch.ones(affine.shape[0], 2, dtype=affine.dtype, device=affine.device)
    if previous is not None:
        dots = (affine * previous).sum(dim=-2)  # (K, 2) column-wise dot products
        signs = torch.where(dots < 0, -signs, signs)
    aligned = affine * signs.unsqueeze(-2)
    # closed form, so that no linalg op runs on MPS
    determinant = aligned[:, 0, 0] * aligned[:, 1, 1] - aligned[:, 0, 1] * aligned[:, 1, 0]
    flip = determinant < 0
    signs[:, 1] = torch.where(flip, -signs[:, 1], signs[:, 1])
    aligned = affine * signs.unsqueeze(-2)
    p, r, q, s = aligned[:, 0, 0], aligned[:, 1, 0], aligned[:, 0, 1], aligned[:, 1, 1]
    theta = torch.atan2(r, p)
    if previous is not None:
        previous_theta = torch.atan2(previous[:, 1, 0], previous[:, 0, 0])
        theta = previous_theta + torch.remainder(theta - previous_theta + math.pi, 2 * math.pi) - math.pi
    cos, sin = torch.cos(theta), torch.sin(theta)
    scale_x = torch.hypot(p, r).clamp_min(1e-12)
    shear = cos * q + sin * s
    scale_y = (-sin * q + cos * s).clamp_min(1e-12)
    return torch.stack([theta, scale_x.log(), scale_y.log(), shear], dim=-1), signs


def decode_affine(params: Tensor, signs: Tensor) -> Tensor:
    """Inverse of :func:`encode_affine`: (K, 4), (K, 2) -> affines (K, 2, 2)."""
    theta, log_x, log_y, shear = params.unbind(-1)
    cos, sin = torch.cos(theta), torch.sin(theta)
    rotation = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
    zero = torch.zeros_like(shear)
    upper = torch.stack([torch.stack([log_x.exp(), shear], -1), torch.stack([zero, log_y.exp()], -1)], -2)
    return rotation @ upper * signs.unsqueeze(-2)


# ----------------------------------------------------------------------------- filters on vectors
class EMAFilter:
    """y_t = alpha x_t + (1 - alpha) y_(t-1); causal."""

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha
        self.state: Tensor | None = None

    def push(self, x: Tensor) -> list[Tensor]:
        self.state = x if self.state is None else self.alpha * x + (1 - self.alpha) * self.state
        return [self.state]

    def flush(self) -> list[Tensor]:
        return []


class OneEuroFilter:
    """One-euro filter (an EMA whose cut-off rises with the speed), per element, in frame units."""

    def __init__(self, min_cutoff: float, beta: float, d_cutoff: float = 1.0) -> None:
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.state: Tensor | None = None
        self.speed: Tensor | None = None

    @staticmethod
    def _alpha(cutoff: Tensor | float) -> Tensor | float:
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau)

    def push(self, x: Tensor) -> list[Tensor]:
        if self.state is None:
            self.state, self.speed = x, torch.zeros_like(x)
            return [x]
        a_d = self._alpha(self.d_cutoff)
        self.speed = a_d * (x - self.state) + (1 - a_d) * self.speed
        a = self._alpha(self.min_cutoff + self.beta * self.speed.abs())
        self.state = a * x + (1 - a) * self.state
        return [self.state]

    def flush(self) -> list[Tensor]:
        return []


def savgol_weights(left: int, right: int, order: int) -> np.ndarray:
    """Least-squares polynomial weights evaluating the fit at offset 0 over offsets -left..right."""
    offsets = np.arange(-left, right + 1, dtype=np.float64)
    order = min(order, left + right)
    vandermonde = offsets[:, None] ** np.arange(order + 1)[None, :]
    return np.linalg.pinv(vandermonde)[0]


class SavGolFilter:
    """Savitzky-Golay smoothing over ``window`` frames centred on the output frame (delay window // 2)."""

    def __init__(self, window: int, order: int = 2) -> None:
        self.half, self.order = window // 2, order
        self.buffer: deque[Tensor] = deque(maxlen=2 * self.half + 1)
        self.seen = 0  # frames pushed
        self.done = 0  # frames output
        self._weights: dict[tuple[int, int], np.ndarray] = {}  # by (left, right): the same for most frames

    def _output(self, index: int) -> Tensor:
        first = self.seen - len(self.buffer)  # frame index of buffer[0]
        left = min(self.half, index - first)
        right = min(self.half, self.seen - 1 - index)
        weights = self._weights.get((left, right))
        if weights is None:
            weights = self._weights[left, right] = savgol_weights(left, right, self.order)
        frames = [self.buffer[index - first + o] for o in range(-left, right + 1)]
        stacked = torch.stack(frames)  # (n, ...)
        w = torch.as_tensor(weights, dtype=stacked.dtype, device=stacked.device)
        return torch.tensordot(w, stacked, dims=1)

    def push(self, x: Tensor) -> list[Tensor]:
        self.buffer.append(x)
        self.seen += 1
        out = []
        while self.done + self.half < self.seen:
            out.append(self._output(self.done))
            self.done += 1
        return out

    def flush(self) -> list[Tensor]:
        out = []
        while self.done < self.seen:
            out.append(self._output(self.done))
            self.done += 1
        return out


# ----------------------------------------------------------------------------- spec and region smoother
@dataclass(frozen=True)
class SmoothingSpec:
    """A parsed smoothing option. ``delay``: frames each output waits for (the look-ahead)."""

    kind: str  # none | ema | one-euro | savgol
    values: tuple[float, ...] = ()

    @property
    def delay(self) -> int:
        return int(self.values[0]) // 2 if self.kind == "savgol" else 0

    def make_filter(self) -> EMAFilter | OneEuroFilter | SavGolFilter:
        if self.kind == "ema":
            return EMAFilter(self.values[0])
        if self.kind == "one-euro":
            return OneEuroFilter(*self.values)
        if self.kind == "savgol":
            return SavGolFilter(int(self.values[0]), int(self.values[1]))
        raise ValueError(f"smoothing {self.kind!r} has no filter")

    def __str__(self) -> str:
        return self.kind + (":" + ",".join(f"{v:g}" for v in self.values) if self.values else "")


def parse_smoothing(spec: str | SmoothingSpec | None) -> SmoothingSpec:
    """Parse ``none``, ``ema:ALPHA``, ``one-euro[:MIN_CUTOFF,BETA]`` or ``savgol:WINDOW[,ORDER]``."""
    if isinstance(spec, SmoothingSpec):
        return spec
    text = "none" if spec is None else str(spec).strip().lower()
    name, _, arg = text.partition(":")
    try:
        values = tuple(float(v) for v in arg.split(",")) if arg else ()
    except ValueError:
        raise MRAAError(f"smoothing {text!r}: {arg!r} is not a list of numbers; use {SMOOTH_HELP}") from None
    if name in ("none", "off") and not values:
        return SmoothingSpec("none")
    if name == "ema" and len(values) == 1 and 0 < values[0] <= 1:
        return SmoothingSpec("ema", values)
    if name in ("one-euro", "oneeuro", "1euro") and len(values) in (0, 2):
        values = values or (0.05, 1.0)
        if values[0] > 0 and values[1] >= 0:
            return SmoothingSpec("one-euro", values)
    if name == "savgol" and len(values) in (1, 2):
        window, order = int(values[0]), int(values[1]) if len(values) == 2 else 2
        if window == values[0] and window >= 3 and window % 2 == 1 and 0 <= order < window:
            return SmoothingSpec("savgol", (window, order))
    raise MRAAError(
        f"invalid smoothing {text!r}: use {SMOOTH_HELP} (ALPHA in (0, 1], MIN_CUTOFF > 0, BETA >= 0, "
        "WINDOW odd and at least 3, ORDER below WINDOW)"
    )


class RegionSmoother:
    """Streaming smoother of driving region params (frames in order, batches of any size)."""

    def __init__(self, spec: str | SmoothingSpec) -> None:
        self.spec = parse_smoothing(spec)
        self.filter = self.spec.make_filter()
        self._previous: Tensor | None = None  # last sign-aligned affine (K, 2, 2)
        self._pending: deque[tuple[dict[str, Tensor], Tensor]] = deque()

    def _encode(self, frame: dict[str, Tensor]) -> Tensor:
        affine = frame["affine"].double()
        params, signs = encode_affine(affine, self._previous)
        self._previous = affine * signs.unsqueeze(-2)
        self._pending.append((frame, signs))
        return torch.cat([frame["shift"].double(), params], dim=-1)  # (K, 6)

    def _decode(self, vector: Tensor) -> dict[str, Tensor]:
        frame, signs = self._pending.popleft()
        out = dict(frame)
        affine = decode_affine(vector[:, 2:], signs)
        out["shift"] = vector[:, :2].to(frame["shift"].dtype)
        out["affine"] = affine.to(frame["affine"].dtype)
        if "covar" in frame:
            out["covar"] = (affine @ affine.transpose(-1, -2)).to(frame["covar"].dtype)
        return out

    @staticmethod
    def _stack(frames: list[dict[str, Tensor]]) -> RegionParams | None:
        if not frames:
            return None
        return {k: torch.stack([f[k] for f in frames]) for k in frames[0]}

    def push(self, params: RegionParams) -> RegionParams | None:
        """Smooth a batch of frames (B, K, ...); returns the frames that are ready (None if none yet)."""
        ready = []
        for i in range(params["shift"].shape[0]):
            vector = self._encode({k: v[i] for k, v in params.items()})
            ready += [self._decode(y) for y in self.filter.push(vector)]
        return self._stack(ready)

    def flush(self) -> RegionParams | None:
        """The frames still held back by a look-ahead (None if none)."""
        return self._stack([self._decode(y) for y in self.filter.flush()])


def make_smoother(spec: str | SmoothingSpec | None) -> RegionSmoother | None:
    """A :class:`RegionSmoother`, or None for ``none``."""
    spec = parse_smoothing(spec)
    return None if spec.kind == "none" else RegionSmoother(spec)


def smooth_region_params(params: RegionParams, spec: str | SmoothingSpec | None) -> RegionParams:
    """Smooth a whole track of region params (T, K, ...) offline; same result as streaming."""
    smoother = make_smoother(spec)
    if smoother is None:
        return dict(params)
    parts = [p for p in (smoother.push(params), smoother.flush()) if p is not None]
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
