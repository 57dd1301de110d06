"""BGMotionPredictor: (source, driving) -> 3x3 background transform."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mraa.modules.blocks import Encoder

# number of predicted values and their identity initialisation per bg_type
_BG_OUTPUTS = {
    "shift": [0.0, 0.0],
    "affine": [1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
    "perspective": [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0],
}


class BGMotionPredictor(nn.Module):
    """Encoder on the concatenated (source, driving) pair, global average pooling and a linear layer.

    ``bg_type``: ``zero`` (always identity, no parameters), ``shift`` (translation), ``affine`` (2x3) or
    ``perspective`` (2x3 plus the first two entries of the last row). The linear layer starts at the identity.
    """

    def __init__(
        self,
        block_expansion: int,
        num_channels: int,
        max_features: int,
        num_blocks: int,
        bg_type: str = "zero",
    ) -> None:
        super().__init__()
        if bg_type not in ("zero", *_BG_OUTPUTS):
            raise ValueError(f"unknown bg_type {bg_type!r}")
        self.bg_type = bg_type
        if bg_type == "zero":
            self.fc = None
            return
        self.encoder = Encoder(
            block_expansion, in_features=num_channels * 2, max_features=max_features, num_blocks=num_blocks
        )
        in_features = min(max_features, block_expansion * (2**num_blocks))
        init = _BG_OUTPUTS[bg_type]
        self.fc = nn.Linear(in_features, len(init))
        nn.init.zeros_(self.fc.weight)
        with torch.no_grad():
            self.fc.bias.copy_(torch.tensor(init))

    def forward(self, source_image: Tensor, driving_image: Tensor) -> Tensor:
        """Images (B, C, H, W) -> transform (B, 3, 3) mapping driving to source coordinates."""
        b = source_image.shape[0]
        out = torch.eye(3, dtype=source_image.dtype, device=source_image.device).repeat(b, 1, 1)
        if self.fc is None:
            return out
        features = self.encoder(torch.cat([source_image, driving_image], dim=1))[-1]
        prediction = self.fc(features.mean(dim=(2, 3)))
        if self.bg_type == "shift":
            out[:, :2, 2] = prediction
        elif self.bg_type == "affine":
            out[:, :2, :] = prediction.view(b, 2, 3)
        else:
            out[:, :2, :] = prediction[:, :6].view(b, 2, 3)
            out[:, 2, :2] = prediction[:, 6:].view(b, 2)
        return out
