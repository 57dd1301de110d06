"""Generator: source image + motion -> the source re-posed like the driving frame."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mraa.geometry import RegionParams, warp_image
from mraa.modules.blocks import DownBlock2d, ResBlock2d, SameBlock2d, UpBlock2d
from mraa.modules.pixelwise_flow_predictor import PixelwiseFlowPredictor


class Generator(nn.Module):
    """Johnson-style encoder / residual bottleneck / decoder that owns the pixel-wise flow predictor.

    The bottleneck input is the source encoding warped by the flow and multiplied by the confidence
    (occlusion) map. With ``skips`` every decoder level, and finally the output image, blends the warped
    source features (weight: confidence) with the decoder's own features (weight: 1 - confidence).
    """

    def __init__(
        self,
        num_channels: int,
        num_regions: int,
        block_expansion: int,
        max_features: int,
        num_down_blocks: int,
        num_bottleneck_blocks: int,
        pixelwise_flow_predictor_params: dict | None = None,
        skips: bool = False,
        revert_axis_swap: bool = True,
    ) -> None:
        super().__init__()
        if pixelwise_flow_predictor_params is not None:
            self.pixelwise_flow_predictor = PixelwiseFlowPredictor(
                num_regions=num_regions,
                num_channels=num_channels,
                revert_axis_swap=revert_axis_swap,
                **pixelwise_flow_predictor_params,
            )
        else:
            self.pixelwise_flow_predictor = None

        def width(level: int) -> int:
            return min(max_features, block_expansion * (2**level))

        self.first = SameBlock2d(num_channels, block_expansion, kernel_size=(7, 7), padding=(3, 3))
        self.down_blocks = nn.ModuleList(DownBlock2d(width(i), width(i + 1)) for i in range(num_down_blocks))
        self.up_blocks = nn.ModuleList(
            UpBlock2d(width(num_down_blocks - i), width(num_down_blocks - i - 1))
            for i in range(num_down_blocks)
        )
        self.bottleneck = nn.Sequential()
        for i in range(num_bottleneck_blocks):
            self.bottleneck.add_module(
                f"r{i}", ResBlock2d(width(num_down_blocks), kernel_size=(3, 3), padding=(1, 1))
            )
        self.final = nn.Conv2d(block_expansion, num_channels, kernel_size=(7, 7), padding=(3, 3))
        self.num_channels = num_channels
        self.skips = skips

    def encode(self, source_image: Tensor) -> list[Tensor]:
        """Source features at every encoder level (finest first); independent of the driving frame."""
        features = [self.first(source_image)]
        for block in self.down_blocks:
            features.append(block(features[-1]))
        return features

    @staticmethod
    def _blend(skip: Tensor, motion: dict[str, Tensor] | None, previous: Tensor | None) -> Tensor:
        """Warp ``skip`` by the flow and mix it with ``previous`` by the (resized) confidence map."""
        if motion is None:
            return skip if previous is None else skip + previous
        occlusion = motion.get("occlusion_map")
        # with a decoder map to blend into, the warp's NCHW output is not re-laid out: lerp writes in the
        # decoder's (channels-last) layout and dtype (bfloat16 under the bf16 precision)
        relayout = previous is None or occlusion is None
        warped = warp_image(skip, motion["optical_flow"], keep_memory_format=relayout)
        if occlusion is None:
            return warped
        if occlusion.shape[2:] != warped.shape[2:]:
            occlusion = F.interpolate(occlusion, size=warped.shape[2:], mode="bilinear", align_corners=False)
        if previous is None:
            return warped * occlusion
        dtype = previous.dtype
        warped, occlusion = warped.to(dtype), occlusion.to(dtype)
        if torch.onnx.is_in_onnx_export():  # ONNX's lerp is two branches and a Where over the whole map
            return previous + occlusion * (warped - previous)
        return torch.lerp(previous, warped, occlusion)

    def forward(
        self,
        source_image: Tensor,
        driving_region_params: RegionParams,
        source_region_params: RegionParams,
        bg_params: Tensor | None = None,
        source_features: list[Tensor] | None = None,
        motion: dict[str, Tensor] | None = None,
    ) -> dict[str, Tensor]:
        """Render the driving pose.

        Args:
            source_image: (B or 1, C, H, W) in [0, 1].
            bg_params: (B, 3, 3) background motion, identity when None (as at animation time).
            source_features: cached ``encode(source_image)`` (batch 1 or B): encode a source once.
            motion: a precomputed flow-predictor output (skips the flow predictor).

        Returns:
            ``prediction`` (B, C, H, W), ``deformed`` (source warped by the flow), ``occlusion_map``,
            ``optical_flow``.
        """
        b = driving_region_params["shift"].shape[0]
        if source_features is None:
            source_features = self.encode(source_image)
        source_features = [f.expand(b, -1, -1, -1) if f.shape[0] != b else f for f in source_features]
        if source_image.shape[0] != b:
            source_image = source_image.expand(b, -1, -1, -1)
        out: dict[str, Tensor] = {}
        if motion is None and self.pixelwise_flow_predictor is not None:
            motion = self.pixelwise_flow_predictor(
                source_image, driving_region_params, source_region_params, bg_params=bg_params
            )
        if motion is not None:
            out["deformed"] = warp_image(source_image, motion["optical_flow"])
            out["optical_flow"] = motion["optical_flow"]
            if "occlusion_map" in motion:
                out["occlusion_map"] = motion["occlusion_map"]

        x = self.bottleneck(self._blend(source_features[-1], motion, None))
        for i, block in enumerate(self.up_blocks):
            if self.skips:
                x = self._blend(source_features[-(i + 1)], motion, x)
            x = block(x)
        if self.skips:
            x = self._blend(source_features[0], motion, x)
        x = torch.sigmoid(self.final(x).float())  # the image (and its blend) in float32 under autocast
        if self.skips:
            x = self._blend(source_image, motion, x)
        out["prediction"] = x
        return out
