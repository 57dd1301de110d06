"""The three angle predictors of the toy experiment: naive, regression-based and PCA-based.

All three map images (B, 3, H, W) in [0, 1] to angles (B,) in degrees (convention in
:mod:`mraa.toy.dataset`). The two heatmap networks share the :class:`~mraa.modules.blocks.Hourglass` of
the real region predictor, and the naive one its :class:`~mraa.modules.blocks.Encoder`.

- ``naive``: encoder, flatten, one fully connected layer.
- ``regression`` (FOMM-style): the hourglass predicts a heatmap (softmax over space) and a per-pixel
  angle; the angle is the heatmap-weighted sum of the per-pixel angles.
- ``pca`` (MRAA): the hourglass predicts a heatmap; its covariance is decomposed as in the region
  predictor (:func:`mraa.geometry.covar_to_affine`) and the angle is ``atan(U10 / U00)``.

The naive and regression outputs are parametrised as ``45 + 45 * t`` degrees (``t`` the raw output), so
that a zero output means the middle of the label range; the PCA angle needs no such scaling.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mraa.errors import MRAAError
from mraa.geometry import covar_to_affine, heatmap_to_moments
from mraa.modules.blocks import Encoder, Hourglass

log = logging.getLogger(__name__)

NETWORKS = ("naive", "regression", "pca")
ANGLE_CENTER = 45.0  # degrees; the middle of the label range [0, 90]
ANGLE_SCALE = 45.0  # degrees per unit of raw output (naive and regression)
PCA_BRANCH_CUT = -45.0  # PCA angles are reported in [PCA_BRANCH_CUT, PCA_BRANCH_CUT + 180)


def pca_angle(u: Tensor) -> Tensor:
    """Angle of the first principal axis, ``atan(U10 / U00)`` in degrees, in [-90, 90].

    The columns of ``u`` are the principal axes (first = largest singular value). Their signs are
    arbitrary, and ``atan`` of the ratio does not depend on them (unlike ``atan2``). It is computed as
    ``atan2(U10 * s, |U00|)`` with ``s = sign(U00)`` (1 for 0), which equals ``atan(U10 / U00)`` and stays
    finite when ``U00`` is 0 (a vertical axis, 90 degrees).

    Args:
        u: (..., 2, 2) left singular vectors.

    Returns:
        (...) angles in degrees.
    """
    u00, u10 = u[..., 0, 0], u[..., 1, 0]
    sign = torch.where(u00 < 0, -torch.ones_like(u00), torch.ones_like(u00))
    return torch.rad2deg(torch.atan2(u10 * sign, u00.abs()))


def wrap_axis_angle(angle: Tensor, low: float = PCA_BRANCH_CUT) -> Tensor:
    """Move an axis angle (defined modulo 180 degrees) into [low, low + 180).

    ``atan`` returns (-90, 90], so a rectangle at 89.9 degrees may come out as -89.9 (the same axis).
    With ``low = -45`` the branch cut sits at -45/135 degrees, far from the labels in [0, 90]; the
    gradient is unchanged (a constant is added).
    """
    return torch.remainder(angle - low, 180.0) + low


class NaiveNet(nn.Module):
    """Encoder, then one fully connected layer on the flattened features -> angle (B,) in degrees."""

    def __init__(
        self, image_size: int, block_expansion: int = 8, num_blocks: int = 3, max_features: int = 64
    ) -> None:
        super().__init__()
        self.encoder = Encoder(block_expansion, 3, num_blocks, max_features)
        channels = min(max_features, block_expansion * 2**num_blocks)
        side = image_size // 2**num_blocks
        self.fc = nn.Linear(channels * side * side, 1)

    def forward(self, x: Tensor) -> Tensor:
        features = self.encoder(x)[-1]  # (B, C, H / 2^n, W / 2^n)
        return ANGLE_CENTER + ANGLE_SCALE * self.fc(features.flatten(1)).squeeze(1)


class _HeatmapNet(nn.Module):
    """Hourglass plus a 7x7 head to one heatmap, softmax over space with ``temperature``."""

    def __init__(
        self, block_expansion: int, num_blocks: int, max_features: int, temperature: float, extra: int = 0
    ) -> None:
        super().__init__()
        self.hourglass = Hourglass(block_expansion, 3, num_blocks, max_features)
        self.head = nn.Conv2d(self.hourglass.out_filters, 1 + extra, kernel_size=7, padding=3)
        self.temperature = temperature

    def maps(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Heatmap (B, 1, H, W) summing to 1, and the extra head channels (B, extra, H, W)."""
        out = self.head(self.hourglass(x))  # (B, 1 + extra, H, W)
        b, _, h, w = out.shape
        heatmap = F.softmax(out[:, :1].reshape(b, -1) / self.temperature, dim=1).view(b, 1, h, w)
        return heatmap, out[:, 1:]


class RegressionNet(_HeatmapNet):
    """FOMM-style: heatmap-weighted pooling of a per-pixel angle map -> angle (B,) in degrees."""

    def __init__(
        self,
        block_expansion: int = 8,
        num_blocks: int = 3,
        max_features: int = 64,
        temperature: float = 0.1,
    ) -> None:
        super().__init__(block_expansion, num_blocks, max_features, temperature, extra=1)

    def forward(self, x: Tensor) -> Tensor:
        heatmap, angle_map = self.maps(x)  # (B, 1, H, W) each
        raw = (heatmap * angle_map).sum(dim=(1, 2, 3))  # (B,)
        return ANGLE_CENTER + ANGLE_SCALE * raw


class PCANet(_HeatmapNet):
    """MRAA-style: PCA of the heatmap's covariance, angle = atan(U10 / U00) -> (B,) in degrees.

    The angle is wrapped into [-45, 135) (see :func:`wrap_axis_angle`).
    """

    def __init__(
        self,
        block_expansion: int = 8,
        num_blocks: int = 3,
        max_features: int = 64,
        temperature: float = 0.1,
    ) -> None:
        super().__init__(block_expansion, num_blocks, max_features, temperature)

    def forward(self, x: Tensor) -> Tensor:
        heatmap, _ = self.maps(x)
        _, covar = heatmap_to_moments(heatmap)  # (B, 1, 2, 2)
        _, u, _ = covar_to_affine(covar)  # u: (B, 2, 2)
        return wrap_axis_angle(pca_angle(u))


def build_network(
    name: str,
    image_size: int,
    block_expansion: int = 8,
    num_blocks: int = 3,
    max_features: int = 64,
    temperature: float = 0.1,
) -> nn.Module:
    """Build one of :data:`NETWORKS` for square images of side ``image_size``."""
    if image_size % 2**num_blocks:
        raise MRAAError(f"image size {image_size} must be divisible by 2**num_blocks = {2**num_blocks}")
    if name == "naive":
        return NaiveNet(image_size, block_expansion, num_blocks, max_features)
    if name == "regression":
        return RegressionNet(block_expansion, num_blocks, max_features, temperature)
    if name == "pca":
        return PCANet(block_expansion, num_blocks, max_features, temperature)
    raise MRAAError(f"unknown toy network {name!r}; expected one of {', '.join(NETWORKS)}")


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


__all__ = [
    "NETWORKS",
    "NaiveNet",
    "PCANet",
    "RegressionNet",
    "build_network",
    "count_parameters",
    "pca_angle",
    "wrap_axis_angle",
]
