"""``mraa train``: train the region predictor, background predictor and generator on a video dataset."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from mraa.errors import MRAAError


def add_common_training_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``train`` and ``train-avd``."""
    parser.add_argument(
        "--data", help="dataset folder holding train/ (default: dataset_params.root_dir of the config)"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in LOG_DIR from its latest checkpoint, with the exact optimizer, learning "
        "rate, epoch, pairs-seen and data-order state (starts from scratch when there is none)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set train_params.batch_size=8 (repeatable; YAML values)",
    )
    parser.add_argument(
        "--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available, else cpu)"
    )
    parser.add_argument(
        "--seed", type=int, help="run seed: weight init, data order, random warps (default: random, saved)"
    )
    parser.add_argument(
        "--deterministic", action="store_true", help="request deterministic kernels (slower on CUDA)"
    )
    parser.add_argument(
        "--amp", choices=("bf16",), help="bfloat16 mixed precision (autocast; meant for CUDA GPUs)"
    )
    parser.add_argument("--workers", type=int, help="data-loader workers (default: from the config)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--no-tensorboard",
        action="store_true",
        help="do not write TensorBoard logs (they are written when the tensorboard package is installed)",
    )


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train the reconstruction model (regions, background motion, generator)",
        description=(
            "Train the region predictor, background motion predictor and generator on (source, driving) "
            "frame pairs of DATA/train. Writes LOG_DIR/{epoch:08d}-cpk-reconstruction.pth every "
            "checkpoint_freq epochs and at the end, LOG_DIR/config.yaml, per-step losses in "
            "LOG_DIR/metrics.jsonl and one picture per epoch in LOG_DIR/train-vis/. Multi-GPU: "
            "torchrun --nproc_per_node N -m mraa train ... (train_params.batch_size is the global batch). "
            "Then train the AVD network with mraa train-avd."
        ),
    )
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
    add_common_training_arguments(parser)
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
    parser.set_defaults(func=run)


def resolve_config(config: str | None, log_dir: Path, resume: bool, overrides: list[str], saved_name: str):
    """The run's config: ``--config``, else (when resuming) the copy the run saved in LOG_DIR."""
    from mraa.config import apply_overrides, load_config

    if config is None:
        saved = log_dir / saved_name
        if not (resume and saved.is_file()):
            raise MRAAError(
                "--config is required (except with --resume in a LOG_DIR holding " + saved_name + ")"
            )
        config = saved
    cfg = load_config(config)
    return apply_overrides(cfg, overrides) if overrides else cfg


def quiet_other_ranks() -> None:
    """Under torchrun, only rank 0 reports progress; other ranks log warnings and errors only."""
    import logging

    if int(os.environ.get("RANK", "0")) != 0:
        logging.getLogger().setLevel(logging.WARNING)


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def run(args: argparse.Namespace) -> int:
    import torch

    from mraa.models import build_models
    from mraa.training.reconstruction_model import disable_perceptual, load_vgg
    from mraa.training.train import build_training_dataset, train

    quiet_other_ranks()
    cfg = resolve_config(args.config, args.log_dir, args.resume, args.set, "config.yaml")
    if args.no_perceptual:
        cfg = disable_perceptual(cfg)
    vgg = load_vgg(cfg.train_params, args.vgg_weights)  # fails before the dataset scan when VGG is missing
    if args.seed is not None:
        torch.manual_seed(args.seed)
    models = build_models(cfg.model_params)
    dataset = build_training_dataset(cfg, args.data)
    result = train(
        cfg,
        models,
        dataset,
        args.log_dir,
        device=args.device,
        checkpoint=args.checkpoint,
        resume=args.resume,
        vgg=vgg,
        seed=args.seed,
        deterministic=args.deterministic,
        amp=args.amp,
        num_workers=args.workers,
        progress=not args.no_progress,
        tensorboard=not args.no_tensorboard,
    )
    if is_main_process():
        where = result.checkpoint or "no new checkpoint"
        print(f"trained {result.epochs} epochs ({result.pairs_seen} pairs, seed {result.seed}): {where}")
    return 0
