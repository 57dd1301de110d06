"""``mraa reconstruct``: the paper's video reconstruction benchmark on a dataset's test videos."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from mraa.cli._common import add_model_arguments, load_animator

log = logging.getLogger(__name__)

METRICS = ("l1", "akd", "mkr", "aed")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "reconstruct",
        help="reconstruct test videos from their first frame and report L1 (and AKD/MKR/AED)",
        description="Reconstruct each video of DATA/test from its first frame (the driving video is the video "
        "itself) and report the mean L1 distance to the real frames, the paper's reconstruction metric, next "
        "to the no-motion baseline (the first frame held still). With --out, write one video per test video "
        "and OUT/metrics.json.",
    )
    parser.add_argument(
        "--data", required=True, help="dataset folder with a test/ folder (the layout `mraa train` reads)"
    )
    add_model_arguments(parser)
    parser.add_argument(
        "--out", help="folder for the reconstructed videos and metrics.json (created; default: write nothing)"
    )
    parser.add_argument(
        "--num-videos",
        type=int,
        help="evaluate the first N test videos (default: the config's reconstruction_params.num_videos)",
    )
    parser.add_argument(
        "--format",
        choices=("mp4", "gif", "png"),
        default="mp4",
        help="mp4/gif: one video per test video; png: all frames side by side in one image (default mp4)",
    )
    parser.add_argument(
        "--layout",
        choices=("pair", "prediction"),
        default="pair",
        help="pair: driving | reconstruction side by side (default); prediction: the reconstruction only "
        "(as png, the official strip layout that can be read back as a dataset)",
    )
    parser.add_argument("--fps", type=float, default=25.0, help="frame rate of written videos (default 25)")
    parser.add_argument(
        "--no-bg",
        action="store_true",
        help="do not use the background motion predictor (the official evaluation uses it)",
    )
    add_metric_arguments(parser)
    parser.add_argument("--batch-size", type=int, default=4, help="frames rendered together (default 4)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def add_metric_arguments(parser: argparse.ArgumentParser) -> None:
    """--metrics and the extractors they need."""
    parser.add_argument(
        "--metrics",
        default="l1",
        help="comma-separated: l1 (always computed), akd and mkr (need --keypoints), aed (needs --identity); "
        "default l1",
    )
    parser.add_argument(
        "--keypoints",
        help="keypoint extractor for AKD/MKR (required by them): a registered name (dlib-face or face: 68 "
        "face landmarks; body: 18 body keypoints from BlazePose; both in the 'metrics' extra) or an entry "
        "point in group mraa.keypoint_extractors; package.module:factory with --allow-custom-extractor",
    )
    parser.add_argument(
        "--identity",
        help="identity extractor for AED (required by it): dlib-face (128-d face embedding, 'metrics' extra) "
        "or an entry point in group mraa.identity_extractors; package.module:factory with "
        "--allow-custom-extractor",
    )
    parser.add_argument(
        "--allow-custom-extractor",
        action="store_true",
        help="allow --keypoints/--identity to name package.module:factory (imports and runs that code)",
    )


def parse_metrics(text: str) -> set[str]:
    """``l1,akd`` -> {"l1", "akd"}; unknown names are a user error."""
    from mraa.errors import MRAAError

    names = {name.strip().lower() for name in text.split(",") if name.strip()}
    unknown = sorted(names - set(METRICS))
    if unknown:
        raise MRAAError(f"unknown metric(s) {', '.join(unknown)}; choose from {', '.join(METRICS)}")
    return names | {"l1"}


def load_extractors(args: argparse.Namespace, metrics: set[str]):
    """The keypoint and identity extractors the metrics need (None where not needed), built before any
    heavy work so that a missing optional dependency fails early."""
    from mraa.errors import MRAAError
    from mraa.evaluation import available_extractors, load_identity_extractor, load_keypoint_extractor

    keypoints = identity = None
    for metric, option, kind in (("akd", "--keypoints", "keypoints"), ("mkr", "--keypoints", "keypoints"),
                                 ("aed", "--identity", "identity")):  # fmt: skip
        if metric in metrics and getattr(args, kind) is None:
            names = ", ".join(available_extractors(kind)) or "none installed"
            raise MRAAError(f"--metrics {metric} needs {option} NAME (available: {names})")
    try:
        if metrics & {"akd", "mkr"}:
            keypoints = load_keypoint_extractor(args.keypoints, allow_custom=args.allow_custom_extractor)
        if "aed" in metrics:
            identity = load_identity_extractor(args.identity, allow_custom=args.allow_custom_extractor)
    except MRAAError as exc:
        if "allowed explicitly" in str(exc):
            raise MRAAError(f"{exc}: add --allow-custom-extractor") from exc
        raise
    return keypoints, identity


def run(args: argparse.Namespace) -> int:
    from mraa.animate import resolve_device
    from mraa.data.frames_dataset import FramesDataset
    from mraa.data.video_io import check_fps
    from mraa.errors import MRAAError
    from mraa.evaluation import reconstruct_dataset
    from mraa.safety import check_outputs

    metrics = parse_metrics(args.metrics)
    if args.batch_size < 1:
        raise MRAAError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.num_videos is not None and args.num_videos < 1:
        raise MRAAError(f"--num-videos must be at least 1, got {args.num_videos}")
    check_fps(args.fps, "--fps")
    data = Path(args.data)
    if not data.is_dir():
        raise MRAAError(f"dataset folder not found: {data}")
    if args.out is not None and Path(args.out).exists() and not Path(args.out).is_dir():
        raise MRAAError(f"--out is a file, not a folder: {args.out}")
    check_outputs(inputs={"--data": data}, outputs={"--out": args.out})
    resolve_device(args.device)
    keypoints, identity = load_extractors(args, metrics)

    animator = load_animator(args, batch_size=args.batch_size, announce=not args.quiet)
    height, width = animator.image_size
    dataset = FramesDataset(data, frame_shape=(height, width, 3), is_train=False)
    num_videos = args.num_videos
    if num_videos is None and animator.config is not None:
        num_videos = animator.config.reconstruction_params.num_videos
    report = reconstruct_dataset(
        animator,
        dataset,
        out_dir=args.out,
        use_bg=not args.no_bg,
        max_videos=num_videos,
        progress=not args.quiet,
        keypoint_extractor=keypoints,
        identity_extractor=identity,
        format=args.format,
        layout=args.layout,
        fps=args.fps,
    )
    print(report.summary())
    if report.videos and report.l1 >= report.baseline_l1:  # the model does worse than not moving at all
        print(f"note: L1 {report.l1:.4f} is not below the no-motion baseline {report.baseline_l1:.4f}: the "
              "model reconstructs these videos worse than the first frame held still")  # fmt: skip
    for metric, value in (("AKD", report.akd), ("AED", report.aed)):
        extractor = report.keypoints if metric == "AKD" else report.identity
        if extractor is not None and value is None:
            log.warning("%s could not be measured: %s found nothing in the frames", metric, extractor)
    if args.out is not None:
        print(f"wrote {len(report.videos)} {args.format} file(s) and {Path(args.out) / 'metrics.json'}")
    return 0
