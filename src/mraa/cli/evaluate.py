"""``mraa evaluate``: L1, AKD, MKR and AED of generated videos against reference videos, offline."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from mraa.errors import MRAAError

log = logging.getLogger(__name__)

KEYPOINT_KINDS = {"face": "dlib-face", "body": "body", "synthetic": None}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="score generated videos against reference videos (L1, AKD, MKR, AED)",
        description="Compare generated videos with reference videos frame by frame and print one JSON object "
        "with a key per metric, pooled over all frames (akd and aed in the benchmark's forms, "
        "akd_euclidean and aed_euclidean beside them). G and R are two videos (files, frame folders or png "
        "strips) or two folders of videos matched by name. See docs/evaluation.md.",
    )
    parser.add_argument("--generated", required=True, type=Path, help="generated video, or folder of them")
    parser.add_argument("--reference", required=True, type=Path, help="reference video, or folder of them")
    parser.add_argument(
        "--metrics",
        default="l1,akd,mkr,aed",
        help="comma-separated from l1, akd, mkr, aed (default all four)",
    )
    parser.add_argument(
        "--keypoints",
        choices=tuple(KEYPOINT_KINDS),
        default="face",
        help="keypoints for AKD/MKR: face (68 dlib landmarks), body (18 benchmark keypoints from BlazePose) "
        "or synthetic (exact part centres of an `mraa synth` dataset; --reference in that dataset) "
        "(default face)",
    )
    parser.add_argument(
        "--identity",
        choices=("face",),
        default="face",
        help="identity embedding for AED: face (dlib's 128-d face descriptor; the only one offline)",
    )
    parser.add_argument("--out", type=Path, help="also write one row per video to this .csv or .jsonl file")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def build_extractors(metrics: set[str], keypoints: str, identity: str):
    """The extractors the metrics need, built before any video is read (a missing extra fails early)."""
    from mraa.evaluation import load_identity_extractor, load_keypoint_extractor
    from mraa.evaluation.compare import Extractors

    extractors = Extractors()
    if metrics & {"akd", "mkr"}:
        if keypoints == "synthetic":
            extractors.synthetic = True
        else:
            extractors.keypoints = load_keypoint_extractor(KEYPOINT_KINDS[keypoints])
    if "aed" in metrics:
        extractors.identity = load_identity_extractor("dlib-face" if identity == "face" else identity)
    return extractors


def run(args: argparse.Namespace) -> int:
    from mraa.atomic import atomic_write_text
    from mraa.cli.reconstruct import parse_metrics
    from mraa.evaluation.compare import ROW_FORMATS, evaluate_videos, pair_videos
    from mraa.evaluation.synthetic_keypoints import open_dataset
    from mraa.safety import check_outputs

    metrics = {name.strip().lower() for name in args.metrics.split(",") if name.strip()}
    if not metrics:
        raise MRAAError("--metrics is empty; choose from l1, akd, mkr, aed")
    parse_metrics(args.metrics)  # unknown names are an error
    if args.out is not None:
        if args.out.suffix.lower() not in ROW_FORMATS:
            raise MRAAError(f"--out must end in .csv or .jsonl, got {args.out}")
        if args.out.is_dir():
            raise MRAAError(f"--out is a folder: {args.out}")
        if not args.out.parent.is_dir():
            raise MRAAError(f"--out folder does not exist: {args.out.parent}")
        check_outputs(
            inputs={"--generated": args.generated, "--reference": args.reference},
            outputs={"--out": args.out},
            nested_ok=True,
        )
    pair_videos(args.generated, args.reference)  # bad inputs fail before any model loads
    if args.keypoints == "synthetic" and metrics & {"akd", "mkr"}:
        open_dataset(args.reference)
    extractors = build_extractors(metrics, args.keypoints, args.identity)
    evaluation = evaluate_videos(args.generated, args.reference, metrics, extractors, progress=not args.quiet)
    if args.out is not None:
        atomic_write_text(args.out, evaluation.rows_text(args.out.suffix.lower()))
    summary = evaluation.summary()
    for key in ("akd", "mkr", "aed"):
        if key in summary and summary[key] is None:
            found = evaluation.identity if key == "aed" else evaluation.keypoints
            log.warning("%s could not be measured: %s found nothing to compare in the frames", key, found)
    print(json.dumps(summary))
    return 0
