"""``mraa swap``: give chosen parts of the driving video the appearance of a source image (part swap)."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from mraa.cli._common import (
    add_model_arguments,
    check_output_path,
    driving_frames,
    load_animator,
    load_source,
)

log = logging.getLogger(__name__)

EPILOG = """\
how it works: the source is animated with the driving motion (--mode, default standard: the driving
regions as they are, so the animated parts sit where the driving frame's parts are), and composited into
each driving frame through that frame's soft masks of the chosen parts (optionally feathered):
    result = mask * animated + (1 - mask) * driving
Part k is label k of `mraa segment` (0 is the background). Run with --pick first to see the parts.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "swap",
        help="part swap: put the source's appearance on chosen parts of the driving video",
        description="Produce the driving video with the chosen parts showing the appearance of --source. "
        "The output has the driving video's frame rate and keeps its audio.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--source", required=True, help="source image whose appearance is copied")
    parser.add_argument(
        "--driving", required=True, help="driving video (mp4, mov, webm, gif, or a folder of frames)"
    )
    parser.add_argument(
        "--parts",
        help="parts to swap: 1-based indices as in `mraa segment` labels, e.g. 1,3 or 2-4, or all",
    )
    parser.add_argument(
        "--output",
        help="output video (.mp4 H.264 by default; .webm, .mov, .gif), at least 256 px tall (smaller model "
        "frames are enlarged, bilinear)",
    )
    parser.add_argument(
        "--pick",
        nargs="?",
        const="",
        metavar="PATH",
        help="only show the parts: write the segmentation of the source and of the first driving frame with "
        "part indices to PATH (default: OUTPUT with a _parts.png suffix, or swap_parts.png), print a "
        "table of the parts and exit",
    )
    add_model_arguments(parser)
    parser.add_argument(
        "--feather", type=float, default=0.0, metavar="PX", help="blur the masks by a Gaussian of PX pixels"
    )
    parser.add_argument(
        "--mode",
        choices=("standard", "relative", "avd"),
        default="standard",
        help="animation mode for the source (default standard, which lines the parts up with the driving "
        "frame; see `mraa animate --help`)",
    )
    _add_mask_and_run_arguments(parser)
    parser.set_defaults(func=run)


