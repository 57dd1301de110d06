"""Training data: the dataset a config describes, and the per-epoch reproducible data loader."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sized
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from mraa.config import MRAAConfig
from mraa.errors import MRAAError
from mraa.training.distributed import DistInfo
from mraa.training.seeding import SEED_LOADER, derive_seed


def build_training_dataset(cfg: MRAAConfig, root_dir: str | os.PathLike | None = None) -> Dataset:
    """The training ``FramesDataset`` described by ``cfg.dataset_params`` (``root_dir`` overrides its root)."""
    from mraa.data.frames_dataset import FramesDataset

    dp = cfg.dataset_params
    root = Path(root_dir if root_dir is not None else dp.root_dir)
    if not root.exists():
        raise MRAAError(f"dataset not found: {root}")
    return FramesDataset(
        root_dir=str(root),
        frame_shape=dp.resolved_frame_shape,
        id_sampling=dp.id_sampling,
        is_train=True,
        pairs_list=dp.pairs_list,
        augmentation_params=dp.augmentation_params,
    )


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
