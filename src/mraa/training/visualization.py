"""The per-epoch training picture: one row per sample with source, driving, regions, deformed source,
prediction and occlusion (confidence) map."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from mraa.visualize import draw_regions, heatmap_overlay, make_grid, occlusion_to_uint8, tensor_to_uint8


def _with_regions(image: np.ndarray, region_params: dict, index: int) -> np.ndarray:
    shift = region_params["shift"][index].detach().float().cpu()  # (K, 2)
    affine = region_params.get("affine")
    affine = None if affine is None else affine[index].detach().float().cpu()  # (K, 2, 2)
    return draw_regions(image, shift, affine)


@torch.no_grad()
def reconstruction_image(batch: dict[str, Tensor], generated: dict, max_samples: int = 4) -> np.ndarray:
    """uint8 (H', W', 3) grid; columns: source + regions, driving + regions, driving heatmaps, deformed,
    prediction, occlusion."""
    source = tensor_to_uint8(batch["source"][:max_samples])  # (n, H, W, 3)
    driving = tensor_to_uint8(batch["driving"][:max_samples])
    prediction = tensor_to_uint8(generated["prediction"][:max_samples])
    deformed = generated.get("deformed")
    deformed = None if deformed is None else tensor_to_uint8(deformed[:max_samples])
    occlusion = generated.get("occlusion_map")
    size = source.shape[1:3]
    rows = []
    for i in range(source.shape[0]):
        row = [
            _with_regions(source[i], generated["source_region_params"], i),
            _with_regions(driving[i], generated["driving_region_params"], i),
            heatmap_overlay(
                driving[i], generated["driving_region_params"]["heatmap"][i].detach().float().cpu()
            ),
        ]
        if deformed is not None:
            row.append(deformed[i])
        row.append(prediction[i])
        if occlusion is not None:
            row.append(occlusion_to_uint8(occlusion[i].detach().float().cpu(), size))
        rows.append(row)
    return make_grid(rows)


@torch.no_grad()
def avd_image(batch: dict[str, Tensor], regions: dict, max_samples: int = 4) -> np.ndarray:
    """uint8 grid; columns: source + its regions, driving + its regions (the target), driving + the randomly
    scaled pose regions (the input), driving + the AVD prediction."""
    source = tensor_to_uint8(batch["source"][:max_samples])
    driving = tensor_to_uint8(batch["driving"][:max_samples])
    rows = []
    for i in range(source.shape[0]):
        rows.append(
            [
                _with_regions(source[i], regions["source"], i),
                _with_regions(driving[i], regions["driving"], i),
                _with_regions(driving[i], regions["pose"], i),
                _with_regions(driving[i], regions["prediction"], i),
            ]
        )
    return make_grid(rows)