def _add_mask_and_run_arguments(parser: argparse.ArgumentParser) -> None:
    """How the driving frames are segmented (--threshold, --labels) and run (--batch-size, --fps, ...)."""
    parser.add_argument(
        "--threshold",
        type=float,
        default=0.001,
        help="background threshold of the driving frames' segmentation (default 0.001)",
    )
    parser.add_argument(
        "--labels",
        metavar="PATH",
        help="use these label maps instead of segmenting the driving frames: one label PNG for every frame, "
        "or a folder with one per frame (as `mraa segment` writes them, e.g. after editing); they must "
        "have the model's size",
    )
    parser.add_argument("--batch-size", type=int, default=4, help="driving frames per batch (default 4)")
    parser.add_argument("--fps", type=float, help="output frame rate (default: the driving video's)")
    parser.add_argument(
        "--crop", action="store_true", help="centre-crop inputs to the model's aspect ratio first"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def pick_path(args: argparse.Namespace) -> Path:
    if args.pick:
        return Path(args.pick)
    if args.output:
        output = Path(args.output)
        return output.with_name(f"{output.stem}_parts.png")
    return Path("swap_parts.png")


def read_label_map(path: Path, size: tuple[int, int], num_parts: int):
    """A label PNG as an int64 tensor (H, W), checked against the model's size and number of parts."""
    import imageio.v3 as iio
    import torch

    from mraa.errors import MRAAError

    try:
        array = np.asarray(iio.imread(path))
    except Exception as exc:
        raise MRAAError(f"cannot read label map {path}: {exc.__class__.__name__}: {exc}") from None
    if array.ndim == 3:
        if not all(np.array_equal(array[..., 0], array[..., c]) for c in range(1, min(3, array.shape[2]))):
            raise MRAAError(
                f"{path} is a colour image: expected a grey label map as written by `mraa segment`"
            )
        array = array[..., 0]
    if array.shape != tuple(size):
        raise MRAAError(
            f"label map {path} is {array.shape[1]}x{array.shape[0]} but the model works at {size[1]}x{size[0]}: "
            "make it with `mraa segment` and the same model"
        )
    if array.max(initial=0) > num_parts:
        raise MRAAError(f"label map {path} has label {array.max()} but the model has {num_parts} parts")
    return torch.from_numpy(array.astype(np.int64))


def label_maps(path: str, size: tuple[int, int], num_parts: int):
    """One label map (H, W) for all frames, or an iterator over a folder's maps (checked lazily)."""
    from mraa.data.video_io import IMAGE_SUFFIXES
    from mraa.errors import MRAAError

    folder = Path(path)
    if not folder.exists():
        raise MRAAError(f"labels not found: {folder}")
    if not folder.is_dir():
        return read_label_map(folder, size, num_parts)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise MRAAError(f"no label maps (PNG files) in {folder}")
    read_label_map(files[0], size, num_parts)  # fail before any work when the first is wrong

    def stream() -> Iterator:
        for file in files:
            yield read_label_map(file, size, num_parts)

    return stream()


def run(args: argparse.Namespace) -> int:
    from mraa.animate import resolve_device
    from mraa.data.video_io import check_fps
    from mraa.errors import MRAAError
    from mraa.safety import check_outputs
    from mraa.segmentation import check_feather, check_threshold, parse_parts

    for name in ("source", "driving"):
        if not Path(getattr(args, name)).exists():
            raise MRAAError(f"{name} not found: {getattr(args, name)}")
    inputs = {"--source": args.source, "--driving": args.driving, "--labels": args.labels}
    if args.pick is None:
        if not args.parts:
            raise MRAAError("--parts is required (e.g. --parts 1,3); run with --pick to see the parts")
        if not args.output:
            raise MRAAError("--output is required (or use --pick to only show the parts)")
        output = check_output_path(args.output)
        check_outputs(inputs=inputs, outputs={"--output": output})
        parse_parts(args.parts, None)  # syntax only, before loading the model
    else:
        check_outputs(inputs=inputs, outputs={"--pick": check_output_path(pick_path(args))})
    if args.batch_size < 1:
        raise MRAAError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.fps is not None:
        check_fps(args.fps, "--fps")
    check_threshold(args.threshold)
    try:
        check_feather(args.feather)
    except MRAAError as exc:
        raise MRAAError(f"--{exc}") from None
    resolve_device(args.device)
    animator = load_animator(args, batch_size=args.batch_size, announce=not args.quiet)
    num_parts = int(animator.models.region_predictor.num_regions)
    size = animator.image_size
    if args.pick is not None:
        return pick(args, animator, pick_path(args))
    parts = parse_parts(args.parts, num_parts)
    labels = label_maps(args.labels, size, num_parts) if args.labels else None
    return swap(args, animator, output, parts, labels)


def swap(args: argparse.Namespace, animator, output: Path, parts: list[int], labels) -> int:
    from mraa.data.video_io import probe_video
    from mraa.inference.pipeline import SwapOptions, swap_video

    info = probe_video(args.driving)
    size = animator.image_size
    source, _ = load_source(args.source, size, args.crop)
    frames = driving_frames(args.driving, size, args.crop)
    fps = args.fps or info.fps
    print(f"swapping parts {','.join(map(str, parts))} (mode {args.mode}, feather {args.feather:g} px)")
    options = SwapOptions(
        tuple(parts), args.mode, args.feather, args.threshold, labels, progress=not args.quiet
    )
    count = swap_video(animator, source, frames, output, options, fps, args.driving, info.num_frames)
    audio = ", with audio" if info.has_audio else ""
    print(f"wrote {output} ({count} frames, {fps:g} fps{audio})")
    return 0


def pick(args: argparse.Namespace, animator, path: Path) -> int:
    """Write the source's and the first driving frame's segmentations with part indices; print a table."""
    from mraa.data.video_io import write_image
    from mraa.errors import MRAAError
    from mraa.image import resize
    from mraa.segmentation import add_caption, overlay_segmentation, segment
    from mraa.visualize import make_grid, part_color_names

    path = check_output_path(path)
    size = animator.image_size
    source, source_uint8 = load_source(args.source, size, args.crop)
    kept: list[np.ndarray] = []
    first = next(driving_frames(args.driving, size, args.crop, keep=kept), None)
    if first is None:
        raise MRAAError(f"the driving video has no frames: {args.driving}")
    scale = max(1, -(-256 // size[1]))
    panels, shares = [], []
    for image, image_uint8 in ((source, source_uint8), (first, kept[0])):
        seg = segment(animator, image, threshold=args.threshold)
        num_parts = seg.num_parts
        counts = np.bincount(seg.labels.flatten().cpu().numpy(), minlength=num_parts + 1)
        shares.append(counts / counts.sum() * 100)
        big = seg.resize((size[0] * scale, size[1] * scale)).labels[0].cpu()
        shown = resize(image_uint8, (size[0] * scale, size[1] * scale), "bicubic")
        panels.append(overlay_segmentation(shown, big, num_parts))
    panels = [add_caption(panel, text) for panel, text in zip(panels, ("source", "driving frame 0"))]
    write_image(path, make_grid([panels]))
    print(f"parts of this model (share of the source / of the first driving frame), drawn in {path}:")
    print("  part  colour        source  driving")
    for k, name in enumerate(part_color_names(num_parts), start=1):
        print(f"  {k:>4}  {name:<12} {shares[0][k]:6.1f}%  {shares[1][k]:6.1f}%")
    print(f"  background          {shares[0][0]:6.1f}%  {shares[1][0]:6.1f}%")
    print("choose parts with --parts, e.g. --parts 1,3 (the masks come from the driving frames)")
    return 0
