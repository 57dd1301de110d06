"""The epoch loop shared by reconstruction and AVD training.

Randomness is a pure function of (run seed, epoch, rank): at the start of every epoch the global RNGs, the
data order, the data-loader worker seeds and the loss-side generator (equivariance warps / AVD scaling) are
re-seeded from it. A run resumed from an end-of-epoch checkpoint therefore sees exactly the pairs and random
transforms an uninterrupted run would have seen.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from mraa.atomic import atomic_path
from mraa.checkpoint import load_checkpoint
from mraa.config import MRAAConfig, save_config
from mraa.errors import MRAAError
from mraa.models import MRAAModels
from mraa.training.common import (
    SEED_GLOBAL,
    SEED_TRANSFORM,
    EpochLoader,
    PairsLRSchedule,
    autocast,
    derive_seed,
    find_latest_checkpoint,
    new_run_seed,
    seed_everything,
)
from mraa.training.distributed import DistInfo, all_reduce_mean, barrier, broadcast_int
from mraa.training.logger import RunningMeans, TrainLogger

log = logging.getLogger(__name__)

STATE_KEY = "mraa_train_state"  # our extra checkpoint entry for exact resumption


@dataclass
class LoopState:
    """Position of a run: the next epoch to train, optimisation steps and pairs seen so far, the run seed."""

    next_epoch: int = 0
    step: int = 0
    pairs_seen: int = 0
    seed: int = 0
    last_losses: dict[str, float] = field(default_factory=dict)
    last_checkpoint: Path | None = None

    def to_checkpoint(
        self, mode: str, schedule: PairsLRSchedule, world_size: int, batch_size: int
    ) -> dict[str, Any]:
        return {
            "mode": mode,
            "next_epoch": self.next_epoch,
            "step": self.step,
            "pairs_seen": self.pairs_seen,
            "seed": self.seed,
            "scheduler": schedule.state_dict(),
            "world_size": world_size,
            "batch_size": batch_size,
        }


def state_from_checkpoint(data: dict[str, Any], mode: str, loader: EpochLoader) -> LoopState:
    """Where to continue from a checkpoint; official files (no mraa state) continue after ``epoch_<mode>``."""
    saved = data.get(STATE_KEY)
    if isinstance(saved, dict) and saved.get("mode") == mode:
        return LoopState(
            next_epoch=int(saved["next_epoch"]),
            step=int(saved["step"]),
            pairs_seen=int(saved["pairs_seen"]),
            seed=int(saved["seed"]),
        )
    epoch = data.get(f"epoch_{mode}")
    if epoch is None:
        raise MRAAError(f"the checkpoint has no epoch_{mode} entry: it was not written by {mode} training")
    next_epoch = int(epoch) + 1
    log.info("official checkpoint: continuing after epoch %d", int(epoch))
    return LoopState(next_epoch, next_epoch * len(loader), next_epoch * loader.pairs_per_epoch, seed=-1)


def write_run_config(cfg: MRAAConfig, log_dir: Path, name: str = "config.yaml") -> Path:
    """``log_dir/<name>`` with the resolved config (atomically)."""
    with atomic_path(log_dir / name) as tmp:
        save_config(cfg, tmp)
    return log_dir / name


def resolve_checkpoint(
    log_dir: Path, checkpoint: str | os.PathLike | None, resume: bool, mode: str
) -> Path | None:
    """The file to start from: ``checkpoint`` if given, else with ``resume`` the latest one in ``log_dir``."""
    if checkpoint is not None:
        return Path(checkpoint)
    latest = find_latest_checkpoint(log_dir, mode)
    if not resume:
        if latest is not None:
            log.warning(
                "%s already holds %s checkpoints; starting a new run (resume to continue it)", log_dir, mode
            )
        return None
    if latest is None:
        log.warning("resume: no *-cpk-%s.pth in %s; starting from scratch", mode, log_dir)
    return latest


def choose_seed(seed: int | None, saved: dict[str, Any] | None, info: DistInfo) -> int:
    """The run seed: explicit, else the one saved with a resumed run, else a fresh one (same on all ranks)."""
    saved_seed = saved.get("seed") if isinstance(saved, dict) else None
    if seed is None:
        seed = int(saved_seed) if saved_seed is not None and int(saved_seed) >= 0 else new_run_seed()
    elif saved_seed is not None and int(saved_seed) != seed:
        log.warning(
            "resuming with seed %d instead of the run's %d: the data order will differ from an "
            "uninterrupted run",
            seed,
            int(saved_seed),
        )
    return broadcast_int(int(seed), info)


@dataclass
class RunSetup:
    """What :func:`open_run` found and built: the starting checkpoint, the data loader and the position."""

    log_dir: Path
    start: Path | None  # checkpoint loaded into the models, if any
    data: dict[str, Any]  # its raw contents (optimizer state etc.)
    resuming: bool
    loader: EpochLoader
    state: LoopState


def open_run(
    cfg: MRAAConfig,
    models: MRAAModels,
    dataset: Dataset,
    log_dir: Path,
    info: DistInfo,
    *,
    mode: str,
    checkpoint: str | os.PathLike | None,
    resume: bool,
    seed: int | None,
    batch_size: int,
    num_repeats: int,
    num_workers: int,
    require: tuple[str, ...],
) -> RunSetup:
    """Common start of a training run: log dir and config, starting checkpoint, seed, loader, position."""
    if info.is_main:
        log_dir.mkdir(parents=True, exist_ok=True)
        write_run_config(cfg, log_dir, "config.yaml" if mode == "reconstruction" else f"config-{mode}.yaml")
    start = resolve_checkpoint(log_dir, checkpoint, resume, mode)
    data: dict[str, Any] = {}
    resuming = False
    if start is not None:
        data = load_checkpoint(start, models, require=require)
        resuming = resume and f"epoch_{mode}" in data
        if resume and not resuming:
            raise MRAAError(f"cannot resume {mode} training from {start}: it is not a {mode} checkpoint")
        log.info("%s from %s", "resuming" if resuming else "initial weights", start)
    saved = data.get(STATE_KEY) if resuming else None
    seed = choose_seed(seed, saved if isinstance(saved, dict) and saved.get("mode") == mode else None, info)
    if num_repeats > 1:
        from mraa.data.frames_dataset import DatasetRepeater

        dataset = DatasetRepeater(dataset, num_repeats)
    loader = EpochLoader(dataset, batch_size, num_workers, info, seed, pin_memory=info.device.type == "cuda")
    state = state_from_checkpoint(data, mode, loader) if resuming else LoopState()
    state.seed = seed
    return RunSetup(log_dir, start, data, resuming, loader, state)


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Tensor]:
    non_blocking = device.type == "cuda"
    return {k: v.to(device, non_blocking=non_blocking) for k, v in batch.items() if isinstance(v, Tensor)}


def _loss_values(losses: dict[str, Tensor], total: Tensor, info: DistInfo) -> dict[str, float]:
    """Loss values as floats, averaged over processes, with one device synchronisation."""
    stacked = torch.stack([value.detach().float() for value in losses.values()] + [total.detach().float()])
    stacked = all_reduce_mean(stacked, info)
    return dict(zip([*losses, "loss"], stacked.tolist()))


def run_epochs(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: PairsLRSchedule,
    loader: EpochLoader,
    state: LoopState,
    *,
    info: DistInfo,
    num_epochs: int,
    checkpoint_freq: int,
    save: Callable[[int, LoopState], Path],
    logger: TrainLogger,
    rng: torch.Generator,
    amp: str | None = None,
    visualize: Callable[[dict[str, Tensor], dict], np.ndarray] | None = None,
    progress: bool = True,
    desc: str = "train",
) -> LoopState:
    """Train from ``state.next_epoch`` to ``num_epochs``; ``model(batch)`` returns ``(losses, outputs)``.

    ``save(epoch, state)`` is called on the main process every ``checkpoint_freq`` epochs and after the last.
    """
    from tqdm.auto import tqdm

    device = info.device
    for epoch in range(state.next_epoch, num_epochs):
        seed_everything(derive_seed(state.seed, epoch, info.rank, SEED_GLOBAL))
        rng.manual_seed(derive_seed(state.seed, epoch, info.rank, SEED_TRANSFORM))
        model.train()
        means = RunningMeans()
        batch = outputs = None
        bar = tqdm(
            loader.epoch(epoch),
            total=len(loader),
            desc=f"{desc} epoch {epoch + 1}/{num_epochs}",
            disable=not (progress and info.is_main),
            leave=False,
            dynamic_ncols=True,
        )
        for raw in bar:
            schedule.update(state.pairs_seen)
            batch = _to_device(raw, device)
            with autocast(device, amp):
                losses, outputs = model(batch)
            loss = sum(value.float() for value in losses.values())
            values = _loss_values(losses, loss, info)
            if not all(math.isfinite(v) for v in values.values()):
                raise MRAAError(
                    f"non-finite loss at epoch {epoch} step {state.step}: {values} "
                    "(try a lower learning rate, or train without --amp)"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            state.step += 1
            state.pairs_seen += loader.batch_size
            means.add(values)
            state.last_losses = values
            logger.log_step(
                {
                    "epoch": epoch,
                    "step": state.step,
                    "pairs_seen": state.pairs_seen,
                    "lr": schedule.get_last_lr()[0],
                    **values,
                }
            )
            bar.set_postfix(loss=f"{values['loss']:.4g}", refresh=False)
        bar.close()
        state.next_epoch = epoch + 1
        logger.log_epoch(epoch, means.means(), state.pairs_seen, state.step)
        if visualize is not None and info.is_main and batch is not None:
            logger.save_image(f"{epoch:08d}-{desc}", visualize(batch, outputs), step=state.step)
        if (epoch + 1) % max(checkpoint_freq, 1) == 0 or epoch + 1 == num_epochs:
            if info.is_main:
                state.last_checkpoint = save(epoch, state)
                log.info("saved %s", state.last_checkpoint)
            barrier(info)
    return state
