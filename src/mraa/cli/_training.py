"""What ``mraa train`` and ``mraa train-avd`` share: their common options and the run itself."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import shlex
import sys
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
        "--data",
        help="dataset folder holding train/ (default: dataset_params.root_dir of the config; the run's "
        "saved config records the folder used, so --resume finds it again)",
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
    parser.add_argument(
        "--keep-all-checkpoints",
        action="store_true",
        help="keep every checkpoint written (default: when checkpoint_freq is below checkpoint_keep_every, "
        "10 unless the config says otherwise, only the newest and those of every checkpoint_keep_every-th "
        "epoch stay)",
    )
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

    from mraa.config import apply_overrides
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
    cfg = with_data_root(cfg, args.data)  # the saved config records the dataset used: --resume finds it
    if args.data is None and not os.path.exists(cfg.dataset_params.root_dir):
        raise MRAAError(
            f"dataset not found: {cfg.dataset_params.root_dir} (the config's dataset_params.root_dir, relative "
            "to the current folder): pass --data DIR"
        )
    if args.keep_all_checkpoints:
        section = "train_params" if mode == "reconstruction" else "train_avd_params"
        cfg = apply_overrides(cfg, [f"{section}.checkpoint_keep_every=1"])
    try:
        extra = setup(cfg) if setup is not None else {}
        models = build_models(cfg.model_params)
        dataset = build_training_dataset(cfg)
        result = entry(cfg, models, dataset, args.log_dir, **options_from_args(args), **extra)
    except KeyboardInterrupt:
        if is_main_process():
            print(interrupted_message(args, mode), file=sys.stderr)
        return 130
    except RunExistsError as err:
        raise MRAAError(f"{err}: {_RUN_EXISTS_HINT}") from err
    except MissingVGGWeights as err:
        raise MRAAError(f"the perceptual loss needs VGG19 weights, never downloaded: {_NO_VGG_HINT}") from err
    if is_main_process():
        print(describe(result))
    return 0


def with_data_root(cfg: Any, data: str | os.PathLike | None) -> Any:
    """``cfg`` with ``dataset_params.root_dir`` set to ``--data`` (as given), when given."""
    if data is None:
        return cfg
    return dataclasses.replace(
        cfg, dataset_params=dataclasses.replace(cfg.dataset_params, root_dir=str(data))
    )


def resume_command(args: argparse.Namespace, mode: str) -> str:
    """The command line that continues the run in ``args.log_dir`` (its saved config holds the rest)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    launcher = (
        f"torchrun --nproc_per_node {os.environ.get('LOCAL_WORLD_SIZE', world)} -m mraa"
        if world > 1
        else "mraa"
    )
    words = ["train" if mode == "reconstruction" else "train-avd", "--log-dir", str(args.log_dir), "--resume"]
    if getattr(args, "vgg_weights", None):
        words += ["--vgg-weights", str(args.vgg_weights)]
    if args.amp:
        words += ["--amp", args.amp]
    return " ".join([launcher, *(shlex.quote(word) for word in words)])


def interrupted_message(args: argparse.Namespace, mode: str) -> str:
    """One line after Ctrl-C: the last checkpoint saved in LOG_DIR (path and epoch) and how to resume."""
    from mraa.training.common import find_latest_checkpoint
    from mraa.training.rundir import run_files

    latest = find_latest_checkpoint(args.log_dir, mode) if args.log_dir is not None else None
    if latest is None:
        again = " with --overwrite" if args.log_dir is not None and run_files(args.log_dir, mode) else ""
        return f"interrupted before the first checkpoint was saved: nothing to resume; run the command again{again}"
    epoch = int(latest.name.split("-", 1)[0])
    return f"interrupted: last checkpoint {latest} (epoch {epoch}); resume with: {resume_command(args, mode)}"


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
