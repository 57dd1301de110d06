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
from collections.abc import Iterable, Mapping
from pathlib import Path

from mraa.atomic import remove_stale_temps
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
    ins = _labelled(inputs, "input")
    outs = _labelled(outputs, "output")
    for out_label, out in outs:
        for in_label, src in ins:
            if same_file(out, src):
                raise MRAAError(
                    f"{out_label} {out} is the same file as {in_label} {src}: refusing to overwrite an input"
                )
            if not nested_ok and not src.is_file() and is_inside(out, src):
                raise MRAAError(
                    f"{out_label} {out} is inside {in_label} {src}: refusing to write into an input folder"
                )
            if not out.is_file() and is_inside(src, out):
                raise MRAAError(
                    f"{in_label} {src} is inside {out_label} {out}, which would be replaced: "
                    "choose another output"
                )
    for i, (label_a, a) in enumerate(outs):
        for label_b, b in outs[i + 1 :]:
            if same_file(a, b):
                raise MRAAError(
                    f"{label_a} and {label_b} are the same file ({a}): one would overwrite the other"
                )
            if is_inside(a, b) or is_inside(b, a):
                raise MRAAError(f"{label_a} {a} and {label_b} {b} overlap: one is inside the other")
    if overwrite is False:
        existing = [(label, out) for label, out in outs if out.exists() or out.is_symlink()]
        if existing:
            label, out = existing[0]
            more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
            raise MRAAError(f"{label} {out} already exists{more}: pass --overwrite to replace it")
    if clean_temps:
        for _, out in outs:
            clean_stale_temps(out)


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
