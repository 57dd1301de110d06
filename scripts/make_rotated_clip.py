#!/usr/bin/env python
"""Write tests/data/portrait_rotated.mp4: a phone-style clip stored landscape with a 90-degree display matrix.

    python scripts/make_rotated_clip.py

The picture shown (48 wide, 64 high, 8 frames at 25 fps) has four coloured quarters: red top-left, green
top-right, blue bottom-left, white bottom-right. It is stored turned a quarter counter-clockwise (64x48, as a
phone's landscape sensor records it) with a display matrix of -90 degrees (ffmpeg's ``rotate=90``), so a player
that honours the matrix (ffmpeg, every phone) shows it upright. Made with imageio-ffmpeg's ffmpeg: encode, then
copy the stream while setting ``-display_rotation`` (setting it while encoding would make ffmpeg rotate the
pixels instead).
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "data" / "portrait_rotated.mp4"
HEIGHT, WIDTH, FRAMES = 64, 48, 8


def upright_picture() -> np.ndarray:
    """The picture as displayed: uint8 (64, 48, 3), four coloured quarters."""
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    image[: HEIGHT // 2, : WIDTH // 2] = (255, 0, 0)
    image[: HEIGHT // 2, WIDTH // 2 :] = (0, 255, 0)
    image[HEIGHT // 2 :, : WIDTH // 2] = (0, 0, 255)
    image[HEIGHT // 2 :, WIDTH // 2 :] = (255, 255, 255)
    return image


def main() -> None:
    import imageio_ffmpeg

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    stored = np.ascontiguousarray(np.rot90(upright_picture(), k=1))  # (48, 64, 3): turned counter-clockwise
    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / "plain.mp4"
        encode = [
            ffmpeg, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
            "-s", f"{stored.shape[1]}x{stored.shape[0]}", "-r", "25", "-i", "-",
            "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "20", "-map_metadata", "-1",
            "-fflags", "+bitexact", "-flags:v", "+bitexact", str(plain),
        ]  # fmt: skip
        subprocess.run(encode, input=stored.tobytes() * FRAMES, check=True)
        tag = [
            ffmpeg, "-y", "-loglevel", "error", "-display_rotation", "-90", "-i", str(plain),
            "-c", "copy", "-fflags", "+bitexact", str(OUT),
        ]  # fmt: skip
        subprocess.run(tag, check=True)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
