"""Atomic file writing: write to a temporary file in the target folder, then rename it into place.

An interrupted or failed write never leaves a half-written output (the temporary file is removed), and a
reader never sees a partial file. Outputs get ordinary permissions (0644), not mkstemp's private ones.

Temporary files are named ``.{stem}-XXXXXXXX{suffix}`` (``XXXXXXXX``: mkstemp's 8 random characters) and
are locked (``flock``) while in use. A run killed outright (SIGKILL, power loss) cannot remove its temporary
file; :func:`remove_stale_temps` deletes such leftovers at the next start of a command in that folder.
"""

from __future__ import annotations

import contextlib
import fnmatch
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

PROCESS_START = time.time()  # temporary files newer than this may belong to a run started with this one
# ".{stem}-{8 mkstemp characters}" + optional "-audio" (VideoWriter's mux) + optional suffix
_TEMP_NAME = re.compile(r"^\.(?P<stem>.+)-[a-z0-9_]{8}(?:-audio)?(?P<suffix>\.[A-Za-z0-9]+)?$")


def lock_temp(path: str | os.PathLike) -> int | None:
    """Open ``path`` (a file or a folder) and hold an exclusive ``flock`` on it; returns the descriptor.

    :func:`remove_stale_temps` leaves locked temporaries alone. None where locking is not available.
    """
    try:
        import fcntl
    except ImportError:  # Windows: no flock; the age test alone decides
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def release_temp(fd: int | None) -> None:
    """Release a lock taken by :func:`lock_temp`."""
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)


def _is_locked(path: Path) -> bool:
    fd = lock_temp(path)
    if fd is None:
        try:
            import fcntl  # noqa: F401
        except ImportError:
            return False
        return path.exists()  # could not take the lock: someone holds it
    release_temp(fd)
    return False


def remove_stale_temps(folder: str | os.PathLike, pattern: str = "*") -> list[Path]:
    """Remove temporaries left in ``folder`` by interrupted atomic writes; return what was removed.

    Only entries named like this module's temporaries (``.{stem}-XXXXXXXX{suffix}``) whose output name (``stem``, with or
    without ``suffix``) matches the glob ``pattern``, last modified before this process started and not locked by a running writer are
    removed (files, or folders made by folder writers).
    """
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        match = _TEMP_NAME.match(entry.name)
        if match is None or not (
            fnmatch.fnmatchcase(match["stem"], pattern)
            or fnmatch.fnmatchcase(match["stem"] + (match["suffix"] or ""), pattern)
        ):
            continue
        try:
            if entry.is_symlink() or entry.lstat().st_mtime >= PROCESS_START or _is_locked(entry):
                continue
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        except OSError as exc:
            log.debug("could not remove %s: %s", entry, exc)
            continue
        removed.append(entry)
    if removed:
        log.info("removed %d temporary file(s) left by an interrupted run in %s", len(removed), folder)
    return removed


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path``, on error it is deleted.

    Args:
        suffix: the temporary file's suffix (default: ``path``'s own, so writers that choose a format by
            suffix still work).
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.stem}-", suffix=path.suffix if suffix is None else suffix, dir=path.parent
    )
    os.close(fd)
    tmp = Path(tmp)
    lock = lock_temp(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        release_temp(lock)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (UTF-8, newlines as given)."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
    return Path(path)
