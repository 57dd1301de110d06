"""Pieces shared by the reconstruction and AVD training loops: seeding, data loading, the pairs-seen
learning-rate schedule, checkpoint discovery and mixed precision."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import re
from collections.abc import Iterator, Sized
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from mraa.errors import MRAAError
from mraa.training.distributed import DistInfo

log = logging.getLogger(__name__)

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


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_schedule(params: Any, section: str, betas: tuple[float, ...] | None = None) -> None:
    """Refuse schedule values that cannot train (``params``: ``TrainParams`` or ``TrainAVDParams``).

    Checked before a run writes anything: positive epochs, repeats, batch size and checkpoint frequency,
    workers and milestones >= 0, a finite learning rate >= 0, Adam betas in [0, 1), AVD weights >= 0.
    """
    problems = [
        f"{section}.{name} must be a positive integer, got {getattr(params, name)!r}"
        for name in ("num_epochs", "num_repeats", "batch_size", "checkpoint_freq", "checkpoint_keep_every")
        if not (_is_int(getattr(params, name)) and getattr(params, name) > 0)
    ]
    if not (_is_int(params.dataloader_workers) and params.dataloader_workers >= 0):
        problems.append(
            f"{section}.dataloader_workers must be an integer >= 0, got {params.dataloader_workers!r}"
        )
    if not all(_is_int(m) and m >= 0 for m in params.epoch_milestones):
        problems.append(
            f"{section}.epoch_milestones must be integers >= 0, got {list(params.epoch_milestones)}"
        )
    numbers = {"lr": params.lr}
    numbers.update(
        {
            n: getattr(params, n)
            for n in ("random_scale", "lambda_shift", "lambda_affine")
            if hasattr(params, n)
        }
    )
    for name, value in numbers.items():
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            problems.append(f"{section}.{name} must be a finite number >= 0, got {value!r}")
    if betas is not None and (
        len(betas) != 2 or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas)
    ):
        problems.append(f"train_params.betas must be two numbers in [0, 1), got {list(betas)}")
    if problems:
        raise MRAAError("; ".join(problems))


def check_training_values(cfg: Any, mode: str) -> None:
    """:func:`check_schedule` on the section of ``cfg`` (an ``MRAAConfig``) that ``mode`` trains with."""
    params = cfg.train_params if mode == "reconstruction" else getattr(cfg, f"train_{mode}_params")
    section = "train_params" if mode == "reconstruction" else f"train_{mode}_params"
    check_schedule(params, section, betas=cfg.train_params.betas)


def autocast(device: torch.device, amp: str | None) -> contextlib.AbstractContextManager:
    """bf16 autocast when ``amp == "bf16"``, else a no-op context."""
    if amp in (None, "", "none", "fp32"):
        return contextlib.nullcontext()
    if amp != "bf16":
        raise MRAAError(f"unsupported mixed precision {amp!r} (use bf16)")
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def check_amp(device: torch.device, amp: str | None) -> str | None:
    """Validate the mixed-precision option; bf16 is meant for CUDA and only warns on CPU."""
    if amp in (None, "", "none", "fp32"):
        return None
    if amp != "bf16":
        raise MRAAError(f"unsupported mixed precision {amp!r} (use bf16)")
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise MRAAError("bf16 autocast requested but this GPU does not support bfloat16")
    if device.type == "cpu":
        from mraa.modules.packed import cpu_bf16_supported

        if not cpu_bf16_supported():
            raise MRAAError(
                "bf16 autocast needs a CPU with native bfloat16 (AVX-512 or AVX-NE-CONVERT); on this one bf16 "
                "convolutions run ~100x slower than fp32: train in fp32"
            )
    if device.type != "cuda":
        log.warning("bf16 autocast on %s: supported, but usually only faster on CUDA", device.type)
    return amp


class EpochLoader:
    """A DataLoader whose shuffling and worker seeds depend only on (seed, epoch, rank).

    That makes an epoch's batches reproducible whatever happened before, so a resumed run sees the same
    pairs as an uninterrupted one. Under DDP a :class:`DistributedSampler` splits each epoch across ranks.

    Args:
        batch_size: the global batch size; each of ``world_size`` processes loads ``batch_size / world_size``.
    """

    def __init__(
        self, dataset: Dataset, batch_size: int, num_workers: int, info: DistInfo, seed: int, pin_memory: bool
    ) -> None:
        if not isinstance(dataset, Sized) or len(dataset) == 0:
            raise MRAAError("the training dataset is empty")
        if batch_size % info.world_size:
            raise MRAAError(
                f"batch_size {batch_size} is the global batch and must be divisible by the number of "
                f"processes ({info.world_size})"
            )
        self.info = info
        self.seed = seed
        self.batch_size = batch_size
        per_rank = batch_size // info.world_size
        self.generator = torch.Generator()
        self.sampler: DistributedSampler | None = None
        if info.distributed:
            self.sampler = DistributedSampler(
                dataset, num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=seed
            )
        self.loader = DataLoader(
            dataset,
            batch_size=per_rank,
            shuffle=self.sampler is None,
            sampler=self.sampler,
            num_workers=num_workers,
            drop_last=True,
            generator=self.generator,
            pin_memory=pin_memory,
        )
        if len(self.loader) == 0:
            raise MRAAError(
                f"the dataset has {len(dataset)} items, fewer than one batch of {per_rank} per process; "
                "lower train_params.batch_size or raise num_repeats"
            )

    def __len__(self) -> int:
        """Steps per epoch (the same on every rank)."""
        return len(self.loader)

    @property
    def pairs_per_epoch(self) -> int:
        """Pairs seen by all processes together in one epoch."""
        return len(self.loader) * self.batch_size

    def epoch(self, epoch: int) -> Iterator[Any]:
        """An iterator over the batches of ``epoch``.

        Datasets (or datasets they wrap, through a ``dataset`` attribute) with a ``set_epoch(epoch)`` method
        are told the epoch first, so randomness kept inside a dataset can be made a function of the epoch.
        """
        self.generator.manual_seed(derive_seed(self.seed, epoch, self.info.rank, SEED_LOADER))
        if self.sampler is not None:
            self.sampler.set_epoch(epoch)
        dataset, seen = self.loader.dataset, 0
        while dataset is not None and seen < 8:
            if callable(getattr(dataset, "set_epoch", None)):
                dataset.set_epoch(epoch)
            dataset, seen = getattr(dataset, "dataset", None), seen + 1
        return iter(self.loader)


class PairsLRSchedule:
    """Step learning-rate decay measured in training pairs seen (all processes together).

    The rate is ``base_lr * gamma ** n`` where ``n`` counts the milestones that ``pairs_seen`` has reached.
    With milestones ``epoch_milestones * pairs_per_epoch`` this equals the official per-epoch ``MultiStepLR``
    at epoch boundaries, and stays tied to the number of pairs when the batch size or world size changes.
    """

    def __init__(
        self, optimizer: torch.optim.Optimizer, base_lr: float, milestones: list[int], gamma: float = 0.1
    ) -> None:
        self.optimizer = optimizer
        self.base_lrs = [base_lr for _ in optimizer.param_groups]
        self.milestones = sorted(int(m) for m in milestones)
        self.gamma = gamma
        self.pairs_seen = 0
        self.update(0)

    def factor(self, pairs_seen: int) -> float:
        return self.gamma ** sum(pairs_seen >= m for m in self.milestones)

    def update(self, pairs_seen: int) -> None:
        """Set the optimizer's learning rates for a run that has seen ``pairs_seen`` pairs."""
        previous = self.factor(self.pairs_seen)
        self.pairs_seen = int(pairs_seen)
        factor = self.factor(self.pairs_seen)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * factor
        if factor != previous:
            log.info("learning rate x%g after %d pairs", factor, self.pairs_seen)

    def get_last_lr(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        return {
            "base_lrs": list(self.base_lrs),
            "milestones": list(self.milestones),
            "gamma": self.gamma,
            "pairs_seen": self.pairs_seen,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the pairs seen; the base rates and milestones come from the current config."""
        if list(state.get("milestones", self.milestones)) != self.milestones:
            log.info("lr milestones (pairs) changed from %s to %s", state.get("milestones"), self.milestones)
        self.pairs_seen = int(state["pairs_seen"])
        factor = self.factor(self.pairs_seen)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * factor
        if self.pairs_seen:
            log.info("learning rate x%g at %d pairs", factor, self.pairs_seen)


_CHECKPOINT_RE = re.compile(r"^(\d+)-cpk-(\w+)\.pth$")


def find_latest_checkpoint(log_dir: str | os.PathLike, mode: str) -> Path | None:
    """The ``{epoch:08d}-cpk-{mode}.pth`` file with the highest epoch in ``log_dir``, if any."""
    log_dir = Path(log_dir)
    if not log_dir.is_dir():
        return None
    found = []
    for path in log_dir.iterdir():
        match = _CHECKPOINT_RE.match(path.name)
        if match and match.group(2) == mode:
            found.append((int(match.group(1)), path))
    return max(found)[1] if found else None


def checkpoint_path(log_dir: str | os.PathLike, epoch: int, mode: str) -> Path:
    """Official naming: ``log_dir/{epoch:08d}-cpk-{mode}.pth`` (epoch = index of the last finished epoch)."""
    return Path(log_dir) / f"{epoch:08d}-cpk-{mode}.pth"
