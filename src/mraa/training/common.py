"""Compatibility: the pieces once gathered here now live in one module per job.

``seeding`` (derived seeds, deterministic kernels), ``schedule`` (schedule checks, pairs-seen learning rate),
``precision`` (bf16 autocast), ``data`` (training dataset and epoch loader) and ``checkpoints`` (names,
latest, pruning). Import from those; these names stay importable from here for existing code.
"""

from mraa.training.checkpoints import checkpoint_path, find_latest_checkpoint
from mraa.training.data import EpochLoader
from mraa.training.precision import autocast, check_amp
from mraa.training.schedule import PairsLRSchedule, check_schedule, check_training_values
from mraa.training.seeding import (
    SEED_GLOBAL,
    SEED_LOADER,
    SEED_TRANSFORM,
    derive_seed,
    new_run_seed,
    seed_everything,
    set_deterministic,
)

__all__ = [
    "SEED_GLOBAL",
    "SEED_LOADER",
    "SEED_TRANSFORM",
    "EpochLoader",
    "PairsLRSchedule",
    "autocast",
    "check_amp",
    "check_schedule",
    "check_training_values",
    "checkpoint_path",
    "derive_seed",
    "find_latest_checkpoint",
    "new_run_seed",
    "seed_everything",
    "set_deterministic",
]
