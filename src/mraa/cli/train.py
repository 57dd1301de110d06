"""``mraa train``: train the region predictor, background predictor and generator on a video dataset."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mraa.cli._training import (
    add_training_parser,
    flag_hints,
    quiet_other_ranks,
    report,
    report_interrupt,
    run_options,
)
from mraa.errors import MRAAError

SUMMARY = "train the reconstruction model (regions, background motion, generator)"
DESCRIPTION = """\
Train the region predictor, background motion predictor and generator on (source, driving) frame pairs of
DATA/train. Writes LOG_DIR/{epoch:08d}-cpk-reconstruction.pth every checkpoint_freq epochs and at the end
(epochs count from 0 in names, logs and the progress bar; of checkpoints written more often than every
checkpoint_keep_every epochs, the newest and every N-th stay), LOG_DIR/config.yaml (the config used, with
--set and --data), per-step losses in LOG_DIR/metrics.jsonl and one picture per epoch in LOG_DIR/train-vis/.
Ctrl-C prints the last checkpoint and the resume command: mraa train --log-dir LOG_DIR --resume.
Multi-GPU: torchrun --nproc_per_node N -m mraa train ... (train_params.batch_size is the global batch).
Then train the AVD network with mraa train-avd."""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    add_training_parser(subparsers, "train", run, SUMMARY, DESCRIPTION, own=_add_reconstruction_arguments)


def _add_reconstruction_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", help="YAML config in the official schema (optional with --resume: LOG_DIR/config.yaml)"
    )
    parser.add_argument(
        "--log-dir", required=True, type=Path, help="output folder (checkpoints, config, metrics, images)"
    )
    parser.add_argument(
        "--checkpoint",
        help="with --resume: the checkpoint to continue from; without: initial weights only (new optimizer, "
        "epoch 0)",
    )
    parser.add_argument(
        "--vgg-weights",
        help="local VGG19 weights (torchvision layout, .pth or .safetensors) for the perceptual loss; "
        "required when loss_weights.perceptual is non-zero (nothing is downloaded)",
    )
    parser.add_argument(
        "--no-perceptual",
        action="store_true",
        help="train without VGG19: zero the perceptual weights (and use the multi-scale L1 loss, weight 10, "
        "if loss_weights.l1 is 0)",
    )


def resolve_config(config: str | None, log_dir: Path, resume: bool, overrides: list[str]) -> Any:
    """The run's config: ``--config``, else (when resuming) the copy the run saved in LOG_DIR."""
    from mraa.config import apply_overrides, load_config

    if config is None:
        saved = log_dir / "config.yaml"
        if not (resume and saved.is_file()):
            raise MRAAError("--config is required (except with --resume in a LOG_DIR holding config.yaml)")
        config = saved
    cfg = load_config(config)
    return apply_overrides(cfg, overrides) if overrides else cfg


def run(args: argparse.Namespace) -> int:
    from mraa.training.recipes import train_reconstruction

    cfg = resolve_config(args.config, args.log_dir, args.resume, args.set)
    quiet_other_ranks()
    try:
        with flag_hints():
            result = train_reconstruction(
                cfg,
                args.log_dir,
                data=args.data,
                vgg_weights=args.vgg_weights,
                perceptual=not args.no_perceptual,
                keep_all_checkpoints=args.keep_all_checkpoints,
                options=run_options(args),
            )
    except KeyboardInterrupt:
        return report_interrupt(args, "reconstruction")
    where = result.checkpoint or "no new checkpoint"
    return report(f"trained {result.epochs} epochs ({result.pairs_seen} pairs, seed {result.seed}): {where}")
