"""``mraa animate``: animate still images with driving videos, one pair or a batch of pairs."""

from __future__ import annotations

import argparse
import csv
import glob
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mraa.cli._common import add_model_arguments, check_output_path, load_animator
from mraa.cli.crop import add_framing_arguments, dry_run, print_model_note

if TYPE_CHECKING:
    from mraa.inference.pipeline import AnimateOptions, AnimateResult

log = logging.getLogger(__name__)

BACKGROUND_HELP = (
    "background motion: still (default, as in the paper), left[:SPEED] / right[:SPEED] (SPEED in [-1,1] image "
    "units per frame, default 0.01), rotate[:DEG] (counter-clockwise degrees per frame, default 0.5), driving (the "
    "camera motion the bg predictor estimates from the driving video), six numbers a,b,c,d,e,f (a fixed 2x3 affine "
    "from output to source coordinates), or a .npy/.txt file of per-frame 2x3 matrices"
)
SMOOTH_HELP = (
    "temporal smoothing of the driving regions: none (default), ema:ALPHA (weight of the new frame, causal), "
    "one-euro[:MIN_CUTOFF,BETA] (causal, adaptive; default 0.05,1), savgol:WINDOW[,ORDER] (odd window, "
    "delays each frame by WINDOW//2). See docs/smoothing.md"
)


@dataclass
class Job:
    """One source/driving pair to animate (``mode``/``crop`` None: the command's options)."""

    source: Path
    driving: Path
    output: Path
    mode: str | None = None
    crop: str | None = None


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "animate",
        help="animate source images with the motion of driving videos",
        description="Animate the object in --source with the motion of --driving and write a video with the "
        "driving video's frame rate and audio. Several sources and/or drivings (files, folders, globs) with "
        "--output FOLDER, or --pairs FILE.csv, animate every pair: the model loads once, each source is "
        "encoded once, existing outputs are skipped unless --overwrite, and a summary ends the run.",
    )
    parser.add_argument("--source", nargs="+", help="source image(s), folder(s) of images or glob(s)")
    parser.add_argument(
        "--driving",
        nargs="+",
        help="driving video(s) (mp4, mov, webm, gif; a folder of frames is one video), folder(s) of videos or "
        "glob(s)",
    )
    parser.add_argument(
        "--output",
        help="output video (.mp4 H.264 by default; .webm, .mov, .gif), or a folder for several pairs "
        "(files named SOURCE__DRIVING.mp4)",
    )
    parser.add_argument(
        "--pairs",
        metavar="CSV",
        help="CSV with columns source, driving, output and optional mode, crop (relative paths are relative "
        "to the CSV's folder; an empty output goes to --output FOLDER)",
    )
    parser.add_argument("--overwrite", action="store_true", help="redo pairs whose output exists (batches)")
    add_model_arguments(parser)
    _add_animation_arguments(parser)
    parser.set_defaults(func=run)


