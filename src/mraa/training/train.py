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
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from mraa.config import MRAAConfig
from mraa.losses import Vgg19Features
from mraa.models import MRAAModels
from mraa.training.checkpoints import find_latest_checkpoint
from mraa.training.data import build_training_dataset
from mraa.training.loop import RunOptions, Task, TrainResult, fit
from mraa.training.reconstruction_model import ReconstructionModel, load_vgg
from mraa.training.visualization import reconstruction_image

log = logging.getLogger(__name__)

MODE = "reconstruction"
RECONSTRUCTION_KEYS = ("generator", "region_predictor", "bg_predictor")

__all__ = ["RECONSTRUCTION_KEYS", "RunOptions", "TrainResult", "build_training_dataset", "train"]


def train(
    cfg: MRAAConfig,
    models: MRAAModels,
    dataset: Dataset,
    log_dir: str | os.PathLike,
    *,
    vgg_weights: str | os.PathLike | None = None,
    vgg: Vgg19Features | None = None,
    **options: Any,
) -> TrainResult:
    """Train the reconstruction networks on (source, driving) pairs from ``dataset``.

    Args:
        dataset: items with ``source`` and ``driving`` (3, H, W) float tensors in [0, 1] (e.g. a training
            ``FramesDataset``); repeated ``train_params.num_repeats`` times per epoch.
        vgg_weights: a local VGG19 file for the perceptual loss; required when a perceptual weight is
            non-zero (``vgg`` may be passed instead).
        options: the fields of :class:`~mraa.training.loop.RunOptions` (``device``, ``resume``, ``seed``,
            ...). Here ``checkpoint`` is, with ``resume``, the checkpoint to continue from (default: the
            latest in ``log_dir``); without, weights to start from (a fresh optimizer and epoch 0).

    Returns:
        A :class:`TrainResult`.
    """
    run_options = RunOptions(**options)
    if vgg is None:
        vgg = load_vgg(cfg.train_params, vgg_weights)  # refuses perceptual weights without VGG, early

    def build(rng: torch.Generator) -> ReconstructionModel:
        networks = (models.region_predictor, models.bg_predictor, models.generator)
        return ReconstructionModel(*networks, cfg.train_params, vgg, rng)

    task = Task(
        mode=MODE,
        params=cfg.train_params,
        build=build,
        trainable=lambda model: model.trainable_parameters(),
        start=reconstruction_start,
        require=("generator", "region_predictor"),
        save=RECONSTRUCTION_KEYS,
        supersedes=("avd",),  # an AVD network trained on the previous run's regions is stale
        visualize=reconstruction_image,
        find_unused_parameters=getattr(models.generator, "pixelwise_flow_predictor", None) is None,
    )
    return fit(cfg, models, dataset, log_dir, task=task, options=run_options)


def reconstruction_start(log_dir: Path, options: RunOptions) -> tuple[Path | None, bool]:
    """The checkpoint given, else when resuming the latest reconstruction checkpoint in ``log_dir``."""
    if options.checkpoint is not None:
        return Path(options.checkpoint), options.resume
    latest = find_latest_checkpoint(log_dir, MODE) if options.resume else None
    if options.resume and latest is None:
        log.warning("resume: no *-cpk-%s.pth in %s; starting from scratch", MODE, log_dir)
    return latest, options.resume
