"""Training losses: multi-scale VGG19 perceptual loss, the equivariance losses and region separation."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from torch import Tensor, nn

from mraa.errors import MRAAError
from mraa.geometry import RegionParams, Transform
from mraa.modules.blocks import AntiAliasInterpolation2d

log = logging.getLogger(__name__)

# torchvision's vgg19().features layout: conv indices (ReLU follows each, max-pool at 4, 9, 18, 27, 36)
_VGG19_CONVS = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)
_VGG19_CHANNELS = (64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512, 512, 512, 512, 512)
_VGG19_POOLS = (4, 9, 18, 27)
_SLICE_ENDS = (2, 7, 12, 21, 30)  # outputs after relu1_1, relu2_1, relu3_1, relu4_1, relu5_1


class Vgg19Features(nn.Module):
    """VGG19 trunk up to relu5_1 returning the five relu*_1 activations.

    Parameters are named ``features.N.weight`` / ``features.N.bias`` like torchvision's ``vgg19``, so a
    local torchvision state dict (e.g. ``vgg19-dcbb9e9d.pth``) loads with :meth:`load_weights`.
    Inputs are images in [0, 1]; ImageNet normalisation is applied inside (buffers, not parameters).
    """

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 3
        conv_iter = iter(_VGG19_CHANNELS)
        for index in range(_SLICE_ENDS[-1]):
            if index in _VGG19_CONVS:
                out_channels = next(conv_iter)
                layers.append(nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1))
                in_channels = out_channels
            elif index in _VGG19_POOLS:
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers.append(nn.ReLU(inplace=False))
        self.features = nn.Sequential(*layers)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.pretrained = False

    def load_weights(self, path: str | os.PathLike) -> Vgg19Features:
        """Load a local VGG19 file (torchvision layout; classifier keys are ignored)."""
        path = Path(path)
        if not path.is_file():
            raise MRAAError(f"VGG19 weights not found: {path}")
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:
                raise MRAAError(f"cannot load VGG19 weights {path}: {exc.__class__.__name__}: {exc}") from exc
        state = {k: v for k, v in state.items() if k.startswith("features.")}
        wanted = {f"features.{i}.{p}" for i in _VGG19_CONVS for p in ("weight", "bias")}
        missing = wanted - set(state)
        if missing:
            raise MRAAError(f"{path} is not a VGG19 state dict (missing e.g. {sorted(missing)[0]})")
        self.load_state_dict({k: state[k] for k in wanted} | {"mean": self.mean, "std": self.std})
        self.pretrained = True
        return self

    def forward(self, x: Tensor) -> list[Tensor]:
        x = (x - self.mean) / self.std
        outputs = []
        start = 0
        for end in _SLICE_ENDS:
            x = self.features[start:end](x)
            outputs.append(x)
            start = end
        return outputs


class ImagePyramid(nn.Module):
    """Anti-aliased downscaled copies of an image: ``{"prediction_<scale>": tensor}``."""

    def __init__(self, scales: tuple[float, ...], num_channels: int) -> None:
        super().__init__()
        self.scales = tuple(scales)
        self.downs = nn.ModuleDict(
            {
                str(scale).replace(".", "-"): AntiAliasInterpolation2d(num_channels, scale)
                for scale in self.scales
            }
        )

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return {f"prediction_{scale}": self.downs[str(scale).replace(".", "-")](x) for scale in self.scales}


def perceptual_loss(
    vgg: Vgg19Features, pyramid: ImagePyramid, prediction: Tensor, target: Tensor, weights: tuple[float, ...]
) -> Tensor:
    """Sum over pyramid scales and VGG layers of weight_i * mean |vgg_i(prediction) - vgg_i(target)|."""
    predicted = pyramid(prediction)
    real = pyramid(target)
    total = prediction.new_zeros(())
    for key in predicted:
        features_pred = vgg(predicted[key])
        features_real = vgg(real[key])
        for weight, fp, fr in zip(weights, features_pred, features_real):
            if weight:
                total = total + weight * (fp - fr.detach()).abs().mean()
    return total


def equivariance_losses(
    driving_region_params: RegionParams,
    transformed_region_params: RegionParams,
    transform: Transform,
    shift_weight: float,
    affine_weight: float,
    revert_axis_swap: bool = True,
) -> dict[str, Tensor]:
    """Equivariance of the regions under a known warp of the driving frame.

    shift: mean |mu_D - T(mu_T)|; affine: mean |I - inv(A_D) J_T(mu_T) A_T| (sign-corrected by the [0, 0]
    entry when ``revert_axis_swap``). Each multiplied by its weight; a zero weight drops the term.
    """
    losses: dict[str, Tensor] = {}
    shift_t = transformed_region_params["shift"]
    if shift_weight:
        warped = transform.warp_coordinates(shift_t)
        losses["equivariance_shift"] = shift_weight * (driving_region_params["shift"] - warped).abs().mean()
    if affine_weight:
        affine_t = torch.matmul(transform.jacobian(shift_t), transformed_region_params["affine"])
        value = torch.matmul(torch.inverse(driving_region_params["affine"]), affine_t)
        if revert_axis_swap:
            value = value * torch.sign(value[:, :, 0:1, 0:1])
        eye = torch.eye(2, dtype=value.dtype, device=value.device).view(1, 1, 2, 2)
        losses["equivariance_affine"] = affine_weight * (eye - value).abs().mean()
    return losses


def separation_loss(shift: Tensor, sigma: float) -> Tensor:
    """Mean over ordered pairs of distinct regions of ``exp(-|mu_k - mu_l|^2 / (2 sigma^2))``.

    The separation constraint of Zhang et al. (CVPR 2018, unsupervised landmark discovery) applied to the
    region centres: 1 when all regions sit on the same point, near 0 once they are a few ``sigma`` apart. It
    is an mraa extension (``loss_weights.separation``, off in the official configs) for small training runs,
    where all regions tend to settle on the same blob and follow only the object's global motion.

    Args:
        shift: (B, K, 2) region centres in [-1, 1] coordinates.
        sigma: length scale in the same units.
    """
    num_regions = shift.shape[1]
    if num_regions < 2:
        return shift.sum() * 0.0
    d2 = (shift[:, :, None, :] - shift[:, None, :, :]).pow(2).sum(-1)  # (B, K, K)
    off_diagonal = ~torch.eye(num_regions, dtype=torch.bool, device=shift.device)
    return torch.exp(-d2 / (2 * sigma**2))[:, off_diagonal].mean()
