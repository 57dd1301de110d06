"""What ``mraa train`` and ``mraa train-avd`` share: their common options and the run itself."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Callable
from typing import Any

from mraa.errors import MRAAError

# library errors -> what to do about them on the command line
_RUN_EXISTS_HINT = "pass --resume to continue it, or --overwrite to delete it and train again"
_NO_VGG_HINT = (
    "pass --vgg-weights PATH (a local torchvision-layout vgg19 state dict), or train without it with "
    "--no-perceptual (or --set 'train_params.loss_weights.perceptual=[0,0,0,0,0]' and a loss_weights.l1 weight)"
)


def add_training_parser(
    subparsers: argparse._SubParsersAction,
    name: str,
    run: Callable[[argparse.Namespace], int],
    summary: str,
    description: str,
    *,
    own: Callable[[argparse.ArgumentParser], None],
) -> argparse.ArgumentParser:
    """The ``name`` sub-command: its ``own(parser)`` options first, then the options both trainings share."""
    parser = subparsers.add_parser(name, help=summary, description=description)
    own(parser)
    add_common_training_arguments(parser)
    parser.set_defaults(func=run)
    return parser


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
        "--overwrite",
        action="store_true",
        help="LOG_DIR holds a previous run: delete its checkpoints, config, metrics and pictures and train "
        "again (without --overwrite or --resume such a folder is refused)",
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


def is_main_process() -> bool:
    """False on the ranks other than 0 under ``torchrun``."""
    return int(os.environ.get("RANK", "0")) == 0


def run_training(
    args: argparse.Namespace,
    cfg: Any,
    mode: str,
    entry: Callable[..., Any],
    describe: Callable[[Any], str],
    setup: Callable[[Any], dict[str, Any]] | None = None,
) -> int:
    """Check ``cfg``, build the models and the dataset, call ``entry`` (``train`` / ``train_avd``), report.

    ``setup(cfg)`` gives ``entry``'s extra arguments (e.g. the VGG), before the dataset scan. Under
    torchrun only rank 0 reports progress (other ranks log warnings and errors only) and prints.
    """
    import torch

    from mraa.models import build_models
    from mraa.training.common import check_training_values
    from mraa.training.reconstruction_model import MissingVGGWeights
    from mraa.training.rundir import RunExistsError
    from mraa.training.train import build_training_dataset

    if not is_main_process():
        logging.getLogger().setLevel(logging.WARNING)
    check_training_values(cfg, mode)  # before the dataset scan, and before anything is written
    if args.seed is not None:
        torch.manual_seed(args.seed)
    try:
        extra = setup(cfg) if setup is not None else {}
        models = build_models(cfg.model_params)
        dataset = build_training_dataset(cfg, args.data)
        result = entry(cfg, models, dataset, args.log_dir, **options_from_args(args), **extra)
    except RunExistsError as err:
        raise MRAAError(f"{err}: {_RUN_EXISTS_HINT}") from err
    except MissingVGGWeights as err:
        raise MRAAError(f"the perceptual loss needs VGG19 weights, never downloaded: {_NO_VGG_HINT}") from err
    if is_main_process():
        print(describe(result))
    return 0


def options_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`mraa.training.loop.RunOptions` fields given on the command line."""
    return {
        "checkpoint": args.checkpoint,
        "resume": args.resume,
        "overwrite": args.overwrite,
        "device": args.device,
        "seed": args.seed,
        "deterministic": args.deterministic,
        "amp": args.amp,
        "num_workers": args.workers,
        "progress": not args.no_progress,
        "tensorboard": not args.no_tensorboard,
    }
