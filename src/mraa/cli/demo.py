"""``mraa demo``: animate the shipped sample with the shipped model (what ``make demo`` runs)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="animate the shipped sample image with the shipped driving video and model (offline)",
        description="Animate the sample source image shipped with mraa using the shipped driving video and the "
        "small model trained by mraa on synthetic articulated figures. Writes OUT/animation.mp4, "
        "OUT/visualization.mp4 and OUT/segmentation/ (overlay.png, labels.png). No network access.",
    )
    parser.add_argument("--out", default="demo", help="output folder (default: demo)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or mps (default: cpu)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mraa.animate import DEFAULT_MODEL_DIR
    from mraa.cli import main

    model = DEFAULT_MODEL_DIR / "model.safetensors"
    source = DEFAULT_MODEL_DIR / "source.png"
    driving = DEFAULT_MODEL_DIR / "driving.mp4"
    if not (model.is_file() and source.is_file() and driving.is_file()):
        print("mraa demo: the shipped default model is not yet available in this build; nothing to do.")
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    quiet = ["--quiet"] if args.quiet else []
    code = main(
        ["animate", "--source", str(source), "--driving", str(driving), "--output", str(out / "animation.mp4"),
         "--visualize", str(out / "visualization.mp4"), "--device", args.device, *quiet]
    )  # fmt: skip
    if code:
        return code
    try:
        import mraa.cli.segment  # noqa: F401
    except ModuleNotFoundError:
        pass
    else:
        code = main(
            [
                "segment",
                "--input",
                str(source),
                "--output",
                str(out / "segmentation"),
                "--overwrite",  # the demo's own fixed outputs, replaced on every run as animate's are
                "--device",
                args.device,
                *quiet,
            ]
        )
        if code:
            return code
    print(f"demo outputs are in {out.resolve()}/")
    return 0
