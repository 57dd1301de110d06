"""What ``mraa train`` and ``mraa train-avd`` share: their common options, the run options, the reports."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shlex
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from mraa.errors import MRAAError

if TYPE_CHECKING:
    from mraa.training.loop import RunOptions

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


def quiet_other_ranks() -> None:
    """Under torchrun only rank 0 reports progress (other ranks log warnings and errors only) and prints."""
    if not is_main_process():
        logging.getLogger().setLevel(logging.WARNING)


@contextlib.contextmanager
def flag_hints() -> Iterator[None]:
    """The library's training errors, with what to do about them on the command line."""
    from mraa.training.recipes import DatasetNotFound
    from mraa.training.reconstruction_model import MissingVGGWeights
    from mraa.training.rundir import RunExistsError

    try:
        yield
    except RunExistsError as err:
        raise MRAAError(f"{err}: {_RUN_EXISTS_HINT}") from err
    except MissingVGGWeights as err:
        raise MRAAError(f"the perceptual loss needs VGG19 weights, never downloaded: {_NO_VGG_HINT}") from err
    except DatasetNotFound as err:
        raise MRAAError(f"{err}: pass --data DIR") from err


def report_interrupt(args: argparse.Namespace, mode: str) -> int:
    """After Ctrl-C: rank 0 prints the last checkpoint and how to resume; the exit code 130."""
    if is_main_process():
        print(interrupted_message(args, mode), file=sys.stderr)
    return 130


def report(line: str) -> int:
    """Print the run's summary (rank 0 only); the exit code 0."""
    if is_main_process():
        print(line)
    return 0


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
    from mraa.training.checkpoints import find_latest_checkpoint
    from mraa.training.rundir import run_files

    latest = find_latest_checkpoint(args.log_dir, mode) if args.log_dir is not None else None
    if latest is None:
        again = " with --overwrite" if args.log_dir is not None and run_files(args.log_dir, mode) else ""
        return f"interrupted before the first checkpoint was saved: nothing to resume; run the command again{again}"
    epoch = int(latest.name.split("-", 1)[0])
    return f"interrupted: last checkpoint {latest} (epoch {epoch}); resume with: {resume_command(args, mode)}"


def run_options(args: argparse.Namespace) -> RunOptions:
    """The :class:`mraa.training.loop.RunOptions` given on the command line."""
    from mraa.training.loop import RunOptions

    return RunOptions(
        checkpoint=args.checkpoint,
        resume=args.resume,
        overwrite=args.overwrite,
        device=args.device,
        seed=args.seed,
        deterministic=args.deterministic,
        amp=args.amp,
        num_workers=args.workers,
        progress=not args.no_progress,
        tensorboard=not args.no_tensorboard,
    )
