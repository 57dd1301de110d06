"""What an app job returns: the video file and the lines the page shows about it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class AnimationResult:
    """A finished animation: the video file and the lines the page shows about it."""

    video: Path
    num_frames: int
    fps: float
    mode: str
    notes: list[str] = field(default_factory=list)
