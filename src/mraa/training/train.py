"""Reconstruction training: region predictor, background predictor and generator, jointly.

``train(cfg, models, dataset, log_dir)`` runs Adam (``train_params.lr``/``betas``) on the losses of
:class:`~mraa.training.reconstruction_model.ReconstructionModel`, dividing the learning rate by 10 when the
number of pairs seen reaches each ``epoch_milestones`` epoch. Checkpoints
``log_dir/{epoch:08d}-cpk-reconstruction.pth`` hold ``generator``, ``region_predictor``, ``bg_predictor``,
``optimizer_reconstruction`` and ``epoch_reconstruction`` (official keys), the resolved ``config`` and
``mraa_train_state`` (next epoch, steps, pairs seen, seed, scheduler), which makes ``resume=True`` continue
exactly like an uninterrupted run. The AVD network is not saved: it is trained afterwards by ``train_avd``.

Launched by ``torchrun``, each process trains on its share of every batch under DistributedDataParallel.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import Dataset

from mraa.checkpoint import save_checkpoint
from mraa.config import MRAAConfig
from mraa.errors import MRAAError
from mraa.losses import Vgg19Features
from mraa.models import MRAAModels
from mraa.training.common import PairsLRSchedule, check_amp, checkpoint_path, set_deterministic
from mraa.training.distributed import (
    DistInfo,
    cleanup_distributed,
    init_distributed,
    maybe_sync_batchnorm,
    wrap_ddp,
)
from mraa.training.logger import TrainLogger
from mraa.training.loop import STATE_KEY, LoopState, RunSetup, open_run, run_epochs
from mraa.training.reconstruction_model import ReconstructionModel, load_vgg
from mraa.training.visualization import reconstruction_image

log = logging.getLogger(__name__)

MODE = "reconstruction"
RECONSTRUCTION_KEYS = ("generator", "region_predictor", "bg_predictor")


@dataclass
class TrainResult:
    """Summary of a finished (or already complete) run."""

    log_dir: Path
    checkpoint: Path | None  # the last checkpoint written by this call
    epochs: int  # epochs completed in total
    steps: int
    pairs_seen: int
    seed: int
    last_losses: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_state(cls, log_dir: Path, state) -> TrainResult:
        """The result of a run whose loop ended in ``state`` (a ``LoopState``)."""
        return cls(log_dir, state.last_checkpoint, state.next_epoch, state.step, state.pairs_seen, state.seed,
                   state.last_losses)  # fmt: skip


def train(
    cfg: MRAAConfig,
    models: MRAAModels,
    dataset: Dataset,
    log_dir: str | os.PathLike,
    device: str | torch.device | None = None,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    vgg_weights: str | os.PathLike | None = None,
    vgg: Vgg19Features | None = None,
    seed: int | None = None,
    deterministic: bool = False,
    amp: str | None = None,
    num_workers: int | None = None,
    progress: bool = True,
    tensorboard: bool = True,
    visualize: bool = True,
) -> TrainResult:
    """Train the reconstruction networks on (source, driving) pairs from ``dataset``.

    Args:
        dataset: items with ``source`` and ``driving`` (3, H, W) float tensors in [0, 1] (e.g. a training
            ``FramesDataset``); repeated ``train_params.num_repeats`` times per epoch.
        device: "cpu", "cuda", "cuda:1"...; None picks CUDA when available. Under ``torchrun`` each process
            uses ``cuda:LOCAL_RANK``.
        checkpoint: with ``resume``, the checkpoint to continue from; without, weights to start from
            (a fresh optimizer and epoch 0).
        resume: continue a run (the latest checkpoint in ``log_dir`` unless ``checkpoint`` is given),
            restoring weights, optimizer, learning-rate position, epoch, pairs seen and seed.
        vgg_weights: a local VGG19 file for the perceptual loss; required when a perceptual weight is
            non-zero (``vgg`` may be passed instead).
        seed: run seed (saved for resuming); None draws one, or reuses the resumed run's.
        deterministic: request deterministic kernels (``torch.use_deterministic_algorithms``).
        amp: "bf16" for bfloat16 autocast (meant for CUDA), None for float32.
        num_workers: data-loader workers (default ``train_params.dataloader_workers``).

    Returns:
        A :class:`TrainResult`.
    """
    info = init_distributed(device)
    try:
        set_deterministic(deterministic)
        amp = check_amp(info.device, amp)
        if vgg is None:
            vgg = load_vgg(cfg.train_params, vgg_weights)  # refuses perceptual weights without VGG, early
        tp = cfg.train_params
        run = open_run(
            cfg,
            models,
            dataset,
            Path(log_dir),
            info,
            mode=MODE,
            checkpoint=checkpoint,
            resume=resume,
            seed=seed,
            batch_size=tp.batch_size,
            num_repeats=tp.num_repeats,
            num_workers=tp.dataloader_workers if num_workers is None else num_workers,
            require=("generator", "region_predictor"),
        )
        return _fit(
            cfg,
            models,
            run,
            info,
            vgg=vgg,
            amp=amp,
            progress=progress,
            tensorboard=tensorboard,
            visualize=visualize,
        )
    finally:
        cleanup_distributed(info)


def _fit(
    cfg: MRAAConfig,
    models: MRAAModels,
    run: RunSetup,
    info: DistInfo,
    *,
    vgg: Vgg19Features | None,
    amp: str | None,
    progress: bool,
    tensorboard: bool,
    visualize: bool,
) -> TrainResult:
    tp, state, loader = cfg.train_params, run.state, run.loader
    models.to(info.device)
    rng = torch.Generator()
    model = ReconstructionModel(models.region_predictor, models.bg_predictor, models.generator, tp, vgg, rng)
    model = maybe_sync_batchnorm(model.to(info.device), tp.use_sync_bn, info)
    optimizer = torch.optim.Adam(model.trainable_parameters(), lr=tp.lr, betas=tuple(tp.betas))
    if run.resuming:
        if "optimizer_reconstruction" in run.data:
            optimizer.load_state_dict(run.data["optimizer_reconstruction"])
            for group in optimizer.param_groups:  # hyper-parameters come from the config
                group["betas"] = tuple(tp.betas)
        else:
            log.warning("%s has no optimizer_reconstruction: Adam restarts from zero moments", run.start)
    schedule = PairsLRSchedule(optimizer, tp.lr, [m * loader.pairs_per_epoch for m in tp.epoch_milestones])
    schedule.load_state_dict({"pairs_seen": state.pairs_seen})
    find_unused = getattr(models.generator, "pixelwise_flow_predictor", None) is None
    ddp_model = wrap_ddp(model, info, find_unused_parameters=find_unused)
    if state.next_epoch >= tp.num_epochs:
        log.info(
            "already trained for %d epochs (num_epochs %d): nothing to do", state.next_epoch, tp.num_epochs
        )
        return TrainResult(run.log_dir, None, state.next_epoch, state.step, state.pairs_seen, state.seed)
    log.info(
        "training %d epochs of %d steps (%d pairs/epoch, global batch %d, %d process(es)) on %s",
        tp.num_epochs - state.next_epoch,
        len(loader),
        loader.pairs_per_epoch,
        tp.batch_size,
        info.world_size,
        info.device,
    )

    def save(epoch: int, st: LoopState) -> Path:
        return save_checkpoint(
            checkpoint_path(run.log_dir, epoch, MODE),
            models,
            cfg,
            include=RECONSTRUCTION_KEYS,
            optimizer_reconstruction=optimizer.state_dict(),
            epoch_reconstruction=epoch,
            **{STATE_KEY: st.to_checkpoint(MODE, schedule, info.world_size, tp.batch_size)},
        )

    logger = TrainLogger(run.log_dir, enabled=info.is_main, tensorboard=tensorboard)
    logger.truncate_after(state.pairs_seen)
    try:
        state = run_epochs(
            ddp_model,
            optimizer,
            schedule,
            loader,
            state,
            info=info,
            num_epochs=tp.num_epochs,
            checkpoint_freq=tp.checkpoint_freq,
            save=save,
            logger=logger,
            rng=rng,
            amp=amp,
            visualize=reconstruction_image if visualize else None,
            progress=progress,
            desc="rec",
        )
    finally:
        logger.close()
    return TrainResult.from_state(run.log_dir, state)


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
