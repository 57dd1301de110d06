"""AVD training: the shape/pose disentanglement network on top of a frozen region predictor.

For a (source, driving) pair of one video, the frozen region predictor gives the identity regions (source)
and the target regions (driving). The pose input is the driving regions under a random anisotropic scaling
(``train_avd_params.random_scale``), which changes their shape but not their pose; the AVD network must
recover the driving regions from the pose input and the source's shape:
``loss = lambda_shift * L1(shift) + lambda_affine * L1(affine)``.

Checkpoints ``log_dir/{epoch:08d}-cpk-avd.pth`` hold all four networks (``generator``, ``region_predictor``,
``bg_predictor``, ``avd_network``) with ``optimizer_avd`` and ``epoch_avd`` (official keys), the config and
the mraa resume state: the result is a complete model for ``mraa animate --mode avd``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from mraa.checkpoint import MODEL_KEYS
from mraa.config import MRAAConfig, TrainAVDParams
from mraa.errors import MRAAError
from mraa.geometry import random_scale
from mraa.models import MRAAModels
from mraa.training.checkpoints import find_latest_checkpoint
from mraa.training.loop import RunOptions, Task, TrainResult, fit
from mraa.training.visualization import avd_image

log = logging.getLogger(__name__)

MODE = "avd"


class AVDTrainingModel(nn.Module):
    """Frozen region predictor (always in eval mode) + the AVD network with its reconstruction losses.

    Args:
        rng: generator (CPU) for the random scaling of the pose regions; the global RNG when None.
    """

    def __init__(
        self,
        region_predictor: nn.Module,
        avd_network: nn.Module,
        params: TrainAVDParams,
        rng: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.region_predictor = region_predictor
        self.avd_network = avd_network
        self.params = params
        self.rng = rng

    def train(self, mode: bool = True) -> AVDTrainingModel:
        super().train(mode)
        self.region_predictor.eval()
        return self

    def forward(self, x: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict]:
        """x: ``source`` and ``driving`` (B, 3, H, W) -> (weighted ``shift``/``affine`` losses, regions)."""
        with torch.no_grad():
            id_params = self.region_predictor(x["source"])
            target = self.region_predictor(x["driving"])
        if "affine" not in target:
            raise MRAAError(
                "AVD training needs affine regions (pca_based or estimate_affine in model_params)"
            )
        pose = random_scale(target, self.params.random_scale, generator=self.rng)
        prediction = self.avd_network(id_params, pose)
        losses = {
            "shift": self.params.lambda_shift * (target["shift"] - prediction["shift"]).abs().mean(),
            "affine": self.params.lambda_affine * (target["affine"] - prediction["affine"]).abs().mean(),
        }
        regions = {"source": id_params, "driving": target, "pose": pose, "prediction": prediction}
        return losses, regions


def train_avd(
    cfg: MRAAConfig,
    models: MRAAModels,
    dataset: Dataset,
    log_dir: str | os.PathLike,
    **options: Any,
) -> TrainResult:
    """Train ``models.avd_network`` with ``cfg.train_avd_params`` (Adam with ``train_params.betas``).

    Args:
        options: the fields of :class:`~mraa.training.loop.RunOptions`. Here ``checkpoint`` is the trained
            reconstruction checkpoint (region predictor; the generator and bg predictor are carried into
            the AVD checkpoints), required unless resuming an AVD run; ``resume`` continues from the
            latest ``*-cpk-avd.pth`` in ``log_dir`` (exact state, like ``train``).
    """
    run_options = RunOptions(**options)
    ap = cfg.train_avd_params
    task = Task(
        mode=MODE,
        params=ap,
        build=lambda rng: AVDTrainingModel(models.region_predictor, models.avd_network, ap, rng),
        trainable=lambda model: model.avd_network.parameters(),
        start=avd_start,
        require=("region_predictor",),
        save=MODEL_KEYS,
        visualize=avd_image,
    )
    frozen = [p for p in models.region_predictor.parameters() if p.requires_grad]
    try:
        for parameter in frozen:
            parameter.requires_grad_(False)
        return fit(cfg, models, dataset, log_dir, task=task, options=run_options)
    finally:
        for parameter in frozen:
            parameter.requires_grad_(True)


def avd_start(log_dir: Path, options: RunOptions) -> tuple[Path, bool]:
    """When resuming, the latest AVD checkpoint in ``log_dir``; else the reconstruction checkpoint given."""
    start = Path(options.checkpoint) if options.checkpoint is not None else None
    if options.resume:
        latest = find_latest_checkpoint(log_dir, MODE)
        if latest is not None:
            return latest, True
        if start is not None:
            log.warning("resume: no *-cpk-avd.pth in %s; starting AVD training from %s", log_dir, start)
    if start is None:
        raise MRAAError("AVD training needs a trained reconstruction checkpoint, and none was given")
    return start, False
