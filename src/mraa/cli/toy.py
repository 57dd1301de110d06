"""``mraa toy``: the paper's rotated-rectangles experiment (naive vs regression vs PCA)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from pathlib import Path

from mraa.errors import MRAAError

log = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "toy",
        help="rotated-rectangles toy experiment: naive vs regression vs PCA angle prediction",
        description=(
            "Train the naive, regression-based and PCA-based angle predictors on growing training sets of "
            "rotated rectangles and write results.csv, results.md, error_vs_size.png and samples.png. Resumable: runs "
            "already in OUT/results.csv are read back, not repeated."
        ),
    )
    parser.add_argument("--out", required=True, type=Path, help="output folder (created if missing)")
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=None,
        help="training-set sizes (default 32 64 128 256 512 1024)",
    )
    parser.add_argument("--epochs", type=int, default=None, help="epochs per run (default 100, as the paper)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per (network, size) (default 5)")
    parser.add_argument(
        "--networks",
        nargs="+",
        choices=("naive", "regression", "pca"),
        default=None,
        help="networks to train (default all three)",
    )
    parser.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="image side in pixels, divisible by 8, at most 256 (default 24)",
    )
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny smoke-test settings (sizes 8 16, 2 epochs, 1 seed, 16x16 images); explicit flags override",
    )
    parser.add_argument(
        "--no-plot", action="store_true", help="skip error_vs_size.png (no matplotlib needed)"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run)


def _check_flags(args: argparse.Namespace) -> None:
    """One clear line for numeric flags out of range (before any work starts)."""
    from mraa.toy.runner import MAX_EPOCHS, MAX_IMAGE_SIZE, MAX_SEEDS, MAX_TRAIN_SIZE

    bounds = {
        "sizes": (1, MAX_TRAIN_SIZE),
        "epochs": (1, MAX_EPOCHS),
        "seeds": (1, MAX_SEEDS),
        "image_size": (8, MAX_IMAGE_SIZE),
        "threads": (1, 1024),
    }
    for name, (low, high) in bounds.items():
        value = getattr(args, name)
        for item in value if isinstance(value, list) else [value]:
            if item is not None and not low <= item <= high:
                flag = "--" + name.replace("_", "-")
                raise MRAAError(f"{flag} must be between {low} and {high}, got {item}")


def run(args: argparse.Namespace) -> int:
    import torch

    from mraa.toy.runner import (
        CSV_NAME,
        PLOT_NAME,
        QUICK_CONFIG,
        SAMPLES_NAME,
        ToyConfig,
        check_config,
        read_results_csv,
        results_table,
        run_toy,
    )

    config = QUICK_CONFIG if args.quick else ToyConfig()
    overrides = {
        "sizes": tuple(args.sizes) if args.sizes else None,
        "epochs": args.epochs,
        "seeds": args.seeds,
        "networks": tuple(args.networks) if args.networks else None,
        "image_size": args.image_size,
    }
    config = dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})
    _check_flags(args)
    check_config(config)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        device = torch.device(args.device)
    except RuntimeError as exc:
        raise MRAAError(f"bad --device {args.device!r}: {exc}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise MRAAError("--device cuda requested but CUDA is not available")
    start = time.perf_counter()
    results = run_toy(args.out, config, device=device, progress=not args.no_progress)
    elapsed = time.perf_counter() - start
    from mraa.toy.plot import plot_error_vs_size, write_sample_grid

    write_sample_grid(args.out / SAMPLES_NAME, config.image_size)
    if not args.no_plot:
        plot_error_vs_size(read_results_csv(args.out / CSV_NAME), args.out / PLOT_NAME)
    print(results_table(results), end="")
    print(f"{len(results)} runs in {args.out} (this invocation: {elapsed / 60:.1f} min)")
    return 0
