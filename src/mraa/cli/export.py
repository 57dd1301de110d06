"""``mraa export``: convert a training/official checkpoint to safetensors + config.yaml."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="convert a .pth checkpoint to model.safetensors + config.yaml",
        description="Write OUTPUT/model.safetensors (flat generator.*, region_predictor.*, ... keys) and "
        "OUTPUT/config.yaml from an official or mraa training checkpoint.",
    )
    parser.add_argument("--checkpoint", required=True, help="official .pth or mraa training checkpoint")
    parser.add_argument("--config", required=True, help="YAML config in the official schema")
    parser.add_argument("--output", required=True, help="output folder (created if missing)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mraa.checkpoint import MODEL_KEYS, SAFETENSORS_NAME, export_safetensors, load_checkpoint
    from mraa.config import load_config
    from mraa.errors import MRAAError
    from mraa.models import build_models
    from mraa.safety import check_outputs

    output = Path(args.output)
    if output.exists() and not output.is_dir():
        raise MRAAError(f"--output {output} is a file, not a folder")
    check_outputs(
        inputs={"--checkpoint": args.checkpoint, "--config": args.config},
        outputs={f"--output {name}": output / name for name in (SAFETENSORS_NAME, "config.yaml")},
    )
    cfg = load_config(args.config)
    models = build_models(cfg.model_params)
    data = load_checkpoint(args.checkpoint, models)
    include = tuple(name for name in MODEL_KEYS if data.get(name))
    path = export_safetensors(models, cfg, args.output, include=include)
    print(f"wrote {path} ({', '.join(include)}) and {path.with_name('config.yaml')}")
    return 0
