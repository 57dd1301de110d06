"""Run seeds: derived per (run seed, epoch, rank, stream), global seeding and deterministic kernels."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

# stream tags mixed into derived seeds, so that each random stream is independent of the others
SEED_GLOBAL, SEED_LOADER, SEED_TRANSFORM = 0, 1, 2


def derive_seed(*keys: int) -> int:
    """A 32-bit seed derived from integers (e.g. run seed, epoch, rank, stream), via numpy's SeedSequence."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1, np.uint32)[0])


def new_run_seed() -> int:
    """A fresh random seed for a run that was not given one (it is saved in checkpoints for resuming)."""
    return int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, numpy's global generator and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def set_deterministic(enabled: bool) -> None:
    """Ask torch for deterministic kernels (warn-only for ops without one, e.g. grid_sample's CUDA backward)."""
    if not enabled:
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
