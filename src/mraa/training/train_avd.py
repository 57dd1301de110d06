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

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from mraa.checkpoint import MODEL_KEYS, save_checkpoint
from mraa.config import MRAAConfig, TrainAVDParams
from mraa.errors import MRAAError
from mraa.geometry import random_scale
from mraa.models import MRAAModels
from mraa.training.common import (
    PairsLRSchedule,
    check_amp,
    checkpoint_path,
    find_latest_checkpoint,
    set_deterministic,
)
from mraa.training.distributed import (
    DistInfo,
    cleanup_distributed,
    init_distributed,
    maybe_sync_batchnorm,
    wrap_ddp,
)
from mraa.training.logger import TrainLogger
from mraa.training.loop import STATE_KEY, LoopState, RunSetup, open_run, run_epochs
from mraa.training.train import TrainResult
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
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    device: str | torch.device | None = None,
    seed: int | None = None,
    deterministic: bool = False,
    amp: str | None = None,
    num_workers: int | None = None,
    progress: bool = True,
    tensorboard: bool = True,
    visualize: bool = True,
) -> TrainResult:
    """Train ``models.avd_network`` with ``cfg.train_avd_params`` (Adam with ``train_params.betas``).

    Args:
        checkpoint: the trained reconstruction checkpoint (region predictor; the generator and bg predictor
            are carried into the AVD checkpoints). Required unless resuming an AVD run.
        resume: continue from the latest ``*-cpk-avd.pth`` in ``log_dir`` (exact state, like ``train``).
        Other arguments: as :func:`mraa.training.train.train`.
    """
    log_dir = Path(log_dir)
    start: Path | None = Path(checkpoint) if checkpoint is not None else None
    resuming = False
    if resume:
        latest = find_latest_checkpoint(log_dir, MODE)
        if latest is not None:
            start, resuming = latest, True
        elif start is not None:
            log.warning("resume: no *-cpk-avd.pth in %s; starting AVD training from %s", log_dir, start)
    if start is None:
        raise MRAAError("AVD training needs a trained reconstruction checkpoint (--checkpoint PATH)")
    info = init_distributed(device)
    frozen = [p for p in models.region_predictor.parameters() if p.requires_grad]
    try:
        set_deterministic(deterministic)
        amp = check_amp(info.device, amp)
        ap = cfg.train_avd_params
        run = open_run(
            cfg,
            models,
            dataset,
            log_dir,
            info,
            mode=MODE,
            checkpoint=start,
            resume=resuming,
            seed=seed,
            batch_size=ap.batch_size,
            num_repeats=ap.num_repeats,
            require=("region_predictor",),
            num_workers=ap.dataloader_workers if num_workers is None else num_workers,
        )
        for parameter in frozen:
            parameter.requires_grad_(False)
        return _fit(
            cfg, models, run, info, amp=amp, progress=progress, tensorboard=tensorboard, visualize=visualize
        )
    finally:
        for parameter in frozen:
            parameter.requires_grad_(True)
        cleanup_distributed(info)


def _fit(
    cfg: MRAAConfig,
    models: MRAAModels,
    run: RunSetup,
    info: DistInfo,
    *,
    amp: str | None,
    progress: bool,
    tensorboard: bool,
    visualize: bool,
) -> TrainResult:
    ap, state, loader = cfg.train_avd_params, run.state, run.loader
    models.to(info.device)
    rng = torch.Generator()
    model = AVDTrainingModel(models.region_predictor, models.avd_network, ap, rng)
    model = maybe_sync_batchnorm(model, cfg.train_params.use_sync_bn, info)
    optimizer = torch.optim.Adam(
        models.avd_network.parameters(), lr=ap.lr, betas=tuple(cfg.train_params.betas)
    )
    if run.resuming:
        if "optimizer_avd" in run.data:
            optimizer.load_state_dict(run.data["optimizer_avd"])
            for group in optimizer.param_groups:  # hyper-parameters come from the config
                group["betas"] = tuple(cfg.train_params.betas)
        else:
            log.warning("%s has no optimizer_avd: Adam restarts from zero moments", run.start)
    schedule = PairsLRSchedule(optimizer, ap.lr, [m * loader.pairs_per_epoch for m in ap.epoch_milestones])
    schedule.load_state_dict({"pairs_seen": state.pairs_seen})
    ddp_model = wrap_ddp(model, info)
    if state.next_epoch >= ap.num_epochs:
        log.info(
            "AVD already trained for %d epochs (num_epochs %d): nothing to do",
            state.next_epoch,
            ap.num_epochs,
        )
        return TrainResult(run.log_dir, None, state.next_epoch, state.step, state.pairs_seen, state.seed)
    log.info(
        "AVD training: %d epochs of %d steps (%d pairs/epoch, global batch %d) on %s",
        ap.num_epochs - state.next_epoch,
        len(loader),
        loader.pairs_per_epoch,
        ap.batch_size,
        info.device,
    )

    def save(epoch: int, st: LoopState) -> Path:
        return save_checkpoint(
            checkpoint_path(run.log_dir, epoch, MODE),
            models,
            cfg,
            include=MODEL_KEYS,
            optimizer_avd=optimizer.state_dict(),
            epoch_avd=epoch,
            **{STATE_KEY: st.to_checkpoint(MODE, schedule, info.world_size, ap.batch_size)},
        )

    logger = TrainLogger(run.log_dir, enabled=info.is_main, mode=MODE, tensorboard=tensorboard)
    logger.truncate_after(state.pairs_seen)
    try:
        state = run_epochs(
            ddp_model,
            optimizer,
            schedule,
            loader,
            state,
            info=info,
            num_epochs=ap.num_epochs,
            checkpoint_freq=ap.checkpoint_freq,
            save=save,
            logger=logger,
            rng=rng,
            amp=amp,
            visualize=avd_image if visualize else None,
            progress=progress,
            desc="avd",
        )
    finally:
        logger.close()
    return TrainResult.from_state(run.log_dir, state)
