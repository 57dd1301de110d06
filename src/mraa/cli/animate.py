"""``mraa animate``: animate a still image with a driving video."""

from __future__ import annotations

import argparse
import contextlib
import logging
from pathlib import Path

from mraa.cli._common import (
    add_model_arguments,
    check_output_path,
    driving_frames,
    load_animator,
    load_source,
)

log = logging.getLogger(__name__)

BACKGROUND_HELP = (
    "background motion: still (default, as in the paper), left[:SPEED] / right[:SPEED] (SPEED in [-1,1] image "
    "units per frame, default 0.01), rotate[:DEG] (counter-clockwise degrees per frame, default 0.5), driving (the "
    "camera motion the bg predictor estimates from the driving video), six numbers a,b,c,d,e,f (a fixed 2x3 affine "
    "from output to source coordinates), or a .npy/.txt file of per-frame 2x3 matrices"
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "animate",
        help="animate a source image with the motion of a driving video",
        description="Animate the object in --source with the motion of --driving and write a video. "
        "The output has the driving video's frame rate and keeps its audio.",
    )
    parser.add_argument("--source", required=True, help="source image (any format Pillow/imageio reads)")
    parser.add_argument(
        "--driving", required=True, help="driving video (mp4, mov, webm, gif, or a folder of frames)"
    )
    parser.add_argument(
        "--output", required=True, help="output video (.mp4 H.264 by default; .webm, .mov, .gif)"
    )
    add_model_arguments(parser)
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
    parser.add_argument("--batch-size", type=int, default=4, help="driving frames per batch (default 4)")
    parser.add_argument(
        "--precision",
        choices=("fp32", "bf16", "fp16"),
        default="fp32",
        help="generator precision: fp32 (default, matches the official outputs), bf16 autocast (CPU or "
        "CUDA) or fp16 autocast (CUDA); faster, but outputs differ beyond the parity tolerance",
    )
    parser.add_argument(
        "--compile", action="store_true", help="torch.compile the generator (CUDA; slow first batch)"
    )
    parser.add_argument("--fps", type=float, help="output frame rate (default: the driving video's)")
    parser.add_argument(
        "--crop", action="store_true", help="centre-crop inputs to the model's aspect ratio first"
    )
    parser.add_argument(
        "--visualize",
        nargs="?",
        const="",
        metavar="PATH",
        help="also write a side-by-side video (source with regions | driving with regions | result); "
        "default path: OUTPUT with a _visualization suffix",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def visualization_path(output: Path, value: str) -> Path:
    return Path(value) if value else output.with_name(f"{output.stem}_visualization{output.suffix}")


def run(args: argparse.Namespace) -> int:
    from mraa.animate import background_schedule, resolve_device
    from mraa.data.video_io import VideoWriter, probe_video
    from mraa.errors import MRAAError
    from mraa.visualize import draw_regions, heatmap_overlay, make_grid, tensor_to_uint8

    output = check_output_path(args.output)
    viz_path = (
        check_output_path(visualization_path(output, args.visualize)) if args.visualize is not None else None
    )
    for name in ("source", "driving"):
        if not Path(getattr(args, name)).exists():
            raise MRAAError(f"{name} not found: {getattr(args, name)}")
    if args.batch_size < 1:
        raise MRAAError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.fps is not None and args.fps <= 0:
        raise MRAAError(f"--fps must be positive, got {args.fps}")
    resolve_device(args.device)
    background = background_schedule(args.background)
    info = probe_video(args.driving)
    animator = load_animator(args, batch_size=args.batch_size)
    mode = args.mode or animator.default_mode()
    if mode == "avd" and not animator.has_trained_avd:
        log.warning("the checkpoint has no trained AVD network: mode avd will give poor results")
    reference = "" if animator.still_background == "identity" else " (relative to the source's own estimate)"
    print(
        f"mode: {mode}{'' if args.mode else ' (default for this checkpoint)'}; "
        f"background: {args.background}{reference}"
    )
    size = animator.image_size
    source, source_uint8 = load_source(args.source, size, args.crop)
    kept: list | None = [] if viz_path is not None else None
    frames = driving_frames(args.driving, size, args.crop, keep=kept)
    fps = args.fps or info.fps

    with contextlib.ExitStack() as stack:
        writer = stack.enter_context(VideoWriter(output, fps, audio_from=args.driving))
        viz_writer = (
            stack.enter_context(VideoWriter(viz_path, fps, audio_from=args.driving)) if viz_path else None
        )
        source_panel = None
        for batch in animator.animate_iter(source, frames, mode, background, progress=not args.quiet):
            images = tensor_to_uint8(batch.prediction)
            writer.write_many(images)
            if viz_writer is None:
                continue
            if source_panel is None:
                params = animator.encode_source(source).region_params
                heat = params["heatmap"][0].cpu()
                source_panel = draw_regions(
                    heatmap_overlay(source_uint8, heat), params["shift"][0].cpu(), params["affine"][0].cpu()
                )
            for i, image in enumerate(images):
                driving_uint8 = kept.pop(0)
                shift = batch.driving_region_params["shift"][i].cpu()
                affine = batch.driving_region_params["affine"][i].cpu()
                viz_writer.write(
                    make_grid([[source_panel, draw_regions(driving_uint8, shift, affine), image]])
                )
    print(
        f"wrote {output} ({writer.num_frames} frames, {fps:g} fps{', with audio' if info.has_audio else ''})"
    )
    if viz_path is not None:
        print(f"wrote {viz_path}")
    return 0
