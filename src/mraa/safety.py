"""Output safety: refuse to write over an input, over another output of the same run, or into an input dataset.

Every command calls :func:`check_outputs` before it writes anything (and a batch loop calls it once per job).
Two paths are the same file when they resolve to the same path (symlinks followed) or, when both exist, when
``os.path.samefile`` says so (hard links). An output *inside* an input folder (a dataset, a frame folder) is
refused too, and so is an input inside an output folder that the run would replace.

Labels name the paths in messages: the library passes values (``"input"``), the CLI passes its flags
(``"--driving"``), so ``check_outputs(inputs={"--driving": d}, outputs={"--output": o})`` fails with
"--output out.mp4 is the same file as --driving out.mp4: refusing to overwrite an input".
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path

from mraa.atomic import _TEMP_NAME, remove_stale_temps
from mraa.errors import MRAAError

PathLike = str | os.PathLike
Paths = Mapping[str, PathLike | None] | Iterable[PathLike | None]


def _labelled(paths: Paths, default: str) -> list[tuple[str, Path]]:
    """(label, path) pairs; None entries (an option not given) are skipped."""
    if isinstance(paths, Mapping):
        items = paths.items()
    else:  # plain paths, or (label, path) pairs when several paths share a label (a batch's --driving)
        items = (p if isinstance(p, tuple) else (default, p) for p in paths)
    return [(label, Path(path)) for label, path in items if path is not None and str(path) != ""]


def _resolved(path: Path) -> Path:
    return Path(os.path.abspath(path)).resolve(strict=False)


def same_file(a: PathLike, b: PathLike) -> bool:
    """True when ``a`` and ``b`` name the same file (same resolved path, symlink or hard link)."""
    a, b = Path(a), Path(b)
    if _resolved(a) == _resolved(b):
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def is_inside(path: PathLike, folder: PathLike) -> bool:
    """True when ``path`` lies inside ``folder`` (after resolving both), not when they are equal."""
    path, folder = _resolved(Path(path)), _resolved(Path(folder))
    return path != folder and path.is_relative_to(folder)


def check_outputs(
    inputs: Paths = (),
    outputs: Paths = (),
    clean_temps: bool = True,
    nested_ok: bool = False,
    overwrite: bool | None = None,
) -> None:
    """Refuse outputs that would destroy inputs or each other; then remove stale temporaries of the outputs.

    Each path is resolved (and stat-ed) once and compared by dict lookups, so a batch of 10,000 pairs is
    checked in linear time.

    Args:
        inputs: paths read by the run (files or folders), optionally as ``{label: path}``.
        outputs: paths the run writes (files, or folders it creates or replaces), optionally labelled.
        clean_temps: remove the temporaries that interrupted earlier writes of these outputs left
            (see :func:`mraa.atomic.remove_stale_temps`).
        nested_ok: allow outputs inside input folders (for a reader that skips its own outputs).
        overwrite: False: refuse outputs that exist (the command's ``--overwrite`` was not given);
            None: the caller decides about existing outputs itself.

    Raises:
        MRAAError: an output is an input (or the same file under another name), two outputs are the same
            file or nested, an output lies inside an input folder, an input lies inside an output, or
            an output exists and ``overwrite`` is False.
    """
    ins = [_Entry(label, path) for label, path in dict.fromkeys(_labelled(inputs, "input"))]
    outs = [_Entry(label, path) for label, path in _labelled(outputs, "output")]
    in_files = _index(ins)
    in_folders = {entry.resolved: entry for entry in reversed(ins) if not entry.is_file}
    for out in outs:
        src = in_files.get(out.resolved) or in_files.get(out.inode)
        if src is not None:
            raise MRAAError(
                f"{out.label} {out.path} is the same file as {src.label} {src.path}: refusing to overwrite an input"
            )
        folder = None if nested_ok else _first_ancestor(out.resolved, in_folders)
        if folder is not None:
            raise MRAAError(
                f"{out.label} {out.path} is inside {folder.label} {folder.path}: "
                "refusing to write into an input folder"
            )
    out_folders = {entry.resolved: entry for entry in reversed(outs) if not entry.is_file}
    for src in ins:
        out = _first_ancestor(src.resolved, out_folders)
        if out is not None:
            raise MRAAError(
                f"{src.label} {src.path} is inside {out.label} {out.path}, which would be replaced: "
                "choose another output"
            )
    _check_outputs_apart(outs)
    if overwrite is False:
        existing = [out for out in outs if out.inode is not None or out.path.is_symlink()]
        if existing:
            more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
            out = existing[0]
            raise MRAAError(f"{out.label} {out.path} already exists{more}: pass --overwrite to replace it")
    if clean_temps:
        _clean_temps_of(outs)


class _Entry:
    """A labelled path, resolved and stat-ed once."""

    def __init__(self, label: str, path: Path) -> None:
        self.label, self.path = label, path
        self.resolved = _resolved(path)
        try:
            info = path.stat()
        except OSError:
            self.inode, self.is_file, self.is_dir = None, False, False
        else:
            self.inode = ("inode", info.st_dev, info.st_ino)  # hard links share it
            self.is_file, self.is_dir = stat.S_ISREG(info.st_mode), stat.S_ISDIR(info.st_mode)


def _index(entries: list[_Entry]) -> dict[object, _Entry]:
    """The first entry by resolved path and by inode (for the paths that exist)."""
    index: dict[object, _Entry] = {}
    for entry in entries:
        index.setdefault(entry.resolved, entry)
        if entry.inode is not None:
            index.setdefault(entry.inode, entry)
    return index


def _first_ancestor(path: Path, folders: Mapping[Path, _Entry]) -> _Entry | None:
    """The entry of the nearest folder that strictly contains ``path`` (resolved), if any."""
    if not folders:
        return None
    for parent in path.parents:
        if parent in folders:
            return folders[parent]
    return None


def _check_outputs_apart(outs: list[_Entry]) -> None:
    """No two outputs are the same file or nested."""
    seen: dict[object, _Entry] = {}
    for out in outs:
        for key in (out.resolved, out.inode):
            other = seen.get(key) if key is not None else None
            if other is not None and other is not out:
                raise MRAAError(
                    f"{other.label} and {out.label} are the same file ({other.path}): one would overwrite the other"
                )
        seen[out.resolved] = out
        if out.inode is not None:
            seen[out.inode] = out
    by_path = {out.resolved: out for out in reversed(outs)}
    for out in outs:
        outer = _first_ancestor(out.resolved, by_path)
        if outer is not None:
            raise MRAAError(
                f"{outer.label} {outer.path} and {out.label} {out.path} overlap: one is inside the other"
            )


def _clean_temps_of(outs: list[_Entry]) -> None:
    """:func:`clean_stale_temps` for the outputs that may have temporaries: each folder is listed once."""
    names_by_folder: dict[Path, set[str]] = {}
    for out in outs:
        parent = out.path.parent
        if parent not in names_by_folder:
            names_by_folder[parent] = _temp_output_names(parent)
        names = names_by_folder[parent]
        if out.is_dir or out.path.stem in names or out.path.name in names:
            clean_stale_temps(out.path)


def _temp_output_names(folder: Path) -> set[str]:
    """The output names (stem, and stem with suffix) of the temporaries in ``folder``."""
    names: set[str] = set()
    try:
        entries = os.listdir(folder)
    except OSError:
        return names
    for name in entries:
        match = _TEMP_NAME.match(name)
        if match is not None:
            names.update((match["stem"], match["stem"] + (match["suffix"] or "")))
    return names


def clean_stale_temps(output: PathLike) -> list[Path]:
    """Remove what interrupted writes of ``output`` left: its temporaries beside it and, for an output
    folder, the temporaries inside it."""
    output = Path(output)
    removed: list[Path] = []
    for stem in dict.fromkeys((output.stem, output.name)):
        removed += remove_stale_temps(output.parent, _glob_escape(stem))
    if output.is_dir():
        removed += remove_stale_temps(output)
    return removed


def _glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)
