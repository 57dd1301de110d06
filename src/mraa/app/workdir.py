"""The app's own folder for results: made and marked by the app, the only place it prunes and serves.

``mraa app --work-dir DIR`` writes into ``DIR/.mraa-app/`` (created with a ``.mraa-app-owner`` file), never
into DIR itself: a user's ``DIR/run-foo/`` or ``DIR/notes.txt`` is neither removed nor served. Each result
lives in a ``run-XXXXXXXXXXXX`` folder holding a ``.mraa-run`` file; pruning removes only such folders.
Without ``--work-dir`` the folder is a fresh, marked one in the system's temporary folder, removed on exit.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path

from mraa.errors import MRAAError

log = logging.getLogger(__name__)

APP_FOLDER = ".mraa-app"  # inside --work-dir
OWNER_NAME = ".mraa-app-owner"
RUN_OWNER_NAME = ".mraa-run"
_OWNER_TEXT = "made by mraa's app: its result folders; the app prunes old ones\n"
_RUN_NAME = re.compile(r"^run-[0-9a-f]{12}$")


def _is_marked(folder: Path, name: str) -> bool:
    owner = folder / name
    if folder.is_symlink() or not folder.is_dir() or owner.is_symlink() or not owner.is_file():
        return False
    try:
        return owner.read_text(encoding="utf-8") == _OWNER_TEXT
    except (OSError, UnicodeDecodeError):
        return False


def _mark(folder: Path, name: str) -> None:
    (folder / name).write_text(_OWNER_TEXT, encoding="utf-8")


def open_work_dir(work_dir: str | os.PathLike | None) -> Path:
    """The app's marked folder: ``work_dir/.mraa-app`` (made when missing), or a new temporary one.

    Raises:
        MRAAError: ``work_dir`` is a file, or its ``.mraa-app`` exists but was not made by the app.
    """
    if work_dir is None:
        folder = Path(tempfile.mkdtemp(prefix="mraa-app-"))
        _mark(folder, OWNER_NAME)
        return folder
    parent = Path(work_dir)
    if parent.exists() and not parent.is_dir():
        raise MRAAError(f"--work-dir {parent} is a file, not a folder")
    folder = parent / APP_FOLDER
    try:
        parent.mkdir(parents=True, exist_ok=True)
        if not folder.exists() and not folder.is_symlink():
            folder.mkdir()
            _mark(folder, OWNER_NAME)
    except OSError as exc:
        raise MRAAError(f"cannot make the app's folder {folder}: {exc.strerror or exc}") from exc
    if not _is_marked(folder, OWNER_NAME):
        raise MRAAError(
            f"{folder} exists but was not made by mraa's app: move it or choose another --work-dir"
        )
    return folder


def remove_work_dir(folder: Path) -> None:
    """Remove the app's folder (a temporary one) if it is marked as the app's."""
    if _is_marked(folder, OWNER_NAME):
        shutil.rmtree(folder, ignore_errors=True)


def new_run_dir(folder: Path, keep: int) -> Path:
    """A new marked ``run-XXXXXXXXXXXX`` folder in the app's folder, after removing the oldest of the app's
    own run folders so that at most ``keep`` remain with the new one."""
    runs = sorted(
        (p for p in folder.iterdir() if _RUN_NAME.match(p.name) and _is_marked(p, RUN_OWNER_NAME)),
        key=lambda p: p.stat().st_mtime,
    )
    for old in runs[: max(0, len(runs) - keep + 1)]:
        shutil.rmtree(old, ignore_errors=True)
    run = folder / f"run-{uuid.uuid4().hex[:12]}"
    run.mkdir()
    _mark(run, RUN_OWNER_NAME)
    return run
