"""Atomic file writing: write to a temporary file in the target folder, then rename it into place.

An interrupted or failed write never leaves a half-written output (the temporary file is removed), and a
reader never sees a partial file. Outputs get ordinary permissions (0644), not mkstemp's private ones.
"""

from __future__ import annotations

import fnmatch
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# what atomic_path's temporary files are called: "." + stem + "-" + 8 characters of mkstemp + suffix
_TEMP_NAME = re.compile(r"^\.(?P<stem>.+)-[a-z0-9_]{8}(?P<suffix>\.[^.]*)?$")


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
    try:
        yield tmp
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (UTF-8, newlines as given)."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
    return Path(path)


def remove_stale_temps(folder: str | os.PathLike, pattern: str = "*") -> list[Path]:
    """Delete the temporary files that interrupted :func:`atomic_path` writes left in ``folder``.

    A process killed mid-write (SIGKILL, power loss) cannot remove its ``.{stem}-XXXXXXXX{suffix}`` file;
    call this when a command starts again in the same folder. Only temporaries of outputs whose name
    matches ``pattern`` (e.g. ``"*.pth"``) are removed; do not call it while another writer uses the folder.

    Returns:
        The removed paths.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for path in sorted(folder.iterdir()):
        match = _TEMP_NAME.match(path.name)
        if match is None or not path.is_file() or path.is_symlink():
            continue
        if fnmatch.fnmatchcase(match["stem"] + (match["suffix"] or ""), pattern):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
