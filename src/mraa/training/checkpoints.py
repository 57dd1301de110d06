"""Checkpoint files of a run: their names, the latest one, and which older ones stay (``checkpoint_keep_every``)."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from mraa.config import TrainAVDParams, TrainParams

log = logging.getLogger(__name__)

S = TypeVar("S")  # the loop's state, passed through to ``save``

_CHECKPOINT_RE = re.compile(r"^(\d+)-cpk-(\w+)\.pth$")


def find_latest_checkpoint(log_dir: str | os.PathLike, mode: str) -> Path | None:
    """The ``{epoch:08d}-cpk-{mode}.pth`` file with the highest epoch in ``log_dir``, if any."""
    log_dir = Path(log_dir)
    if not log_dir.is_dir():
        return None
    found = []
    for path in log_dir.iterdir():
        match = _CHECKPOINT_RE.match(path.name)
        if match and match.group(2) == mode:
            found.append((int(match.group(1)), path))
    return max(found)[1] if found else None


def checkpoint_path(log_dir: str | os.PathLike, epoch: int, mode: str) -> Path:
    """Official naming: ``log_dir/{epoch:08d}-cpk-{mode}.pth`` (epoch = index of the last finished epoch)."""
    return Path(log_dir) / f"{epoch:08d}-cpk-{mode}.pth"


def is_kept(epoch: int, params: TrainParams | TrainAVDParams) -> bool:
    """Whether the checkpoint of ``epoch`` stays once a newer one is saved (``checkpoint_keep_every``)."""
    keep_every = params.checkpoint_keep_every
    return keep_every <= params.checkpoint_freq or (epoch + 1) % keep_every == 0


def prune_after_save(
    save: Callable[[int, S], Path],
    params: TrainParams | TrainAVDParams,
    previous: tuple[int, Path] | None = None,
) -> Callable[[int, S], Path]:
    """``save`` that then deletes the older checkpoints of this run that :func:`is_kept` does not keep.

    Only files this run wrote are deleted (and ``previous``, the checkpoint it resumed), never others.
    """
    written: list[tuple[int, Path]] = [previous] if previous is not None else []

    def save_and_prune(epoch: int, state: S) -> Path:
        path = save(epoch, state)
        for old_epoch, old in list(written):
            if old != path and not is_kept(old_epoch, params):
                old.unlink(missing_ok=True)
                written.remove((old_epoch, old))
                log.info("deleted %s (checkpoint_keep_every %d)", old.name, params.checkpoint_keep_every)
        written.append((epoch, path))
        return path

    return save_and_prune
