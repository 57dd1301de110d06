"""AVDNetwork: shape-pose disentanglement of region parameters (animation via disentanglement)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mraa.geometry import RegionParams, inverse_2x2


def _mlp_encoder(in_features: int, bottleneck: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in (256, 512, 1024):
        layers += [nn.Linear(in_features, width), nn.BatchNorm1d(width), nn.ReLU(inplace=True)]
        in_features = width
    layers.append(nn.Linear(in_features, bottleneck))
    return nn.Sequential(*layers)


class AVDNetwork(nn.Module):
    """Two MLP encoders (identity/shape and pose) and a decoder producing regions with the identity's
    shape in the driving pose. Hidden widths are fixed (256/512/1024 and 1024/512/256) as in the paper.
    """

    def __init__(
        self,
        num_regions: int,
        id_bottle_size: int = 64,
        pose_bottle_size: int = 64,
        revert_axis_swap: bool = True,
    ) -> None:
        super().__init__()
        input_size = 6 * num_regions  # shift (2) + affine (4) per region
        self.num_regions = num_regions
        self.revert_axis_swap = revert_axis_swap
        self.id_encoder = _mlp_encoder(input_size, id_bottle_size)
        self.pose_encoder = _mlp_encoder(input_size, pose_bottle_size)
        layers: list[nn.Module] = []
        in_features = pose_bottle_size + id_bottle_size
        for width in (1024, 512, 256):
            layers += [nn.Linear(in_features, width), nn.BatchNorm1d(width), nn.ReLU(inplace=True)]
            in_features = width
        layers.append(nn.Linear(in_features, input_size))
        self.decoder = nn.Sequential(*layers)

    @staticmethod
    def region_params_to_emb(params: RegionParams) -> Tensor:
        """(B, K, 2) shifts and (B, K, 2, 2) affines -> (B, 6K)."""
        shift, affine = params["shift"], params["affine"]
        return torch.cat([shift, affine.flatten(2)], dim=-1).flatten(1)

    def emb_to_region_params(self, emb: Tensor) -> RegionParams:
        emb = emb.view(emb.shape[0], self.num_regions, 6)
        return {"shift": emb[:, :, :2], "affine": emb[:, :, 2:].reshape(emb.shape[0], self.num_regions, 2, 2)}

    def forward(self, x_id: RegionParams, x_pose: RegionParams) -> RegionParams:
        """Regions with the shape of ``x_id`` (source) in the pose of ``x_pose`` (driving)."""
        if self.revert_axis_swap:
            relative = torch.matmul(x_id["affine"], inverse_2x2(x_pose["affine"]).to(x_id["affine"]))
            x_id = {"shift": x_id["shift"], "affine": x_id["affine"] * torch.sign(relative[:, :, 0:1, 0:1])}
        pose_emb = self.pose_encoder(self.region_params_to_emb(x_pose))
        id_emb = self.id_encoder(self.region_params_to_emb(x_id))
        out = self.emb_to_region_params(self.decoder(torch.cat([pose_emb, id_emb], dim=1)))
        out = {k: v.float() for k, v in out.items()}  # bfloat16 under autocast
        out["covar"] = torch.matmul(out["affine"], out["affine"].transpose(-1, -2))
        return out
