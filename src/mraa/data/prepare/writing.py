"""Phase 3 of :func:`mraa.data.prepare.prepare_dataset`: decode a video once and write its chunks (cropped,
resized, each written atomically), and the ``manifest.csv`` listing them."""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np

from mraa.atomic import remove_stale_temps
from mraa.data import video_io
from mraa.data.prepare.analysis import frame_progress
from mraa.data.prepare.chunks import PlannedChunk
from mraa.data.prepare.detectors import require_cv2
from mraa.errors import MRAAError

MANIFEST_COLUMNS = (
    "name", "split", "video_id", "source", "shot", "shot_start", "shot_end", "start", "end",
    "num_frames", "crop_x0", "crop_y0", "crop_size", "fps", "source_height", "source_width",
)  # fmt: skip


# ---------------------------------------------------------------------------------------------------------
# phase 3: writing


def _crop_resize(frame: np.ndarray, crop: tuple[int, int, int], size: int) -> np.ndarray:
    cv2 = require_cv2()
    x0, y0, side = crop
    patch = frame[y0 : y0 + side, x0 : x0 + side]
    if patch.shape[0] != side or patch.shape[1] != side:
        raise MRAAError(f"crop {crop} does not fit a frame of size {frame.shape[1]}x{frame.shape[0]}")
    if side == size:
        return np.ascontiguousarray(patch)
    return cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)


def _remove_partial(folder: Path, name: str) -> None:
    """Remove the marked temporaries an interrupted writer left for chunk ``name`` (see mraa.atomic)."""
    remove_stale_temps(folder, _glob_escape(name), any_age=True)


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def write_chunks(
    source: Path,
    targets: Sequence[tuple[PlannedChunk, Path]],
    size: int,
    fps: float,
    num_frames: int | None = None,
    progress: bool = False,
) -> int:
    """Decode ``source`` once and write each chunk's cropped, resized frames to its target path.

    Chunks must not overlap. Targets named ``*.mp4`` become videos, others frame folders.
    Returns the number of chunks written.
    """
    ordered = sorted(targets, key=lambda item: item[0].start)
    decoded = video_io.iter_video(source)
    frames: Iterator[tuple[int, np.ndarray]] = enumerate(decoded)
    written = 0
    last = ordered[-1][0].end if ordered else 0
    with (
        closing(decoded),
        frame_progress(min(last, num_frames or last), progress, f"write {source.name}") as bar,
    ):
        position = 0

        def chunk_frames(chunk: PlannedChunk) -> Iterator[np.ndarray]:
            nonlocal position
            for index, frame in frames:
                position = index + 1
                bar.update(1)
                if index >= chunk.start:
                    yield _crop_resize(frame, chunk.crop, size)
                if index >= chunk.end - 1:
                    return
            raise MRAAError(
                f"{source}: the video ended before frame {chunk.end} (it changed since analysis?)"
            )

        for chunk, path in ordered:
            if chunk.start < position:
                raise MRAAError(f"overlapping chunks in {source}")
            as_video = path.suffix.lower() == ".mp4"
            _remove_partial(path.parent, path.stem if as_video else path.name)
            if as_video:
                video_io.write_video(path, chunk_frames(chunk), fps=fps)
            else:
                video_io.write_frame_folder(path, chunk_frames(chunk))
            written += 1
    return written


def manifest_text(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def read_manifest(path: str | os.PathLike) -> list[dict[str, str]]:
    """Rows of a ``manifest.csv`` as dicts of strings."""
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))
