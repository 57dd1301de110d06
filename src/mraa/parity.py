"""Recompute the official implementation's reference outputs (``io.pt`` parity cases) with mraa."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor

from mraa.checkpoint import load_checkpoint
from mraa.config import load_config
from mraa.geometry import Transform
from mraa.inference.motion import MODES, animation_region_params, movement_scale
from mraa.losses import equivariance_losses
from mraa.models import MRAAModels, build_models

RP_KEYS = ("shift", "covar", "affine", "heatmap", "u", "d")
# inputs of the case, reported as-is
INPUT_KEYS = (
    "eq/source",
    "eq/driving",
    "eq/theta",
    "eq/control_params",
    "eq/control_points",
    "eq/driving_frame_indices",
)


def _tolerance(key: str) -> float:
    if key.endswith(("prediction", "deformed", "optical_flow", "occlusion_map", "transformed_frame")):
        return 2e-4
    return 1e-5


def _region_params(models: MRAAModels, images: Tensor, prefix: str, out: dict, per_frame: bool) -> dict:
    if per_frame:
        parts = [models.region_predictor(images[i : i + 1]) for i in range(images.shape[0])]
        params = {}
        for k in parts[0]:
            params[k] = torch.cat(
                [p[k].reshape(1, *p[k].shape[-3:]) if k in ("u", "d") else p[k] for p in parts]
            )
    else:
        params = models.region_predictor(images)
    for key in RP_KEYS:
        if key in params:
            value = params[key]
            if key in ("u", "d"):
                value = value.reshape(images.shape[0], -1, 2, 2)
            out[f"{prefix}/{key}"] = value
    return params


def _frame(params: dict, i: int) -> dict:
    return {k: v[i : i + 1] for k, v in params.items() if k not in ("u", "d")}


@torch.no_grad()
def _inference_keys(models: MRAAModels, ref: dict[str, Tensor], out: dict) -> None:
    source, driving = ref["input/source"], ref["input/driving"]
    source_rp = _region_params(models, source, "rp/source", out, per_frame=False)
    driving_rp = _region_params(models, driving, "rp/driving", out, per_frame=True)
    n = driving.shape[0]
    bg = torch.cat([models.bg_predictor(source, driving[i : i + 1]) for i in range(n)])
    out["bg/params"] = bg
    recon = [
        models.generator(source, _frame(driving_rp, i), source_rp, bg_params=bg[i : i + 1]) for i in range(n)
    ]
    for key in ("prediction", "optical_flow", "occlusion_map", "deformed"):
        if key in recon[0]:
            out[f"recon/{key}"] = torch.cat([r[key] for r in recon])
    initial = _frame(driving_rp, 0)
    out["anim/relative/movement_scale"] = torch.tensor(
        movement_scale(source_rp["shift"][0], initial["shift"][0]), dtype=torch.float64
    )
    for mode in MODES:
        frames = []
        for i in range(n):
            params = animation_region_params(
                source_rp, _frame(driving_rp, i), initial, mode, models.avd_network
            )
            result = models.generator(source, params, source_rp)
            frames.append((params, result))
        for key in ("shift", "affine", "covar"):
            out[f"anim/{mode}/params/{key}"] = torch.cat([p[key] for p, _ in frames])
        for key in ("prediction", "optical_flow", "occlusion_map"):
            if key in frames[0][1]:
                out[f"anim/{mode}/{key}"] = torch.cat([r[key] for _, r in frames])


def _equivariance_keys(models: MRAAModels, cfg, ref: dict[str, Tensor], out: dict) -> None:
    source, driving = ref["eq/source"], ref["eq/driving"]
    transform = Transform.from_params(
        ref["eq/theta"], ref.get("eq/control_points"), ref.get("eq/control_params")
    )
    weights = cfg.train_params.loss_weights
    with torch.no_grad():
        driving_rp = _region_params(models, driving, "eq/driving_rp", out, per_frame=False)
        bg = models.bg_predictor(source, driving)
        out["eq/bg_params"] = bg
        source_rp = models.region_predictor(source)
        out["eq/generated/prediction"] = models.generator(source, driving_rp, source_rp, bg_params=bg)[
            "prediction"
        ]
        transformed = transform.transform_frame(driving)
        out["eq/transformed_frame"] = transformed
        transformed_rp = _region_params(models, transformed, "eq/transformed_rp", out, per_frame=False)
        out["eq/warped_transformed_shift"] = transform.warp_coordinates(transformed_rp["shift"])
        out["eq/transform_jacobian_at_transformed_shift"] = transform.jacobian(transformed_rp["shift"])
        losses = equivariance_losses(
            driving_rp,
            transformed_rp,
            transform,
            weights.equivariance_shift,
            weights.equivariance_affine,
            revert_axis_swap=cfg.model_params.revert_axis_swap,
        )
    for key, value in losses.items():
        out[f"eq/loss/{key}"] = value
    for key in ref:
        if key.startswith("input/") or key in INPUT_KEYS:
            out[key] = ref[key]


def compute_case(
    case_dir: str | os.PathLike, device: str = "cpu"
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Recompute every key of ``case_dir/io.pt``. Returns (reference, ours)."""
    case_dir = Path(case_dir)
    cfg = load_config(case_dir / "config.yaml")
    models = build_models(cfg.model_params)
    load_checkpoint(case_dir / "checkpoint.pth", models)
    models.to(device).eval()
    ref = torch.load(case_dir / "io.pt", map_location=device, weights_only=True)
    ours: dict[str, Tensor] = {}
    _inference_keys(models, ref, ours)
    if "eq/theta" in ref:
        _equivariance_keys(models, cfg, ref, ours)
    return ref, ours


def compare(ref: dict[str, Tensor], ours: dict[str, Tensor]) -> list[tuple[str, float, float, bool]]:
    """Rows (key, max abs diff, tolerance, ok) for every reference key (missing keys fail with inf)."""
    rows = []
    for key, expected in ref.items():
        tol = _tolerance(key)
        if key not in ours:
            rows.append((key, float("inf"), tol, False))
            continue
        got = ours[key].detach().to(expected.device)
        if got.shape != expected.shape:
            rows.append((key, float("inf"), tol, False))
            continue
        diff = (got.double() - expected.double()).abs().max().item() if expected.numel() else 0.0
        if key.startswith("eq/loss/"):
            tol = tol + 1e-5 * abs(expected.double().item())
        rows.append((key, diff, tol, diff <= tol))
    return rows
