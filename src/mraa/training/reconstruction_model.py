"""ReconstructionModel: one training forward pass (source, driving) -> (losses, generated images).

The networks reconstruct the driving frame from the source frame of the same video. Losses (each already
multiplied by its weight from ``train_params.loss_weights``):

- ``perceptual``: multi-scale VGG19 perceptual loss (image pyramid ``train_params.scales``), when any of
  the five weights is non-zero. Needs real VGG19 weights (see :func:`load_vgg`).
- ``l1``: multi-scale L1 on the same pyramid (mraa extension for training without VGG weights).
- ``equivariance_shift`` / ``equivariance_affine``: the regions of a randomly warped (affine + TPS) driving
  frame must move with the warp.
- ``separation``: keeps the region centres of the source and driving frames apart (mraa extension, see
  :func:`mraa.losses.separation_loss`).
"""

from __future__ import annotations

import logging
import os

import torch
from torch import Tensor, nn

from mraa.config import MRAAConfig, TrainParams, apply_overrides
from mraa.errors import MRAAError
from mraa.geometry import Transform
from mraa.losses import (
    ImagePyramid,
    Vgg19Features,
    equivariance_losses,
    perceptual_loss,
    separation_loss,
)

log = logging.getLogger(__name__)


class MissingVGGWeights(MRAAError):
    """Perceptual loss weights are non-zero but no VGG19 weights file was given."""

    def __init__(self) -> None:
        super().__init__(
            "the perceptual loss needs VGG19 weights and mraa never downloads any: give a local "
            "torchvision-layout vgg19 state dict (vgg_weights), or train without it "
            "(train_params.loss_weights.perceptual all 0, and a loss_weights.l1 weight)"
        )


def uses_perceptual(train_params: TrainParams) -> bool:
    return any(float(w) != 0 for w in train_params.loss_weights.perceptual)


def load_vgg(train_params: TrainParams, vgg_weights: str | os.PathLike | None) -> Vgg19Features | None:
    """The VGG19 for the perceptual loss, or None when its weights are all zero.

    Raises:
        MissingVGGWeights: perceptual weights are non-zero but no weights file was given (training against
            random VGG features would silently produce a useless model).
    """
    if not uses_perceptual(train_params):
        if vgg_weights is not None:
            log.warning("VGG19 weights %s ignored: all perceptual loss weights are 0", vgg_weights)
        return None
    if vgg_weights is None:
        raise MissingVGGWeights
    vgg = Vgg19Features().load_weights(vgg_weights)
    log.info("perceptual loss with VGG19 weights from %s", vgg_weights)
    return vgg


def disable_perceptual(cfg: MRAAConfig, l1_weight: float = 10.0) -> MRAAConfig:
    """Zero the perceptual weights; if the L1 weight is 0, set it to ``l1_weight`` so the generator still
    has a reconstruction loss."""
    weights = cfg.train_params.loss_weights
    overrides = [f"train_params.loss_weights.perceptual={[0] * len(weights.perceptual)}"]
    message = "perceptual loss disabled (no VGG19 weights)"
    if not weights.l1:
        overrides.append(f"train_params.loss_weights.l1={l1_weight}")
        message += f"; using the multi-scale L1 reconstruction loss with weight {l1_weight} instead"
    log.warning(message)
    return apply_overrides(cfg, overrides)


