"""Training entered through plain functions: a config and a log folder in, a finished run out.

:func:`train_reconstruction` and :func:`train_avd` check the config, build the networks and the training
dataset it describes, and run the one loop (``mraa.training.loop.fit``) through ``train.train`` /
``train_avd.train_avd``, which take networks and a dataset built elsewhere. ``mraa train`` and
``mraa train-avd`` are these two calls. Nothing here writes before the values, the dataset folder and (for
the perceptual loss) the VGG weights are checked.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import torch

from mraa.config import MRAAConfig, apply_overrides
from mraa.errors import MRAAError
from mraa.models import build_models
from mraa.training.data import build_training_dataset
from mraa.training.loop import RunOptions, TrainResult
from mraa.training.reconstruction_model import disable_perceptual, load_vgg
from mraa.training.schedule import check_training_values
from mraa.training.train import train
from mraa.training.train_avd import train_avd as train_avd_networks

__all__ = ["DatasetNotFound", "train_avd", "train_reconstruction", "with_data_root"]


class DatasetNotFound(MRAAError):
    """The config's ``dataset_params.root_dir`` does not exist, and no data folder was given instead."""


def train_reconstruction(
    cfg: MRAAConfig,
    log_dir: str | os.PathLike,
    *,
    data: str | os.PathLike | None = None,
    vgg_weights: str | os.PathLike | None = None,
    perceptual: bool = True,
    keep_all_checkpoints: bool = False,
    options: RunOptions | None = None,
) -> TrainResult:
    """Train the region predictor, background predictor and generator of ``cfg`` on its dataset.

    Args:
        data: the dataset folder (holding ``train/``); default ``cfg.dataset_params.root_dir``. The run's
            saved config records the folder used, so resuming finds it again.
        vgg_weights: a local VGG19 file, required when a perceptual loss weight is non-zero.
        perceptual: False trains without VGG19 (see ``disable_perceptual``).
        keep_all_checkpoints: keep every checkpoint written (``checkpoint_keep_every=1``).
        options: how to run (device, resume, seed, ...); ``options.checkpoint`` as for ``train``.

    Raises:
        MRAAError: bad values, a missing dataset (``DatasetNotFound``), missing VGG weights
            (``MissingVGGWeights``), a folder holding another run (``RunExistsError``), ...
    """
    options = options or RunOptions()
    if not perceptual:
        cfg = disable_perceptual(cfg)
    cfg = _prepared(cfg, "reconstruction", data, keep_all_checkpoints, options)
    vgg = load_vgg(cfg.train_params, vgg_weights)  # before the dataset scan: a missing VGG fails fast
    models = build_models(cfg.model_params)
    dataset = build_training_dataset(cfg)
    return train(cfg, models, dataset, log_dir, vgg=vgg, **_fields(options))


def train_avd(
    cfg: MRAAConfig,
    log_dir: str | os.PathLike,
    *,
    data: str | os.PathLike | None = None,
    keep_all_checkpoints: bool = False,
    options: RunOptions | None = None,
) -> TrainResult:
    """Train the AVD network of ``cfg`` on its dataset, on the region predictor of ``options.checkpoint``.

    Args:
        data, keep_all_checkpoints: as for :func:`train_reconstruction`.
        options: how to run; ``options.checkpoint`` is the trained reconstruction checkpoint (required
            unless ``options.resume`` continues an AVD run in ``log_dir``).
    """
    options = options or RunOptions()
    cfg = _prepared(cfg, "avd", data, keep_all_checkpoints, options)
    models = build_models(cfg.model_params)
    dataset = build_training_dataset(cfg)
    return train_avd_networks(cfg, models, dataset, log_dir, **_fields(options))


def with_data_root(cfg: MRAAConfig, data: str | os.PathLike | None) -> MRAAConfig:
    """``cfg`` with ``dataset_params.root_dir`` set to ``data`` (as given), when given."""
    if data is None:
        return cfg
    return dataclasses.replace(
        cfg, dataset_params=dataclasses.replace(cfg.dataset_params, root_dir=str(data))
    )


def _prepared(
    cfg: MRAAConfig,
    mode: str,
    data: str | os.PathLike | None,
    keep_all_checkpoints: bool,
    options: RunOptions,
) -> MRAAConfig:
    """The config a ``mode`` run trains with, checked before the dataset scan and before anything is written."""
    check_training_values(cfg, mode)
    if options.seed is not None:
        torch.manual_seed(options.seed)  # the networks' initial weights
    cfg = with_data_root(cfg, data)
    if data is None and not os.path.exists(cfg.dataset_params.root_dir):
        raise DatasetNotFound(
            f"dataset not found: {cfg.dataset_params.root_dir} (the config's dataset_params.root_dir, relative "
            "to the current folder)"
        )
    if keep_all_checkpoints:
        section = "train_params" if mode == "reconstruction" else "train_avd_params"
        cfg = apply_overrides(cfg, [f"{section}.checkpoint_keep_every=1"])
    return cfg


def _fields(options: RunOptions) -> dict[str, Any]:
    """``options`` as keyword arguments (shallow: no value is copied)."""
    return {field.name: getattr(options, field.name) for field in dataclasses.fields(options)}
