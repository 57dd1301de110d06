"""Training logs: per-step JSON lines, optional TensorBoard scalars and per-epoch images.

Only the main process (rank 0) writes; on other ranks every method is a no-op. Records in
``metrics.jsonl`` (``metrics-avd.jsonl`` for AVD training) look like
``{"kind": "step", "epoch": 0, "step": 12, "pairs_seen": 24, "lr": 0.0002, "loss": 1.3, "l1": 0.8, ...}``;
each epoch ends with a ``"kind": "epoch"`` record holding the epoch's mean losses.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from mraa.atomic import atomic_write_text
from mraa.training.rundir import run_file_name

log = logging.getLogger(__name__)


class TrainLogger:
    """Writes training metrics and images under ``log_dir`` (main process only).

    Args:
        mode: "reconstruction" (``metrics.jsonl``) or "avd" (``metrics-avd.jsonl``).
        tensorboard: also write TensorBoard scalars to ``log_dir/tensorboard/<mode>`` when the optional
            ``tensorboard`` package is installed.
    """

    def __init__(
        self,
        log_dir: str | os.PathLike,
        enabled: bool = True,
        mode: str = "reconstruction",
        tensorboard: bool = True,
    ) -> None:
        self.log_dir = Path(log_dir)
        self.enabled = enabled
        self.metrics_path = self.log_dir / run_file_name("metrics", mode, ".jsonl")
        self.image_dir = self.log_dir / "train-vis"
        self._file = None
        self._writer = None
        if not enabled:
            return
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                log.info(
                    "TensorBoard not installed (pip install tensorboard); metrics go to %s only",
                    self.metrics_path,
                )
            else:
                self._writer = SummaryWriter(str(self.log_dir / "tensorboard" / mode))

    def truncate_after(self, pairs_seen: int) -> None:
        """Drop records past ``pairs_seen`` (left by an interrupted run) before a resumed run appends."""
        if not self.enabled or not self.metrics_path.is_file():
            return
        kept = []
        for line in self.metrics_path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by the interruption
            if int(record.get("pairs_seen", 0)) <= pairs_seen:
                kept.append(line)
        atomic_write_text(self.metrics_path, "".join(f"{line}\n" for line in kept))

    def _write(self, record: dict[str, Any]) -> None:
        if self._file is None:
            self._file = open(self.metrics_path, "a")  # noqa: SIM115 - kept open for the whole run
        self._file.write(json.dumps(record, allow_nan=True) + "\n")
        self._file.flush()

    def log_step(self, record: dict[str, Any]) -> None:
        """One optimisation step: ``epoch``, ``step``, ``pairs_seen``, ``lr`` and the loss values."""
        if not self.enabled:
            return
        self._write({"kind": "step", **record})
        if self._writer is not None:
            step = int(record.get("step", 0))
            for key, value in record.items():
                if key not in ("epoch", "step", "pairs_seen") and isinstance(value, (int, float)):
                    self._writer.add_scalar(f"train/{key}", value, step)

    def log_epoch(self, epoch: int, means: dict[str, float], pairs_seen: int, step: int) -> None:
        """End of an epoch: mean losses to the metrics file, TensorBoard and the log."""
        if not self.enabled:
            return
        self._write({"kind": "epoch", "epoch": epoch, "step": step, "pairs_seen": pairs_seen, **means})
        if self._writer is not None:
            for key, value in means.items():
                self._writer.add_scalar(f"epoch/{key}", value, epoch)
            self._writer.flush()
        text = " ".join(f"{k}={v:.5g}" for k, v in means.items())
        log.info("epoch %d (%d pairs): %s", epoch, pairs_seen, text)

    def save_image(self, name: str, image: np.ndarray, step: int = 0) -> Path | None:
        """Write ``log_dir/train-vis/<name>.png`` (uint8 H x W x 3) atomically."""
        if not self.enabled:
            return None
        from mraa.data.video_io import write_image

        self.image_dir.mkdir(parents=True, exist_ok=True)
        path = write_image(self.image_dir / f"{name}.png", image)
        if self._writer is not None:
            self._writer.add_image("visualization", image, step, dataformats="HWC")
        return path

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class RunningMeans:
    """Accumulates per-step scalars into epoch means (non-finite values are counted, not averaged)."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def add(self, values: dict[str, float]) -> None:
        for key, value in values.items():
            if math.isfinite(value):
                self.sums[key] = self.sums.get(key, 0.0) + value
                self.counts[key] = self.counts.get(key, 0) + 1

    def means(self) -> dict[str, float]:
        return {key: self.sums[key] / self.counts[key] for key in self.sums}
