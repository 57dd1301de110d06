"""The files a training run writes in its folder, and the guard against mixing two runs in one folder.

A ``reconstruction`` run writes ``{epoch:08d}-cpk-reconstruction.pth``, ``config.yaml``, ``metrics.jsonl``,
``train-vis/{epoch:08d}-rec.png`` and ``tensorboard/reconstruction/``; an ``avd`` run the same with
``-avd`` names (``config-avd.yaml``, ``metrics-avd.jsonl``, ``*-avd.png``, ``tensorboard/avd/``). Other
files in the folder are never counted nor deleted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from pathlib import Path

from mraa.errors import MRAAError

log = logging.getLogger(__name__)

TAGS = {"reconstruction": "rec", "avd": "avd"}  # picture names: {epoch:08d}-<tag>.png
LOCK_NAME = ".mraa-train.lock"  # held (flock) by the run training in the folder


class RunExistsError(MRAAError):
    """The log folder already holds a run of this kind, and neither resuming nor overwriting was asked."""


def run_file_name(stem: str, mode: str, suffix: str) -> str:
    """``config.yaml`` / ``metrics.jsonl`` for reconstruction, ``config-avd.yaml`` / ... for other modes."""
    return f"{stem}{suffix}" if mode == "reconstruction" else f"{stem}-{mode}{suffix}"


def run_tag(mode: str) -> str:
    """The short name of ``mode`` in progress bars and picture names."""
    return TAGS.get(mode, mode)


def run_files(log_dir: Path, mode: str) -> list[Path]:
    """The files and folders of a ``mode`` run that exist in ``log_dir``."""
    if not log_dir.is_dir():
        return []
    found = sorted(log_dir.glob(f"[0-9]*-cpk-{mode}.pth"))
    names = (run_file_name("config", mode, ".yaml"), run_file_name("metrics", mode, ".jsonl"))
    found += [log_dir / name for name in names if (log_dir / name).exists()]
    found += sorted((log_dir / "train-vis").glob(f"[0-9]*-{run_tag(mode)}.png"))
    if (log_dir / "tensorboard" / mode).exists():
        found.append(log_dir / "tensorboard" / mode)
    return found


def check_run_dir(log_dir: Path, modes: tuple[str, ...], *, resume: bool, overwrite: bool) -> list[Path]:
    """The files a new run must clear first (``overwrite``); refuses a folder holding a run otherwise.

    ``modes[0]`` is the run's own mode, the others those it makes stale. Resuming keeps everything.

    Raises:
        RunExistsError: ``log_dir`` holds a run of one of ``modes`` and neither ``resume`` nor ``overwrite``.
    """
    if resume and overwrite:
        raise MRAAError("resuming a run and overwriting it exclude each other: choose one")
    if resume:
        return []
    found = [path for mode in modes for path in run_files(log_dir, mode)]
    if found and not overwrite:
        names = ", ".join(path.name for path in found[:3]) + (", ..." if len(found) > 3 else "")
        raise RunExistsError(f"{log_dir} already holds a previous run ({names})")
    return found


def clear_run(log_dir: Path, paths: list[Path]) -> None:
    """Delete a previous run's files and folders (as listed by :func:`check_run_dir`)."""
    if paths:
        log.warning("overwriting the previous run in %s: deleting %d files", log_dir, len(paths))
    _delete(paths)


def _delete(paths: list[Path]) -> None:
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def remove_failed_run(log_dir: Path, mode: str) -> None:
    """Delete what a new ``mode`` run wrote before it failed without a checkpoint (nothing to resume)."""
    paths = run_files(log_dir, mode)
    if paths:
        log.warning(
            "the run failed before its first checkpoint: removing its %s", ", ".join(p.name for p in paths)
        )
    _delete(paths)


def remove_empty_run_dir(log_dir: Path) -> None:
    """Remove a run folder this run created, if nothing is left in it (``rmdir``: never a file)."""
    for folder in (log_dir / "train-vis", log_dir / "tensorboard", log_dir):
        with contextlib.suppress(OSError):
            folder.rmdir()


def lock_run_dir(log_dir: Path) -> int | None:
    """Take the run folder's advisory lock (``.mraa-train.lock``, ``flock``); None where there is no flock.

    Raises:
        MRAAError: another process (another ``train --resume`` on the folder) holds it.
    """
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks
        return None
    path = log_dir / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise MRAAError(f"cannot lock the run folder {log_dir}: {exc.strerror or exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = ""
        with contextlib.suppress(OSError, UnicodeDecodeError):
            holder = os.pread(fd, 200, 0).decode().strip()
        os.close(fd)
        raise MRAAError(
            f"{log_dir} is in use by another training run{f' ({holder})' if holder else ''}: "
            "wait for it to end or choose another --log-dir"
        ) from None
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"mraa training run, pid {os.getpid()}\n".encode(), 0)
    return fd


def unlock_run_dir(log_dir: Path, fd: int | None) -> None:
    """Release the lock taken by :func:`lock_run_dir` and remove its file."""
    if fd is None:
        return
    with contextlib.suppress(OSError):
        (log_dir / LOCK_NAME).unlink()
    with contextlib.suppress(OSError):
        os.close(fd)