class ReconstructionModel(nn.Module):
    """Region predictor, background predictor and generator with the training losses.

    Args:
        train_params: ``cfg.train_params`` (scales, transform_params, loss_weights).
        vgg: VGG19 features for the perceptual loss; required when a perceptual weight is non-zero. A
            randomly initialised VGG is accepted (tests, benchmarks) but logged as a warning.
        rng: generator for the random equivariance warps (CPU); the global RNG when None.
    """

    def __init__(
        self,
        region_predictor: nn.Module,
        bg_predictor: nn.Module,
        generator: nn.Module,
        train_params: TrainParams,
        vgg: Vgg19Features | None = None,
        rng: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.region_predictor = region_predictor
        self.bg_predictor = bg_predictor
        self.generator = generator
        self.train_params = train_params
        weights = train_params.loss_weights
        self.perceptual_weights = tuple(float(w) for w in weights.perceptual)
        self.l1_weight = float(weights.l1)
        self.shift_weight = float(weights.equivariance_shift)
        self.affine_weight = float(weights.equivariance_affine)
        self.separation_weight = float(weights.separation)
        self.separation_sigma = float(weights.separation_sigma)
        self.pyramid = ImagePyramid(tuple(train_params.scales), generator.num_channels)
        if uses_perceptual(train_params):
            if vgg is None:
                raise MissingVGGWeights
            if not vgg.pretrained:
                log.warning(
                    "perceptual loss with RANDOM VGG19 features: only meaningful for tests/benchmarks"
                )
            vgg.eval()
        self.vgg = vgg if uses_perceptual(train_params) else None
        if not uses_perceptual(train_params) and not self.l1_weight:
            log.warning(
                "no reconstruction loss (perceptual and l1 weights are 0): the generator will not learn"
            )
        flow = getattr(generator, "pixelwise_flow_predictor", None)
        self.revert_axis_swap = bool(getattr(flow, "revert_axis_swap", True))
        self.rng = rng

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters of the generator, region predictor and bg predictor (the official optimizer's set)."""
        modules = (self.generator, self.region_predictor, self.bg_predictor)
        return [p for module in modules for p in module.parameters() if p.requires_grad]

    def train(self, mode: bool = True) -> ReconstructionModel:
        super().train(mode)
        if self.vgg is not None:
            self.vgg.eval()  # a fixed feature extractor
        return self

    def forward(self, x: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict]:
        """x: ``source`` and ``driving`` (B, 3, H, W) in [0, 1].

        Returns:
            ``losses`` (name -> weighted scalar; the total loss is their sum) and ``generated``
            (``prediction``, ``deformed``, ``occlusion_map``, ``optical_flow``, the region params and,
            with equivariance, ``transformed_frame`` / ``transformed_region_params``).
        """
        source, driving = x["source"], x["driving"]
        source_region_params = self.region_predictor(source)
        driving_region_params = self.region_predictor(driving)
        bg_params = self.bg_predictor(source, driving)  # (B, 3, 3)
        generated = self.generator(
            source,
            driving_region_params=driving_region_params,
            source_region_params=source_region_params,
            bg_params=bg_params,
        )
        generated.update(
            source_region_params=source_region_params, driving_region_params=driving_region_params
        )
        prediction = generated["prediction"]

        losses: dict[str, Tensor] = {}
        if self.vgg is not None:
            losses["perceptual"] = perceptual_loss(
                self.vgg, self.pyramid, prediction, driving, self.perceptual_weights
            )
        if self.l1_weight:
            predicted, real = self.pyramid(prediction), self.pyramid(driving)
            total = sum((predicted[k] - real[k].detach()).abs().mean() for k in predicted)
            losses["l1"] = self.l1_weight * total
        if self.shift_weight or self.affine_weight:
            losses.update(self._equivariance(driving, driving_region_params, generated))
        if self.separation_weight:
            shifts = torch.cat([source_region_params["shift"], driving_region_params["shift"]])  # (2B, K, 2)
            losses["separation"] = self.separation_weight * separation_loss(shifts, self.separation_sigma)
        return losses, generated

    def _equivariance(
        self, driving: Tensor, driving_region_params: dict, generated: dict
    ) -> dict[str, Tensor]:
        tp = self.train_params.transform_params
        transform = Transform(
            driving.shape[0],
            sigma_affine=tp.sigma_affine,
            sigma_tps=tp.sigma_tps,
            points_tps=tp.points_tps,
            generator=self.rng,
        ).to(driving.device)
        transformed_frame = transform.transform_frame(driving)
        transformed_region_params = self.region_predictor(transformed_frame)
        generated.update(
            transformed_frame=transformed_frame, transformed_region_params=transformed_region_params
        )
        affine_weight = self.affine_weight if "affine" in driving_region_params else 0.0
        return equivariance_losses(
            driving_region_params,
            transformed_region_params,
            transform,
            shift_weight=self.shift_weight,
            affine_weight=affine_weight,
            revert_axis_swap=self.revert_axis_swap,
        )
