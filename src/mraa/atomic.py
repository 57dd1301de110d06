"""Atomic file writing: write to a temporary file in the target folder, then rename it into place.

An interrupted or failed write never leaves a half-written output (the temporary file is removed), and a
reader never sees a partial file. Outputs get ordinary permissions (0644), not mkstemp's private ones.

Every temporary mraa makes beside an output carries mraa's marker: its name starts with ``.mraa-tmp-``
(``.mraa-tmp-{stem}-XXXXXXXX{suffix}``, ``XXXXXXXX``: mkstemp's 8 random characters), and a temporary
*folder* also holds a ``.mraa-tmp-owner`` file that says mraa made it. Temporaries are locked (``flock``)
while in use. A run killed outright (SIGKILL, power loss) cannot remove its temporary; :func:`remove_stale_temps`
deletes such leftovers at the next start of a command in that folder, and nothing else: a user's
``.backup-20240101.tar`` or ``.venv-20240101/`` is never touched, and a folder without the owner file is
never deleted recursively.
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

from mraa.errors import MRAAError

log = logging.getLogger(__name__)

PROCESS_START = time.time()  # temporary files newer than this may belong to a run started with this one
TEMP_PREFIX = ".mraa-tmp-"  # the marker every temporary's name starts with
OWNER_NAME = ".mraa-tmp-owner"  # inside a temporary folder: the record that mraa made it
_OWNER_TEXT = "mraa temporary folder: removed when its run ends, or by the next run if that one was killed\n"
# ".mraa-tmp-{stem}-{8 mkstemp characters}" + optional "-audio" (VideoWriter's mux) + optional suffix
_TEMP_NAME = re.compile(r"^\.mraa-tmp-(?P<stem>.+)-[a-z0-9_]{8}(?:-audio)?(?P<suffix>\.[A-Za-z0-9]+)?$")


def temp_file(folder: str | os.PathLike, stem: str, suffix: str = "") -> Path:
    """Create an empty marked temporary file ``folder/.mraa-tmp-{stem}-XXXXXXXX{suffix}``."""
    fd, tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{stem}-", suffix=suffix, dir=folder)
    os.close(fd)
    return Path(tmp)


def temp_dir(folder: str | os.PathLike, stem: str) -> Path:
    """Create a marked temporary folder ``folder/.mraa-tmp-{stem}-XXXXXXXX`` holding its owner file."""
    path = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{stem}-", dir=folder))
    try:
        (path / OWNER_NAME).write_text(_OWNER_TEXT, encoding="utf-8")
    except OSError:
        path.rmdir()
        raise
    return path


def unmark_dir(path: str | os.PathLike) -> None:
    """Remove a temporary folder's owner file before the folder is renamed into place as an output."""
    (Path(path) / OWNER_NAME).unlink(missing_ok=True)


def is_marked_temp(entry: Path) -> bool:
    """True for a temporary mraa made: a marked name and, for a folder, mraa's owner file (or nothing) inside."""
    if _TEMP_NAME.match(entry.name) is None or entry.is_symlink():
        return False
    if not entry.is_dir():
        return entry.is_file()
    owner = entry / OWNER_NAME
    if owner.is_file() and not owner.is_symlink():
        with contextlib.suppress(OSError):
            return owner.read_text(encoding="utf-8") == _OWNER_TEXT
        return False
    return not any(entry.iterdir())  # killed between mkdtemp and the owner file: an empty folder


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


def remove_stale_temps(folder: str | os.PathLike, pattern: str = "*", any_age: bool = False) -> list[Path]:
    """Remove temporaries left in ``folder`` by interrupted atomic writes; return what was removed.

    Only mraa's marked temporaries (:func:`is_marked_temp`: ``.mraa-tmp-{stem}-XXXXXXXX{suffix}``, a folder
    only with mraa's owner file inside) whose output name (``stem``, with or without ``suffix``) matches the
    glob ``pattern``, last modified before this process started (unless ``any_age``) and not locked by a
    running writer are removed.
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
            fresh = not any_age and entry.lstat().st_mtime >= PROCESS_START
            if fresh or not is_marked_temp(entry) or _is_locked(entry):
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

    Raises:
        MRAAError: an ``OSError`` while writing (a full disk: "cannot write PATH: No space left on device").
    """
    path = Path(path)
    tmp = temp_file(path.parent, path.stem, path.suffix if suffix is None else suffix)
    lock = lock_temp(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:  # a full disk ("No space left on device"), a read-only folder
        tmp.unlink(missing_ok=True)
        raise MRAAError(f"cannot write {path}: {exc.strerror or exc}") from exc
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
