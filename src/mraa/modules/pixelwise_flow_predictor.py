"""PixelwiseFlowPredictor: region params -> dense backward flow and occlusion (confidence) map."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mraa.geometry import RegionParams, make_coordinate_grid, region_to_gaussian, sparse_motions
from mraa.modules.blocks import AntiAliasInterpolation2d, Hourglass


class PixelwiseFlowPredictor(nn.Module):
    """Combines K+1 candidate motions (background + one affine per region) into one dense flow.

    The hourglass sees, per candidate, the Gaussian heatmap difference (driving minus source; Gaussians
    shaped by each region's covariance when ``use_covar_heatmap``, else of variance ``region_var``) and,
    when ``use_deformed_source``, the source warped by that candidate. It predicts K+1 soft masks that
    weight the candidates and, with ``estimate_occlusion_map``, a sigmoid confidence map.
    """

    def __init__(
        self,
        block_expansion: int,
        num_blocks: int,
        max_features: int,
        num_regions: int,
        num_channels: int,
        estimate_occlusion_map: bool = False,
        scale_factor: float = 1,
        region_var: float = 0.01,
        use_covar_heatmap: bool = False,
        use_deformed_source: bool = True,
        revert_axis_swap: bool = False,
    ) -> None:
        super().__init__()
        in_features = (num_regions + 1) * (num_channels * use_deformed_source + 1)
        self.hourglass = Hourglass(
            block_expansion, in_features=in_features, max_features=max_features, num_blocks=num_blocks
        )
        self.mask = nn.Conv2d(self.hourglass.out_filters, num_regions + 1, kernel_size=(7, 7), padding=(3, 3))
        if estimate_occlusion_map:
            self.occlusion = nn.Conv2d(self.hourglass.out_filters, 1, kernel_size=(7, 7), padding=(3, 3))
        else:
            self.occlusion = None
        self.num_regions = num_regions
        self.scale_factor = scale_factor
        self.region_var = region_var
        self.use_covar_heatmap = use_covar_heatmap
        self.use_deformed_source = use_deformed_source
        self.revert_axis_swap = revert_axis_swap
        if scale_factor != 1:
            self.down = AntiAliasInterpolation2d(num_channels, scale_factor)

    def downscale(self, source_image: Tensor) -> Tensor:
        """The source at the predictor's working resolution."""
        return self.down(source_image) if self.scale_factor != 1 else source_image

    def _gaussians(self, region_params: RegionParams, spatial_size: tuple[int, int]) -> Tensor:
        covar = region_params["covar"] if self.use_covar_heatmap else self.region_var
        return region_to_gaussian(region_params["shift"], covar, spatial_size)  # (B, K, h, w)

    def forward(
        self,
        source_image: Tensor,
        driving_region_params: RegionParams,
        source_region_params: RegionParams,
        bg_params: Tensor | None = None,
        source_small: Tensor | None = None,
        source_gaussians: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Dense motion for each driving frame.

        Args:
            source_image: (B, C, H, W); ignored when ``source_small`` (already downscaled) is given.
            source_gaussians: optional cached Gaussians of the source regions (B, K, h, w).

        Returns:
            ``optical_flow`` (B, h, w, 2) grid_sample coordinates into the source, and ``occlusion_map``
            (B, 1, h, w) when estimated.
        """
        source = self.downscale(source_image) if source_small is None else source_small
        b = driving_region_params["shift"].shape[0]
        _, c, h, w = source.shape
        if source.shape[0] != b:
            source = source.expand(b, -1, -1, -1)
        if source_gaussians is None:
            source_gaussians = self._gaussians(source_region_params, (h, w))
        heatmap = self._gaussians(driving_region_params, (h, w)) - source_gaussians  # (B, K, h, w)
        heatmap = torch.cat([heatmap.new_zeros(b, 1, h, w), heatmap], dim=1).unsqueeze(2)  # (B, K+1, 1, h, w)

        grid = make_coordinate_grid((h, w), torch.float32, source.device)
        motions = sparse_motions(
            grid, source_region_params, driving_region_params, bg_params, self.revert_axis_swap
        )  # (B, K+1, h, w, 2)
        k1 = self.num_regions + 1
        if self.use_deformed_source:
            repeated = source.float().unsqueeze(1).expand(b, k1, c, h, w).reshape(b * k1, c, h, w)
            with torch.autocast(source.device.type, enabled=False):  # float32 coordinates
                deformed = F.grid_sample(repeated, motions.reshape(b * k1, h, w, 2), align_corners=False)
            predictor_input = torch.cat([heatmap, deformed.view(b, k1, c, h, w)], dim=2)
        else:
            predictor_input = heatmap
        prediction = self.hourglass(predictor_input.view(b, -1, h, w))

        mask = F.softmax(self.mask(prediction).float(), dim=1).unsqueeze(2)  # (B, K+1, 1, h, w)
        flow = (motions.permute(0, 1, 4, 2, 3) * mask).sum(dim=1).permute(0, 2, 3, 1)  # (B, h, w, 2)
        out = {"optical_flow": flow}
        if self.occlusion is not None:
            out["occlusion_map"] = torch.sigmoid(self.occlusion(prediction).float())
        return out
