"""``mraa crop``: the crop boxes ``mraa animate --crop`` would use, as JSON, without animating."""

from __future__ import annotations

import argparse
import json

CROP_HELP = (
    "how to frame the inputs: auto (the model's animate_params.framing), face (VoxCeleb-style), upper-body "
    "(TED-style), full-body (TaiChi-style), center (the largest centred square) or none (resize as they are)"
)


def add_crop_argument(parser: argparse.ArgumentParser, default: str) -> None:
    from mraa.framing import CROP_CHOICES

    parser.add_argument(
        "--crop", nargs="?", const="center", choices=CROP_CHOICES, default=default,
        help=f"{CROP_HELP} (default: {default}; --crop alone: center)",
    )  # fmt: skip
    parser.add_argument(
        "--crop-preview", metavar="PATH", help="write a picture of the chosen boxes on the source and driving"
    )


def add_framing_arguments(parser: argparse.ArgumentParser) -> None:
    """``mraa animate``'s framing options (see docs/framing.md)."""
    add_crop_argument(parser, "auto")
    parser.add_argument(
        "--paste-back", nargs="?", const="regions", choices=("box", "regions"),
        help="write each animated crop back into the full-resolution source: a mask feathered on the box "
        "edges inside the image and narrowed to the subject by the region heatmaps (regions, the default), "
        "or the feathered box alone (box); the video has the source's size",
    )  # fmt: skip
    parser.add_argument("--output-size", metavar="WxH", help="size of the written video, e.g. 1280x720")
    parser.add_argument(
        "--best-frame", action="store_true",
        help="relative mode: use the driving frame whose regions are closest to the source's as reference",
    )  # fmt: skip
    parser.add_argument(
        "--dry-run", action="store_true", help="print the crop boxes as JSON (as mraa crop) and stop"
    )


def dry_run(args: argparse.Namespace, jobs) -> int:
    """``animate --dry-run``: the boxes of every pair as JSON, without loading the model's weights."""
    framing, size = model_framing(args)
    results = []
    for job in jobs:
        job_args = argparse.Namespace(
            **{**vars(args), "source": str(job.source), "driving": str(job.driving)}
        )
        if job.crop is not None:
            job_args.crop = job.crop
        data = plan(job_args, framing, size)[0].as_dict()
        results.append({"source_path": str(job.source), "driving_path": str(job.driving), **data})
    print(json.dumps(results[0] if len(results) == 1 else results, indent=2))
    return 0


def print_model_note(args: argparse.Namespace, jobs) -> None:
    """One line when the shipped synthetic-figure model animates anything but its own sample."""
    from mraa.animate import DEFAULT_MODEL_DIR
    from mraa.framing import SYNTHETIC_MODEL_NOTE

    sample = (DEFAULT_MODEL_DIR / "source.png").resolve()
    if args.checkpoint is None and any(job.source.resolve() != sample for job in jobs):
        print(SYNTHETIC_MODEL_NOTE)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from mraa.cli._common import add_model_arguments

    parser = subparsers.add_parser(
        "crop",
        help="print the source and driving crop boxes as JSON (no animation)",
        description="Find the subject in --source and --driving as `mraa animate --crop` does and print the "
        "boxes (pixels x0, y0, x1, y1 of the full images) as JSON: one for the source, one per driving shot.",
    )
    parser.add_argument("--source", required=True, help="source image")
    parser.add_argument("--driving", required=True, help="driving video")
    add_crop_argument(parser, "auto")
    parser.add_argument(
        "--dry-run", action="store_true", help="print the boxes as JSON and write nothing (no --crop-preview)"
    )
    add_model_arguments(parser)
    parser.set_defaults(func=run)


def model_framing(args: argparse.Namespace) -> tuple[str, tuple[int, int]]:
    """The model's framing and (H, W), from --config or the checkpoint's stored config (no weights built)."""
    from mraa.animate import default_checkpoint
    from mraa.checkpoint import config_from_checkpoint, read_checkpoint
    from mraa.config import load_config
    from mraa.errors import MRAAError

    if args.config:
        cfg = load_config(args.config)
    else:
        cfg = config_from_checkpoint(read_checkpoint(args.checkpoint or default_checkpoint()))
        if cfg is None:
            raise MRAAError(f"{args.checkpoint} carries no config: pass --config")
    return cfg.animate_params.framing, tuple(cfg.dataset_params.resolved_frame_shape[:2])


def plan(args: argparse.Namespace, framing: str, size: tuple[int, int]):
    """The crop plan for the parsed --source/--driving/--crop, and the source image."""
    from pathlib import Path

    from mraa.data.video_io import check_image_size, read_image
    from mraa.errors import MRAAError
    from mraa.framing import crop_option, framing_from_crop, plan_for_files

    for name in ("source", "driving"):
        if not Path(getattr(args, name)).exists():
            raise MRAAError(f"{name} not found: {getattr(args, name)}")
    source = check_image_size(read_image(args.source), f"--source {args.source}")  # as animate refuses it
    crop = framing_from_crop(crop_option(args.crop), framing, (source.shape[1], source.shape[0]))
    return plan_for_files(source, args.driving, crop, size[1] / size[0]), source


def write_preview(path: str, crop_plan, source) -> None:
    from mraa.data.video_io import write_image
    from mraa.framing import draw_crop_preview

    write_image(path, draw_crop_preview(crop_plan, source))
    print(f"wrote {path}")


def run(args: argparse.Namespace) -> int:
    from mraa.cli._common import check_output_path

    preview = None if args.dry_run else args.crop_preview
    if preview:  # never over --source or --driving (mraa.safety)
        from mraa.framing.run import check_preview_path
        from mraa.safety import check_outputs

        check_preview_path(preview)
        check_outputs(
            inputs={"--source": args.source, "--driving": args.driving},
            outputs={"--crop-preview": check_output_path(preview)},
        )
    framing, size = model_framing(args)
    crop_plan, source = plan(args, framing, size)
    data = crop_plan.as_dict()
    data["model_framing"] = framing
    data["model_size"] = [size[1], size[0]]
    print(json.dumps(data, indent=2))
    if preview:
        write_preview(preview, crop_plan, source)
    return 0
