"""Background motion during animation: the ``--background`` option parsed into a :class:`BackgroundMotion`, and the
``bg_params`` (B, 3, 3) it gives for a batch of driving frames."""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from mraa.errors import MRAAError

if TYPE_CHECKING:
    from mraa.inference.engines import SourceState


def background_schedule(spec: str | np.ndarray | Tensor | None) -> BackgroundMotion:
    """Parse a background option: ``still``, ``left[:SPEED]``, ``right[:SPEED]``, ``rotate[:DEG]``,
    ``driving``, six numbers ``a,b,c,d,e,f`` (a 2x3 affine applied to every frame), a path to a ``.npy`` /
    ``.txt`` file holding T 2x3 (or 3x3) matrices (a per-frame schedule), or an array of those.

    Speeds are per frame: ``left:0.01`` moves the background by 0.5% of the width (0.01 in [-1, 1]
    units) each frame; ``rotate:0.5`` turns it counter-clockwise by half a degree per frame.
    """
    if spec is None:
        return BackgroundMotion("still")
    if isinstance(spec, (np.ndarray, Tensor)):
        return BackgroundMotion("schedule", matrices=_as_matrices(spec, "array"))
    text = str(spec).strip()
    name, _, arg = text.partition(":")
    if name in ("still", "none", "identity"):
        return BackgroundMotion("still")
    if name == "driving":
        return BackgroundMotion("driving")
    if name in ("left", "right", "rotate"):
        default = 0.5 if name == "rotate" else 0.01
        try:
            speed = float(arg) if arg else default
        except ValueError:
            raise MRAAError(f"background {text!r}: {arg!r} is not a number") from None
        if not math.isfinite(speed):
            raise MRAAError(f"background {text!r}: the speed must be a finite number, got {arg}")
        return BackgroundMotion(name, speed=speed)
    if "," in text:
        try:
            values = [float(v) for v in text.split(",")]
        except ValueError:
            raise MRAAError(f"background {text!r}: expected six comma-separated numbers") from None
        if len(values) != 6:
            raise MRAAError(f"background {text!r}: an affine needs 6 numbers (2x3), got {len(values)}")
        return BackgroundMotion("affine", matrices=_as_matrices(np.reshape(values, (1, 2, 3)), text))
    path = Path(text)
    if path.suffix in (".npy", ".txt", ".csv") and path.is_file():
        return BackgroundMotion("schedule", matrices=_as_matrices(_load_schedule(path), str(path)))
    if path.suffix in (".npy", ".txt", ".csv"):
        raise MRAAError(f"background schedule not found: {path}")
    raise MRAAError(
        f"unknown background {text!r}: use still, left[:SPEED], right[:SPEED], rotate[:DEG], driving, "
        "six numbers a,b,c,d,e,f, or a .npy/.txt file of per-frame 2x3 matrices"
    )


def _load_schedule(path: Path) -> np.ndarray:
    """The matrices of a ``.npy`` (no pickled objects) or text schedule file."""
    try:
        if path.suffix == ".npy":
            return np.load(path, allow_pickle=False)
        text = path.read_text(encoding="utf-8-sig")
        return np.loadtxt(io.StringIO(text), delimiter="," if "," in text else None, ndmin=2)
    except (ValueError, OSError, UnicodeDecodeError, EOFError) as exc:
        detail = "it holds Python objects" if "allow_pickle" in str(exc) else str(exc).splitlines()[0]
        raise MRAAError(f"background {path}: not a file of numbers ({detail})") from None


def _as_matrices(values: np.ndarray | Tensor, name: str) -> Tensor:
    """Background matrices (T, 3, 3) from 2x3 / 3x3 / flat 6 or 9 numbers; refuses non-finite or singular ones."""
    if isinstance(values, Tensor):
        values = values.detach().cpu().numpy()
    values = np.asarray(values)
    if values.dtype.kind not in "biuf":
        raise MRAAError(f"background {name}: expected numbers, got an array of {values.dtype} values")
    array = torch.from_numpy(values.astype(np.float64))
    if array.ndim == 2 and array.shape[1] in (6, 9):
        array = array.view(array.shape[0], -1, 3)
    if array.ndim == 2:
        array = array.unsqueeze(0)
    if array.ndim != 3 or array.shape[1:] not in ((2, 3), (3, 3)):
        raise MRAAError(f"background {name}: expected 2x3 or 3x3 matrices, got shape {tuple(array.shape)}")
    if array.shape[1] == 2:
        bottom = torch.tensor([0.0, 0.0, 1.0], dtype=array.dtype).expand(array.shape[0], 1, 3)
        array = torch.cat([array, bottom], dim=1)
    if array.shape[0] == 0:
        raise MRAAError(f"background {name}: no matrices")
    if not torch.isfinite(array).all():
        raise MRAAError(f"background {name}: the matrices hold non-finite values (nan or inf)")
    det = torch.linalg.det(array[:, :2, :2]).abs()  # (T,) area scale of each frame's map
    if (det < 1e-6).any():
        frame = int(torch.nonzero(det < 1e-6)[0])
        raise MRAAError(
            f"background {name}: the matrix of frame {frame} is singular (it collapses the image)"
        )
    return array.float()


@dataclass
class BackgroundMotion:
    """How the background moves during animation (maps output coordinates to source coordinates)."""

    kind: str = "still"
    speed: float = 0.0
    matrices: Tensor | None = None  # (T or 1, 3, 3)

    def params(self, frame_indices: Tensor, device: torch.device, dtype: torch.dtype) -> Tensor | None:
        """bg_params (B, 3, 3) for the given frame indices, or None for a still background."""
        t = frame_indices.to(device=device, dtype=dtype)
        b = t.shape[0]
        eye = torch.eye(3, device=device, dtype=dtype).repeat(b, 1, 1)
        if self.kind == "still":
            return None
        if self.kind in ("left", "right"):
            eye[:, 0, 2] = t * self.speed * (1 if self.kind == "left" else -1)
            return eye
        if self.kind == "rotate":
            angle = t * math.radians(self.speed)
            # the background turns counter-clockwise on screen: sample the source clockwise
            eye[:, 0, 0] = torch.cos(angle)
            eye[:, 0, 1] = -torch.sin(angle)
            eye[:, 1, 0] = torch.sin(angle)
            eye[:, 1, 1] = torch.cos(angle)
            return eye
        if self.kind in ("affine", "schedule"):
            matrices = self.matrices.to(device=device, dtype=dtype)
            index = frame_indices.clamp(max=matrices.shape[0] - 1).to(device)
            return matrices[index] if matrices.shape[0] > 1 else matrices.expand(b, 3, 3).clone()
        raise ValueError(f"background kind {self.kind!r} needs the driving frames")


def background_params(
    predict: Callable[[Tensor, Tensor], Tensor],
    state: SourceState,
    background: BackgroundMotion,
    frames: Tensor,
    indices: Tensor,
) -> Tensor | None:
    """bg_params (B, 3, 3) for a batch of driving frames (B, C, H, W), or None for the identity; ``predict``
    is the background predictor (source, driving) -> (B, 3, 3), used for ``driving``."""
    b = frames.shape[0]
    if background.kind == "driving":
        return predict(state.image.expand(b, -1, -1, -1), frames)
    bg = background.params(indices, frames.device, frames.dtype)
    if state.bg_reference is not None:  # motions are relative to the model's still background
        ref = state.bg_reference.to(frames.dtype)
        bg = ref.expand(b, 3, 3) if bg is None else ref @ bg
    return bg
