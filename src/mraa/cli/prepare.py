"""``mraa prepare``: build a training dataset of person-centred chunks from raw videos."""

from __future__ import annotations

import argparse
from pathlib import Path

DESCRIPTION = """\
Cut raw videos into training chunks the way the paper built TED-talks: split at camera cuts,
follow the main person, keep stretches where they are visible and tall enough, split where they
move too far, crop a square around them at a fixed scale and resize it. Writes DATASET/train/,
DATASET/test/ (split by source video), manifest.csv and summary.json. Rerunning resumes.
Needs: pip install 'mraa[detect]'."""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from mraa.data.prepare.options import PrepareOptions

    defaults = PrepareOptions()
    parser = subparsers.add_parser(
        "prepare",
        help="make a training dataset (train/ and test/ chunks) from raw videos",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--input", "-i", nargs="+", required=True, metavar="PATH",
        help="video files, frame folders, or folders searched recursively for videos",
    )  # fmt: skip
    parser.add_argument(
        "--output", "-o", required=True, metavar="DATASET", help="dataset folder to create or resume"
    )
    _add_box_arguments(parser, defaults)
    _add_filter_arguments(parser, defaults)
    _add_output_arguments(parser, defaults)
    parser.set_defaults(func=run)


def _add_box_arguments(parser: argparse.ArgumentParser, defaults) -> None:
    group = parser.add_argument_group("person boxes")
    group.add_argument(
        "--detector", default=None, metavar="NAME",
        help="person detector: haar-upperbody (default), hog, or boxes (the default when --boxes is given)",
    )  # fmt: skip
    group.add_argument(
        "--boxes", metavar="DIR",
        help="precomputed boxes: DIR/<video name>.json {\"frames\": {\"0\": [x0,y0,x1,y1], ...}} "
        "or DIR/<video name>.csv with rows frame,x0,y0,x1,y1",
    )  # fmt: skip
    group.add_argument(
        "--detect-every", type=int, default=defaults.detect_every, metavar="N",
        help="look for the person on every N-th frame and interpolate in between (default %(default)s)",
    )  # fmt: skip
    group.add_argument(
        "--max-gap", type=int, default=None, metavar="FRAMES",
        help="longest stretch interpolated between two boxes (default 2 x --detect-every)",
    )  # fmt: skip


def _add_filter_arguments(parser: argparse.ArgumentParser, defaults) -> None:
    group = parser.add_argument_group("filters and chunks")
    group.add_argument(
        "--min-frames", type=int, default=defaults.min_frames,
        help="shortest chunk kept, in frames (default %(default)s)",
    )  # fmt: skip
    group.add_argument(
        "--min-person-height", type=float, default=defaults.min_person_height, metavar="PX",
        help="smallest person box height in source pixels (default %(default)g)",
    )  # fmt: skip
    group.add_argument(
        "--max-shift", type=float, default=defaults.max_shift, metavar="FRACTION",
        help="start a new chunk when the person moved this fraction of their height (default %(default)s)",
    )  # fmt: skip
    group.add_argument(
        "--max-scale-change", type=float, default=defaults.max_scale_change, metavar="FRACTION",
        help="start a new chunk when the person's height changed by this fraction (default %(default)s)",
    )  # fmt: skip
    group.add_argument(
        "--crop-scale", type=float, default=defaults.crop_scale,
        help="square side as a multiple of the person's box (default %(default)s)",
    )  # fmt: skip
    group.add_argument(
        "--size", type=int, default=defaults.size, metavar="PX",
        help="output frame size; smaller crops are dropped, not upscaled (default %(default)s)",
    )  # fmt: skip
    group.add_argument(
        "--shot-threshold", type=float, default=defaults.shot_threshold,
        help="PySceneDetect content threshold for cuts; 0 turns cut detection off (default %(default)s)",
    )  # fmt: skip
    group.add_argument(
        "--min-shot-frames", type=int, default=defaults.min_shot_frames,
        help="shortest shot between two cuts (default %(default)s)",
    )  # fmt: skip


def _add_output_arguments(parser: argparse.ArgumentParser, defaults) -> None:
    group = parser.add_argument_group("output")
    group.add_argument(
        "--test-fraction", type=float, default=defaults.test_fraction,
        help="fraction of the kept source videos that go to test/ (default %(default)s)",
    )  # fmt: skip
    group.add_argument("--seed", type=int, default=defaults.seed, help="seed of the train/test split")
    group.add_argument(
        "--format", choices=("mp4", "png"), default=defaults.format,
        help="chunks as mp4 files or folders of png frames (default %(default)s)",
    )  # fmt: skip
    group.add_argument(
        "--workers", type=int, default=1, metavar="N",
        help="process N videos in parallel (separate processes; default %(default)s)",
    )  # fmt: skip
    group.add_argument("--no-progress", action="store_true", help="hide the progress bars")


def run(args: argparse.Namespace) -> int:
    from mraa.data.prepare.options import PrepareOptions
    from mraa.data.prepare.pipeline import prepare_dataset
    from mraa.errors import MRAAError
    from mraa.safety import check_outputs

    detector = args.detector or ("boxes" if args.boxes else PrepareOptions.detector)
    if args.boxes and detector != "boxes":
        raise MRAAError(f"--boxes gives precomputed boxes; it cannot be combined with --detector {detector}")
    options = PrepareOptions(
        min_frames=args.min_frames,
        min_person_height=args.min_person_height,
        max_shift=args.max_shift,
        max_scale_change=args.max_scale_change,
        crop_scale=args.crop_scale,
        size=args.size,
        detector=detector,
        boxes_dir=args.boxes,
        detect_every=args.detect_every,
        max_gap=args.max_gap,
        shot_threshold=args.shot_threshold,
        min_shot_frames=args.min_shot_frames,
        test_fraction=args.test_fraction,
        seed=args.seed,
        format=args.format,
    )
    if args.workers < 1:
        raise MRAAError(f"--workers must be at least 1, got {args.workers}")
    output = Path(args.output)
    if output.exists() and not output.is_dir():
        raise MRAAError(f"--output {output} is a file, not a dataset folder")
    if args.boxes and not Path(args.boxes).is_dir():
        raise MRAAError(f"--boxes folder not found: {args.boxes}")
    options.validate()
    # the dataset may sit inside an input folder (its chunks are not read back), but no input may be,
    # or lie inside, what the run writes
    written = {f"--output {name}": output / name for name in ("train", "test", "analysis", "manifest.csv")}
    check_outputs(inputs={f"--input {path}": path for path in args.input}, outputs=written, nested_ok=True)
    summary = prepare_dataset(
        args.input, args.output, options, progress=not args.no_progress, workers=args.workers
    )
    print(summary.describe())
    return 0