def _add_animation_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--mode",
        choices=("standard", "relative", "avd"),
        help="standard: driving regions as they are; relative: driving motion applied relative to its first "
        "frame; avd: shape-pose disentanglement network (default: avd if the checkpoint has a trained AVD "
        "network, else relative)",
    )
    parser.add_argument("--background", default="still", help=BACKGROUND_HELP)
    parser.add_argument(
        "--still-background",
        choices=("identity", "source"),
        help="what a still background is: identity (the official behaviour) or source (the background "
        "predictor's output for the source and itself; the other --background motions apply on top). "
        "Default: the config's animate_params.still_background (source for the shipped model)",
    )
    parser.add_argument("--smooth", default="none", help=SMOOTH_HELP)
    parser.add_argument(
        "--backend",
        choices=("torch", "onnxruntime"),
        default="torch",
        help="torch (default) or onnxruntime (CPU; the networks exported to ONNX, needs the onnx extra; "
        "results equal torch's up to float rounding, largest per-pixel difference 1.2e-4 on the shipped "
        "sample, at most one 8-bit level; speed: see docs/benchmarks.md)",
    )
    parser.add_argument(
        "--onnx-dir",
        metavar="DIR",
        help="with --backend onnxruntime: a folder from `mraa export --format onnx` (reused), or where to "
        "export the graphs (default: a temporary folder)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        help="driving frames per batch (default: 1 on CPU, where larger batches measured slower; 8 on CUDA, 4 on MPS)",
    )
    parser.add_argument(
        "--precision",
        choices=("fp32", "bf16", "fp16"),
        default="fp32",
        help="generator precision: fp32 (default, matches the official outputs), bf16 autocast (CUDA, or a "
        "CPU with native bfloat16: AVX-512 or AVX-NE-CONVERT) or fp16 autocast (CUDA); faster, but outputs "
        "differ beyond the parity tolerance",
    )
    parser.add_argument(
        "--compile", action="store_true", help="torch.compile the generator (CUDA; slow first batch)"
    )
    parser.add_argument("--fps", type=float, help="output frame rate (default: the driving video's)")
    add_framing_arguments(parser)
    parser.add_argument(
        "--visualize",
        nargs="?",
        const="",
        metavar="PATH",
        help="also write a side-by-side video (source with regions | driving with regions | result, each "
        "panel enlarged to at least 256 px tall); default path: OUTPUT with a _visualization suffix (PATH only for a single pair)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


# ----------------------------------------------------------------------------- planning
def _expand(values: list[str], kind: str) -> list[Path]:
    """Files named by paths, folders and globs; a folder of frames is one driving video."""
    from mraa.data.video_io import IMAGE_SUFFIXES, VIDEO_SUFFIXES
    from mraa.errors import MRAAError

    suffixes = IMAGE_SUFFIXES if kind == "source" else VIDEO_SUFFIXES
    paths: list[Path] = []
    for value in values:
        path = Path(value)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
            if kind == "driving" and not found:
                found = [path]  # a folder of frames (or an empty folder, which fails clearly later)
            if not found:
                raise MRAAError(f"no {kind} images in folder {path}")
            paths += found
        elif not path.exists() and glob.has_magic(value):
            matches = sorted(Path(p) for p in glob.glob(value))
            if not matches:
                raise MRAAError(f"--{kind} {value!r} matches no files")
            paths += matches
        elif not path.exists():
            raise MRAAError(f"{kind} not found: {value}")
        else:
            paths.append(path)
    return paths


def _read_pairs(csv_path: Path, output_dir: Path | None) -> list[Job]:
    from mraa.errors import MRAAError

    if not csv_path.is_file():
        raise MRAAError(f"--pairs file not found: {csv_path}")
    try:  # utf-8-sig: a byte-order mark (as spreadsheet programs write) is not part of the first column name
        with open(csv_path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise MRAAError(f"--pairs {csv_path} is not a UTF-8 CSV file ({exc})") from None
    jobs = []
    for line, row in enumerate(rows, start=2):
        if None in row:  # DictReader files the fields beyond the header under None
            raise MRAAError(
                f"--pairs {csv_path} line {line}: {len(row) - 1 + len(row[None])} fields but the header names "
                f"{len(row) - 1} columns (quote values that hold commas)"
            )
        row = {k.strip().lower(): (v or "").strip() for k, v in row.items()}
        if not row.get("source") or not row.get("driving"):
            raise MRAAError(f"--pairs {csv_path} line {line}: needs the columns source and driving")
        source, driving = csv_path.parent / row["source"], csv_path.parent / row["driving"]
        if row.get("output"):
            output = csv_path.parent / row["output"]
        elif output_dir is not None:
            output = output_dir / f"{source.stem}__{driving.stem}.mp4"
        else:
            raise MRAAError(f"--pairs {csv_path} line {line}: no output (add the column or --output FOLDER)")
        crop = _parse_crop(row["crop"], f"--pairs line {line} crop") if row.get("crop") else None
        if row.get("mode") and row["mode"] not in ("standard", "relative", "avd"):
            raise MRAAError(f"--pairs {csv_path} line {line}: unknown mode {row['mode']!r}")
        jobs.append(Job(source, driving, output, row.get("mode") or None, crop))
    if not jobs:
        raise MRAAError(f"--pairs {csv_path} lists no pairs")
    return jobs


def _parse_crop(text: str, name: str) -> str:
    from mraa.errors import MRAAError
    from mraa.framing import crop_option

    try:
        return crop_option(text)
    except MRAAError as exc:
        raise MRAAError(f"{name}: {exc}") from exc


def plan_jobs(args: argparse.Namespace) -> tuple[list[Job], bool]:
    """The pairs to animate and whether this is a batch (True) or today's single-pair run (False)."""
    from mraa.errors import MRAAError

    if args.pairs:
        if args.source or args.driving:
            raise MRAAError("--pairs replaces --source and --driving: give one or the other")
        output_dir = Path(args.output) if args.output else None
        jobs = _read_pairs(Path(args.pairs), output_dir)
        if output_dir is not None:
            output_dir.mkdir(parents=True, exist_ok=True)
        return jobs, True
    if not args.source or not args.driving or not args.output:
        raise MRAAError("give --source, --driving and --output (or --pairs FILE.csv)")
    sources, drivings = _expand(args.source, "source"), _expand(args.driving, "driving")
    output = Path(args.output)
    if len(sources) * len(drivings) == 1 and not output.is_dir():
        return [Job(sources[0], drivings[0], output)], False
    if output.suffix and not output.is_dir():
        raise MRAAError(f"{len(sources) * len(drivings)} pairs need --output to be a folder, got {output}")
    output.mkdir(parents=True, exist_ok=True)
    drivings = _not_outputs(drivings, sources, output)
    jobs = [Job(s, d, output / f"{s.stem}__{d.stem}.mp4") for s in sources for d in drivings]
    return jobs, True


def _not_outputs(drivings: list[Path], sources: list[Path], output: Path) -> list[Path]:
    """The drivings less this batch's own results (``SOURCE__DRIVING.mp4`` and their visualisations in
    ``output``): a batch writing into its input folder resumes instead of animating its results."""
    stems = {f"{s.stem}__{d.stem}" for s in sources for d in drivings}
    names = {f"{stem}.mp4" for stem in stems} | {f"{stem}_visualization.mp4" for stem in stems}
    folder = output.resolve()
    return [d for d in drivings if d.name not in names or d.parent.resolve() != folder]


def check_jobs(jobs: list[Job], batch: bool, visualize: str | None, extra: dict | None = None) -> None:
    """Outputs that collide, overwrite an input, or cannot be written fail before the model loads."""
    from mraa.errors import MRAAError
    from mraa.inference.pipeline import visualization_path
    from mraa.safety import check_outputs

    if batch and visualize:
        raise MRAAError("--visualize PATH is for a single pair; use --visualize alone in a batch")
    outputs: list[tuple[str, Path]] = []
    for job in jobs:
        outputs.append(("--output", check_output_path(job.output)))
        if visualize is not None:
            outputs.append(("--visualize", check_output_path(visualization_path(job.output, visualize))))
    outputs += [(label, path) for label, path in (extra or {}).items() if path is not None]
    inputs = list(
        dict.fromkeys(item for job in jobs for item in (("--source", job.source), ("--driving", job.driving)))
    )
    # same file (also through symlinks and hard links), colliding outputs, outputs inside a frame folder
    check_outputs(inputs=inputs, outputs=outputs)


# ----------------------------------------------------------------------------- running
def _options(args: argparse.Namespace) -> AnimateOptions:
    """The validated options shared by every pair (an :class:`mraa.inference.pipeline.AnimateOptions`)."""
    from mraa.animate import background_schedule, resolve_device
    from mraa.data.video_io import check_fps
    from mraa.errors import MRAAError
    from mraa.inference.pipeline import AnimateOptions
    from mraa.smoothing import parse_smoothing

    if args.batch_size is not None and args.batch_size < 1:
        raise MRAAError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.fps is not None:
        check_fps(args.fps, "--fps")
    resolve_device(args.device)
    try:
        background = background_schedule(args.background)
    except MRAAError as exc:
        raise MRAAError(f"--background: {exc}") from exc
    try:
        smooth = parse_smoothing(args.smooth)
    except MRAAError as exc:
        raise MRAAError(f"--smooth: {exc}") from exc
    return AnimateOptions(
        mode=args.mode, background=background, crop=args.crop, smooth=smooth, fps=args.fps,
        visualize=args.visualize, progress=not args.quiet, paste_back=args.paste_back,
        output_size=args.output_size, best_frame=args.best_frame, crop_preview=args.crop_preview,
    )  # fmt: skip


def _animate_job(animator, job: Job, options: AnimateOptions, state=None) -> AnimateResult:
    """One pair through the file pipeline, with the pair's own mode and crop when the CSV gives them."""
    from mraa.inference.pipeline import animate_file

    crop = options.crop if job.crop is None else job.crop
    source = state if state is not None else job.source
    mode = job.mode or options.mode
    return animate_file(animator, source, job.driving, job.output, options, mode=mode, crop=crop)


def extra_outputs(args: argparse.Namespace) -> dict[str, Path]:
    """--crop-preview and the files --onnx-dir may receive: checked against every input with the outputs."""
    extra = {}
    if args.crop_preview:
        from mraa.framing.run import check_preview_path

        extra["--crop-preview"] = check_output_path(check_preview_path(args.crop_preview))
    if args.onnx_dir:
        from mraa.export.manifest import MANIFEST_NAME
        from mraa.export.onnx import GRAPHS

        names = [*(f"{g}.onnx" for g in GRAPHS), MANIFEST_NAME]
        extra.update({f"--onnx-dir {name}": Path(args.onnx_dir) / name for name in names})
    return extra


def _describe(result) -> str:
    return f"{result.frames} frames, {result.fps:g} fps{', with audio' if result.has_audio else ''}"


def run(args: argparse.Namespace) -> int:
    options = _options(args)
    jobs, batch = plan_jobs(args)
    check_jobs(jobs, batch, args.visualize, extra_outputs(args))
    if not batch:
        from mraa.inference.pipeline import probe_driving

        probe_driving(jobs[0].driving)  # an unreadable driving video fails before the model loads
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # under torchrun: each process takes its share
        return run_shared(args, jobs, options)
    if args.dry_run:
        return dry_run(args, jobs)
    animator = load_animator(args, batch_size=args.batch_size)
    _announce(args, animator, jobs, options)
    if not batch:
        result = _animate_job(animator, jobs[0], options)
        print(f"wrote {result.output} ({_describe(result)})")
        if result.visualization is not None:
            print(f"wrote {result.visualization}")
        return 0
    return run_batch(animator, jobs, args, options)


def _announce(args: argparse.Namespace, animator, jobs: list[Job], options: AnimateOptions) -> None:
    """The model note and the line about mode, background and smoothing."""
    from mraa.framing import default_mode_for

    print_model_note(args, jobs)
    mode = args.mode or default_mode_for(animator, jobs[0].source)
    why = " (default for this checkpoint)" if mode == animator.default_mode() else " (default for a photo)"
    if mode == "avd" and not animator.has_trained_avd:
        log.warning("the checkpoint has no trained AVD network: mode avd will give poor results")
    reference = "" if animator.still_background == "identity" else " (relative to the source's own estimate)"
    smooth = "" if options.smooth.kind == "none" else f"; smoothing: {options.smooth}"
    print(f"mode: {mode}{'' if args.mode else why}; background: {args.background}{reference}{smooth}")


def run_shared(args: argparse.Namespace, jobs: list[Job], options: AnimateOptions) -> int:
    """The batch under ``torchrun``: process RANK of WORLD_SIZE animates pairs RANK, RANK + WORLD_SIZE, ...
    on its own device (``cuda:LOCAL_RANK`` on CUDA, else the CPU); rank 0 prints the one summary. Every
    process has checked all outputs before the process group starts, so no pair is written twice."""
    from mraa.training.distributed import cleanup_distributed, init_distributed

    info = init_distributed(args.device)
    try:
        if args.dry_run:
            return dry_run(args, jobs) if info.is_main else 0
        args.device = str(info.device)
        animator = load_animator(args, batch_size=args.batch_size, announce=info.is_main)
        if info.is_main:
            _announce(args, animator, jobs, options)
        return run_batch(animator, jobs, args, options, info.rank, info.world_size)
    finally:
        cleanup_distributed(info)


class SourceCache:
    """Encoded sources by (path, crop), so each source is encoded once for all its drivings."""

    def __init__(self, animator, size: int = 8) -> None:
        self.animator, self.size = animator, size
        self.states: dict[tuple[Path, bool], object] = {}

    def get(self, path: Path, crop: str, args: argparse.Namespace | None = None):
        """The encoded source, or None when the pair needs framing (mraa.framing reads the source itself)."""
        from mraa.framing import needs_framing

        extra = (
            (args.paste_back, args.output_size, args.best_frame, args.crop_preview is not None)
            if args
            else ()
        )
        framing, center = needs_framing(self.animator, crop, *extra, source=path)
        if framing is not None:
            return None
        key = (path.resolve(), center)
        if key not in self.states:
            if len(self.states) >= self.size:
                self.states.pop(next(iter(self.states)))
            self.states[key] = self.animator.encode_source(path, crop=center)
        return self.states[key]


def run_batch(
    animator,
    jobs: list[Job],
    args: argparse.Namespace,
    options: AnimateOptions,
    rank: int = 0,
    world_size: int = 1,
) -> int:
    """Animate every pair (under torchrun: this process's share); a failing pair is reported in one line
    and the others go on; one summary at the end (on rank 0, counting every process's pairs)."""
    cache = SourceCache(animator)
    counts = {"done": 0, "skipped": 0, "failed": 0}
    start = time.perf_counter()
    worked = 0.0  # seconds spent on animated pairs, for the ETA
    mine = [(index, job) for index, job in enumerate(jobs, start=1) if (index - 1) % world_size == rank]
    for position, (index, job) in enumerate(mine, start=1):
        prefix = f"[{index}/{len(jobs)}] {job.source.name} x {job.driving.name}"
        if job.output.exists() and not args.overwrite:
            counts["skipped"] += 1
            print(f"{prefix}: skipped, {job.output} exists (--overwrite to redo it)")
            continue
        began = time.perf_counter()
        try:
            state = cache.get(job.source, args.crop if job.crop is None else job.crop, args)
            result = _animate_job(animator, job, options, state)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # one pair's failure (bad file, or a bug) must not stop the batch
            counts["failed"] += 1
            print(f"{prefix}: failed: {exc.__class__.__name__ + ': ' if not _is_user_error(exc) else ''}{exc}",
                  file=sys.stderr)  # fmt: skip
            continue
        counts["done"] += 1
        worked += time.perf_counter() - began
        left = len(mine) - position  # pairs not yet tried (an upper bound: some may be skipped)
        eta = f", about {worked / counts['done'] * left:.0f} s left" if left else ""
        print(f"{prefix}: wrote {result.output} ({_describe(result)}, {result.seconds:.1f} s{eta})")
    elapsed = time.perf_counter() - start
    counts, elapsed = _gather(counts, elapsed, world_size)
    processes = f" on {world_size} processes" if world_size > 1 else ""
    if rank == 0:
        print(f"summary: {counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed "
              f"({len(jobs)} pairs in {elapsed:.1f} s{processes})")  # fmt: skip
    return 1 if counts["failed"] else 0


def _gather(counts: dict[str, int], elapsed: float, world_size: int) -> tuple[dict[str, int], float]:
    """Every process's counts summed and the longest time (torch.distributed; unchanged in one process)."""
    if world_size == 1:
        return counts, elapsed
    import torch.distributed as dist

    gathered: list = [None] * world_size
    dist.all_gather_object(gathered, (counts, elapsed))
    total = {key: sum(part[0][key] for part in gathered) for key in counts}
    return total, max(part[1] for part in gathered)


def _is_user_error(exc: Exception) -> bool:
    from mraa.errors import MRAAError

    return isinstance(exc, (MRAAError, OSError))
