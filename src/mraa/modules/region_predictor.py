"""RegionPredictor: image -> K regions (heatmaps and their affine parameters)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mraa.geometry import RegionParams, covar_to_affine, heatmap_to_moments
from mraa.modules.blocks import AntiAliasInterpolation2d, Hourglass


class RegionPredictor(nn.Module):
    """Hourglass on a downscaled image, a 7x7 conv to K heatmaps (softmax over space with
    ``temperature``), then per region the centre (``shift``), ``covar`` and ``affine``.

    ``pca_based`` regions take ``affine = U S^(1/2)`` from the SVD of the covariance; otherwise, with
    ``estimate_affine``, a 4-channel ``jacobian`` head is pooled by each heatmap (FOMM-style regression).

    Args:
        pad: padding of the 7x7 heads (0 shrinks the heatmaps by 6 pixels; the official default is 3).
        fast_svd: accepted for config compatibility; the PCA always uses the CPU LAPACK SVD.
    """

    def __init__(
        self,
        block_expansion: int,
        num_regions: int,
        num_channels: int,
        max_features: int,
        num_blocks: int,
        temperature: float,
        estimate_affine: bool = False,
        scale_factor: float = 1,
        pca_based: bool = False,
        fast_svd: bool = False,
        pad: int = 3,
    ) -> None:
        super().__init__()
        self.predictor = Hourglass(
            block_expansion, in_features=num_channels, max_features=max_features, num_blocks=num_blocks
        )
        self.regions = nn.Conv2d(self.predictor.out_filters, num_regions, kernel_size=(7, 7), padding=pad)
        if estimate_affine and not pca_based:
            self.jacobian = nn.Conv2d(self.predictor.out_filters, 4, kernel_size=(7, 7), padding=pad)
            nn.init.zeros_(self.jacobian.weight)
            with torch.no_grad():
                self.jacobian.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 1.0]))
        else:
            self.jacobian = None
        self.num_regions = num_regions
        self.temperature = temperature
        self.scale_factor = scale_factor
        self.pca_based = pca_based
        self.fast_svd = fast_svd
        if scale_factor != 1:
            self.down = AntiAliasInterpolation2d(num_channels, scale_factor)

    def heatmaps(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Heatmaps (B, K, h, w), each summing to 1, and the hourglass features."""
        if self.scale_factor != 1:
            x = self.down(x)
        features = self.predictor(x)
        logits = self.regions(features).float()  # (B, K, h, w); softmax in float32 under autocast
        b, k, h, w = logits.shape
        heatmap = F.softmax(logits.view(b, k, -1) / self.temperature, dim=2).view(b, k, h, w)
        return heatmap, features

    def forward(self, x: Tensor) -> RegionParams:
        """x: (B, C, H, W) in [0, 1] -> region params (see :class:`mraa.geometry.RegionParams`)."""
        heatmap, features = self.heatmaps(x)
        shift, covar = heatmap_to_moments(heatmap, with_covar=self.pca_based)
        params: RegionParams = {"shift": shift, "heatmap": heatmap}
        if self.jacobian is not None:
            b, k, h, w = heatmap.shape
            jacobian_map = self.jacobian(features).float().reshape(b, 1, 4, h, w)
            jacobian = (heatmap.unsqueeze(2) * jacobian_map).view(b, k, 4, -1).sum(-1).view(b, k, 2, 2)
            params["affine"] = jacobian
            params["covar"] = torch.matmul(jacobian, jacobian.transpose(-1, -2))
        elif self.pca_based:
            affine, u, d = covar_to_affine(covar)
            params.update(covar=covar, affine=affine, u=u, d=d)
        return params
