"""``mraa segment``: co-part segmentation of an image or a video from the region predictor's heatmaps."""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

import numpy as np

from mraa.cli._common import add_model_arguments, driving_frames, load_animator, load_source
from mraa.data.video_io import FolderWriter

LAYOUT_HELP = """\
output layout (OUT_DIR is created if needed; every file is written atomically):
  image input:  OUT_DIR/overlay.png             image tinted with part colours, indices, legend strip
                OUT_DIR/labels.png              label map at the model's size (0 = background, k = part k)
                OUT_DIR/masks/part_01.png ...   with --soft-masks: each part's soft mask (0-255)
  video input:  OUT_DIR/overlay.mp4             the same overlay per frame (audio of the input kept)
                OUT_DIR/labels/000000.png ...   one label map per frame
                OUT_DIR/masks/part_01/000000.png ...  with --soft-masks
A pixel is background when the region heatmaps sum to less than --threshold (paper: 0.001, measured at the
heatmaps' own resolution); otherwise it belongs to the part with the largest heatmap.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "segment",
        help="co-part segmentation of an image or a video (label maps and a colour overlay)",
        description="Segment the object in an image or video into the model's parts (regions), as in the "
        "paper's co-part segmentation experiment.",
        epilog=LAYOUT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--input",
        required=True,
        help="image (png, jpg, ...) or video (mp4, mov, webm, gif, or a folder of frames)",
    )
    parser.add_argument("--output", required=True, metavar="OUT_DIR", help="output folder (see layout below)")
    add_model_arguments(parser)
    parser.add_argument(
        "--threshold",
        type=float,
        default=0.001,
        help="background threshold on the summed region heatmaps (default 0.001, as in the paper); higher "
        "values give more background",
    )
    parser.add_argument(
        "--soft-masks", action="store_true", help="also write each part's soft mask as a grey PNG"
    )
    parser.add_argument(
        "--alpha", type=float, default=0.5, help="overlay opacity of part colours (default 0.5)"
    )
    parser.add_argument(
        "--overlay-scale",
        type=int,
        help="upscale the overlay by this factor, segmenting at the larger size (default: the smallest "
        "factor that makes it at least 256 px wide); label maps stay at the model's size",
    )
    parser.add_argument("--batch-size", type=int, default=4, help="video frames per batch (default 4)")
    parser.add_argument(
        "--crop", action="store_true", help="centre-crop the input to the model's aspect ratio first"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the files a previous run wrote in OUT_DIR"
    )
    parser.set_defaults(func=run)


def prepare_output_dir(path: str | os.PathLike) -> Path:
    from mraa.data.video_io import check_output_parent
    from mraa.errors import MRAAError

    out = Path(path)
    if out.exists() and not out.is_dir():
        raise MRAAError(f"--output must be a folder, but {out} is a file")
    check_output_parent(out)
    out.mkdir(exist_ok=True)
    return out


def is_video(path: Path) -> bool:
    from mraa.data.video_io import IMAGE_SUFFIXES

    return path.is_dir() or path.suffix.lower() not in IMAGE_SUFFIXES


def output_files(out: Path, source: Path, soft_masks: bool) -> dict[str, Path]:
    """The files and folders a run writes into ``out``, labelled for messages."""
    names = ["overlay.mp4", "labels"] if is_video(source) else ["overlay.png", "labels.png"]
    names += ["masks"] if soft_masks else []
    return {f"--output {name}": out / name for name in names}


def run(args: argparse.Namespace) -> int:
    from mraa.animate import resolve_device
    from mraa.errors import MRAAError
    from mraa.safety import check_outputs
    from mraa.segmentation import check_threshold

    source = Path(args.input)
    if not source.exists():
        raise MRAAError(f"input not found: {source}")
    check_threshold(args.threshold)
    if args.batch_size < 1:
        raise MRAAError(f"--batch-size must be at least 1, got {args.batch_size}")
    if not 0 <= args.alpha <= 1:
        raise MRAAError(f"--alpha must be between 0 and 1, got {args.alpha}")
    if args.overlay_scale is not None and not 1 <= args.overlay_scale <= 16:
        raise MRAAError(f"--overlay-scale must be between 1 and 16, got {args.overlay_scale}")
    resolve_device(args.device)
    check_outputs(
        inputs={"--input": source},
        outputs=output_files(Path(args.output), source, args.soft_masks),
        overwrite=args.overwrite,
    )
    created = not Path(args.output).exists()
    out = prepare_output_dir(args.output)
    try:
        animator = load_animator(args, batch_size=args.batch_size, announce=not args.quiet)
        size = animator.image_size
        scale = args.overlay_scale or max(1, math.ceil(256 / size[1]))
        if is_video(source):
            counts = segment_video(args, animator, source, out, scale)
        else:
            counts = segment_image(args, animator, source, out, scale)
    except BaseException:
        if created and not any(out.iterdir()):  # leave no empty folder behind
            out.rmdir()
        raise
    num_parts = len(counts) - 1
    shares = counts / max(1, counts.sum()) * 100
    summary = ", ".join(f"{k}: {shares[k]:.1f}%" for k in range(1, num_parts + 1))
    print(f"{num_parts} parts, background {shares[0]:.1f}% of pixels; parts {summary}")
    return 0


def segment_image(args, animator, path: Path, out: Path, scale: int) -> np.ndarray:
    from mraa.data.video_io import write_image
    from mraa.image import mask_to_uint8
    from mraa.inference.pipeline import display_labels, display_overlay, label_image
    from mraa.segmentation import segment

    image, image_uint8 = load_source(path, animator.image_size, args.crop)
    seg = segment(animator, image, threshold=args.threshold)
    num_parts = seg.num_parts
    overlay = display_overlay(image_uint8, display_labels(seg, scale)[0], num_parts, args.alpha)
    written: list[str] = []
    try:  # all or nothing: a failure (a full disk) removes what this run wrote
        for name, picture in (
            ("overlay.png", overlay),
            ("labels.png", label_image(seg.labels[0], num_parts)),
        ):
            write_image(out / name, picture)
            written.append(name)
        if args.soft_masks:
            with FolderWriter(out / "masks") as masks:
                for k in range(num_parts):
                    masks.write(f"part_{k + 1:02d}.png", mask_to_uint8(seg.soft_masks[0, k]))
            written.append("masks/")
    except BaseException:
        for name in written:
            (out / name).unlink(missing_ok=True)
        raise
    print(f"wrote {', '.join(str(out / name) for name in written)}")
    return np.bincount(seg.labels.flatten().cpu().numpy(), minlength=num_parts + 1)


def segment_video(args, animator, path: Path, out: Path, scale: int) -> np.ndarray:
    from mraa.data.video_io import probe_video
    from mraa.inference.pipeline import SegmentOptions, segment_video

    info = probe_video(path)
    kept: list[np.ndarray] = []
    frames = driving_frames(path, animator.image_size, args.crop, keep=kept)
    options = SegmentOptions(
        args.threshold, args.alpha, scale, args.soft_masks, args.batch_size, progress=not args.quiet
    )
    counts, index = segment_video(animator, frames, kept, out, options, info.fps, path, info.num_frames)
    names = ["overlay.mp4", "labels/"] + (["masks/"] if args.soft_masks else [])
    audio = ", with audio" if info.has_audio else ""
    print(f"wrote {', '.join(str(out / n) for n in names)} ({index} frames, {info.fps:g} fps{audio})")
    return counts
