"""Region motion: the region params to render for each driving frame, in the three animation modes."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from mraa.geometry import RegionParams, convex_hull_area, inverse_2x2

MODES = ("standard", "relative", "avd")


def movement_scale(source_shift: Tensor, driving_initial_shift: Tensor) -> float:
    """sqrt(area of the convex hull of source centres / that of the first driving frame's), in float64."""
    source_area = convex_hull_area(source_shift.reshape(-1, 2).double().cpu())
    driving_area = convex_hull_area(driving_initial_shift.reshape(-1, 2).double().cpu())
    if driving_area <= 0 or source_area <= 0:
        return 1.0
    return math.sqrt(source_area) / math.sqrt(driving_area)


def animation_region_params(
    source_region_params: RegionParams,
    driving_region_params: RegionParams,
    driving_region_params_initial: RegionParams,
    mode: str = "relative",
    avd_network: Callable[[RegionParams, RegionParams], RegionParams] | None = None,
    scale: float | None = None,
) -> RegionParams:
    """Region params to render for each driving frame.

    - ``standard``: the driving regions as they are.
    - ``relative``: the driving motion relative to the first driving frame applied to the source regions,
      shifts scaled by :func:`movement_scale` (only ``shift`` and ``affine`` change; ``covar`` stays the
      driving one, as in the official implementation).
    - ``avd``: the AVD network's regions with the source's shape and the driving pose.

    Source params may have batch 1 and are broadcast over the driving batch.
    """
    if mode not in MODES:
        raise ValueError(f"unknown animation mode {mode!r}; choose from {', '.join(MODES)}")
    new_params = dict(driving_region_params)
    if mode == "standard":
        return new_params
    if mode == "relative":
        if scale is None:
            scale = movement_scale(
                source_region_params["shift"][0], driving_region_params_initial["shift"][0]
            )
        shift_diff = (driving_region_params["shift"] - driving_region_params_initial["shift"]) * scale
        new_params["shift"] = shift_diff + source_region_params["shift"]
        affine_diff = torch.matmul(
            driving_region_params["affine"], inverse_2x2(driving_region_params_initial["affine"])
        )
        new_params["affine"] = torch.matmul(affine_diff, source_region_params["affine"])
        return new_params
    if avd_network is None:
        raise ValueError("mode 'avd' needs an AVD network")
    b = driving_region_params["shift"].shape[0]
    source = {
        k: source_region_params[k].expand(b, *source_region_params[k].shape[1:]) for k in ("shift", "affine")
    }
    return avd_network(source, driving_region_params)
