"""``mraa synth``: render a synthetic dataset of articulated-figure videos."""

from __future__ import annotations

import argparse
from pathlib import Path

from mraa.errors import MRAAError


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def add_motion_arguments(parser: argparse.ArgumentParser) -> None:
    """How the figures and the camera move, and how large the figures are."""
    parser.add_argument(
        "--camera-motion",
        type=float,
        default=0.5,
        help="probability that a video's background drifts smoothly, 0 to 1 (default 0.5)",
    )
    parser.add_argument(
        "--global-motion",
        type=float,
        default=1.0,
        help="scale of the whole figure's translation, zoom and rotation; 0 = only the joints move (default 1)",
    )
    parser.add_argument(
        "--motion-speed",
        type=float,
        default=1.0,
        help="multiplies the frequencies of the joint-angle trajectories (default 1)",
    )
    parser.add_argument(
        "--fill",
        type=float,
        nargs=2,
        default=(0.5, 0.8),
        metavar=("LOW", "HIGH"),
        help="range of the figure's size as a fraction of the frame (default 0.5 0.8)",
    )


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "synth",
        help="render a synthetic dataset of articulated 2D figures (train/ and test/ videos)",
        description=(
            "Render videos of articulated 2D figures (humanoids, quadrupeds, snakes...) with smooth random "
            "joint motion, into OUT/train and OUT/test (disjoint videos) plus OUT/metadata.json. "
            "The same --seed always gives the same dataset."
        ),
    )
    parser.add_argument("--out", required=True, type=Path, help="dataset folder to create (must be empty)")
    parser.add_argument("--num-train", type=int, default=200, help="number of training videos (default 200)")
    parser.add_argument("--num-test", type=int, default=20, help="number of test videos (default 20)")
    parser.add_argument("--size", type=int, default=64, help="frame height and width in pixels (default 64)")
    parser.add_argument("--frames", type=int, default=32, help="frames per video (default 32)")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    parser.add_argument(
        "--format",
        choices=("mp4", "png"),
        default="mp4",
        help="mp4 files or folders of png frames (default mp4)",
    )
    parser.add_argument(
        "--figures",
        default="humanoid,quadruped,snake",
        help="comma-separated figure types: humanoid, quadruped, snake, starfish (default: first three)",
    )
    parser.add_argument(
        "--backgrounds",
        default="flat,gradient,noise",
        help="comma-separated background types: flat, gradient, noise (default all)",
    )
    add_motion_arguments(parser)
    parser.add_argument("--fps", type=float, default=25.0, help="frame rate of the mp4 files (default 25)")
    parser.add_argument("--overwrite", action="store_true", help="replace the dataset in a non-empty OUT")
    parser.add_argument("--preview", type=Path, help="also write a PNG grid of a few training videos")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    parser.set_defaults(func=run)


MAX_SIZE = 2048  # pixels per side
MAX_VIDEO_BYTES = 4 << 30  # one video's frames are held in memory while it is written


def check_values(args: argparse.Namespace) -> None:
    """Refuse counts and sizes that cannot make a dataset, or would not fit in memory, before any work."""
    if args.num_train < 1:
        raise MRAAError(
            f"--num-train must be at least 1 (a dataset needs training videos), got {args.num_train}"
        )
    if args.num_test < 0:
        raise MRAAError(f"--num-test must be 0 or more, got {args.num_test}")
    if not 16 <= args.size <= MAX_SIZE:
        raise MRAAError(f"--size must be between 16 and {MAX_SIZE} pixels, got {args.size}")
    if args.frames < 2:
        raise MRAAError(f"--frames must be at least 2, got {args.frames}")
    video_bytes = args.frames * args.size * args.size * 3
    if video_bytes > MAX_VIDEO_BYTES:
        raise MRAAError(
            f"--frames {args.frames} at --size {args.size} needs {video_bytes / (1 << 30):.1f} GiB per video "
            f"(at most {MAX_VIDEO_BYTES >> 30} GiB): use fewer frames or a smaller size"
        )
    if not 0 < args.fps < 1000:
        raise MRAAError(f"--fps must be between 0 and 1000, got {args.fps}")
    for flag, value, high in (("--camera-motion", args.camera_motion, 1.0), ("--global-motion", args.global_motion, 10.0),
                              ("--motion-speed", args.motion_speed, 10.0)):  # fmt: skip
        if not value <= high or (flag == "--camera-motion" and value < 0):  # NaN fails too
            raise MRAAError(f"{flag} must be between 0 and {high:g}, got {value}")
    if args.seed < 0:
        raise MRAAError(f"--seed must be 0 or more, got {args.seed}")
    if args.preview is not None:
        if args.preview.suffix.lower() != ".png":
            raise MRAAError(f"--preview must be a .png file, got {args.preview}")
        if not args.preview.parent.is_dir():
            raise MRAAError(f"--preview folder does not exist: {args.preview.parent}")
    if args.out.exists() and not args.out.is_dir():
        raise MRAAError(f"--out {args.out} is a file, not a folder")


def run(args: argparse.Namespace) -> int:
    from mraa.atomic import remove_stale_temps
    from mraa.data.synthetic import SynthConfig, preview_grid, write_dataset
    from mraa.data.video_io import write_image
    from mraa.safety import check_outputs

    check_values(args)
    written = {f"--out {name}": args.out / name for name in ("train", "test", "metadata.json")}
    check_outputs(outputs={**written, "--preview": args.preview})
    remove_stale_temps(args.out, "synth")  # the staging folder of an interrupted run
    cfg = SynthConfig(
        size=args.size,
        num_frames=args.frames,
        figure_types=_names(args.figures),
        camera_motion=args.camera_motion,
        backgrounds=_names(args.backgrounds),
        fill=tuple(args.fill),
        motion_speed=args.motion_speed,
        global_motion=args.global_motion,
        fps=args.fps,
    )
    metadata = write_dataset(
        args.out,
        num_train=args.num_train,
        num_test=args.num_test,
        seed=args.seed,
        cfg=cfg,
        fmt=args.format,
        progress=not args.quiet,
        overwrite=args.overwrite,
    )
    if args.preview is not None:
        rows = min(len(cfg.figure_types), 4)
        write_image(args.preview, preview_grid(args.seed, cfg, num_videos=rows, num_columns=8))
    if not args.quiet:
        print(
            f"wrote {metadata['num_train']} train and {metadata['num_test']} test videos "
            f"({cfg.size}x{cfg.size}, {cfg.num_frames} frames, {args.format}) to {args.out}"
        )
    return 0
