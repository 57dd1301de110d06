"""``mraa train-avd``: train the AVD (shape/pose disentanglement) network on a trained region predictor."""

from __future__ import annotations

import argparse
from pathlib import Path

from mraa.cli._training import (
    add_training_parser,
    flag_hints,
    quiet_other_ranks,
    report,
    report_interrupt,
    run_options,
)
from mraa.errors import MRAAError

SUMMARY = "train the AVD network (animation via disentanglement) on a trained model"
DESCRIPTION = """\
Train the AVD network on (source, driving) pairs of DATA/train with the region predictor of CHECKPOINT
frozen (train_avd_params: batch size, learning rate, milestones, random_scale). Writes
LOG_DIR/{epoch:08d}-cpk-avd.pth holding all four networks (use it with mraa animate --mode avd; epochs
count from 0, checkpoints kept as for mraa train), LOG_DIR/config-avd.yaml, LOG_DIR/metrics-avd.jsonl and
LOG_DIR/train-vis/. Resume with mraa train-avd --log-dir LOG_DIR --resume."""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    add_training_parser(subparsers, "train-avd", run, SUMMARY, DESCRIPTION, own=_add_avd_arguments)


def _add_avd_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint",
        help="trained reconstruction checkpoint (required unless resuming an AVD run in LOG_DIR)",
    )
    parser.add_argument(
        "--config",
        help="YAML config in the official schema (default: LOG_DIR/config-avd.yaml when resuming, else the "
        "config stored with the checkpoint)",
    )
    parser.add_argument("--log-dir", type=Path, help="output folder (default: the folder of --checkpoint)")


def _config(args: argparse.Namespace, log_dir: Path):
    from mraa.checkpoint import config_from_checkpoint, read_checkpoint
    from mraa.config import apply_overrides, load_config

    if args.config is not None:
        cfg = load_config(args.config)
    elif args.resume and (log_dir / "config-avd.yaml").is_file():
        cfg = load_config(log_dir / "config-avd.yaml")
    elif args.checkpoint is not None:
        cfg = config_from_checkpoint(read_checkpoint(args.checkpoint))
        if cfg is None:
            raise MRAAError(f"{args.checkpoint} stores no config: pass --config")
    else:
        raise MRAAError("pass --config (or a --checkpoint that stores its config)")
    return apply_overrides(cfg, args.set) if args.set else cfg


def run(args: argparse.Namespace) -> int:
    from mraa.training.recipes import train_avd

    if args.checkpoint is None and not args.resume:
        raise MRAAError("AVD training needs a trained reconstruction checkpoint (--checkpoint PATH)")
    if args.log_dir is None:
        if args.checkpoint is None:
            raise MRAAError("pass --log-dir (or --checkpoint, whose folder is then used)")
        args.log_dir = Path(args.checkpoint).parent
    cfg = _config(args, args.log_dir)
    quiet_other_ranks()
    try:
        with flag_hints():
            result = train_avd(
                cfg,
                args.log_dir,
                data=args.data,
                keep_all_checkpoints=args.keep_all_checkpoints,
                options=run_options(args),
            )
    except KeyboardInterrupt:
        return report_interrupt(args, "avd")
    where = result.checkpoint or "no new checkpoint"
    return report(f"trained the AVD network for {result.epochs} epochs ({result.pairs_seen} pairs): {where}")
