"""Temporal smoothing of region params: parsing, a valid-transform parametrisation, streaming = offline."""

import numpy as np
import pytest
import torch

from mraa.errors import MRAAError
from mraa.smoothing import (
    RegionSmoother,
    decode_affine,
    encode_affine,
    parse_smoothing,
    smooth_region_params,
)

SMOOTHERS = ["ema:0.4", "one-euro", "one-euro:0.1,2", "savgol:5", "savgol:7,3"]


def jitter(shift: torch.Tensor) -> float:
    """Mean norm of the second difference of the centres (T, K, 2)."""
    return float((shift[2:] - 2 * shift[1:-1] + shift[:-2]).norm(dim=-1).mean())


def jittered_track(frames: int = 40, regions: int = 3, seed: int = 0) -> dict[str, torch.Tensor]:
    """Slow motion plus noise; affines rotate and scale slowly, with random SVD-like column sign flips."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(frames, dtype=torch.float64)[:, None]
    base = torch.stack([0.3 * torch.sin(t / 8 + k) for k in range(regions)], 1).squeeze(-1)
    shift = (
        torch.stack([base, 0.5 * base.flip(1)], -1)
        + 0.03 * torch.randn(frames, regions, 2, generator=g).double()
    )
    angle = (t / 10 + 0.05 * torch.randn(frames, regions, generator=g)).double()
    scale = (0.2 + 0.02 * torch.randn(frames, regions, 2, generator=g).abs()).double()
    cos, sin = torch.cos(angle), torch.sin(angle)
    rotation = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
    affine = rotation @ torch.diag_embed(scale)
    signs = torch.where(torch.rand(frames, regions, 2, generator=g) < 0.3, -1.0, 1.0).double()
    affine = affine * signs.unsqueeze(-2)
    covar = affine @ affine.transpose(-1, -2)
    heatmap = torch.rand(frames, regions, 4, 4, generator=g)
    return {"shift": shift.float(), "affine": affine.float(), "covar": covar.float(), "heatmap": heatmap}


@pytest.mark.parametrize(
    "spec, kind, values",
    [
        (None, "none", ()),
        ("none", "none", ()),
        ("ema:0.3", "ema", (0.3,)),
        ("one-euro", "one-euro", (0.05, 1.0)),
        ("One-Euro:0.1,2", "one-euro", (0.1, 2.0)),
        ("savgol:5", "savgol", (5, 2)),
        ("savgol:9,3", "savgol", (9, 3)),
    ],
)
def test_parse(spec, kind, values):
    parsed = parse_smoothing(spec)
    assert parsed.kind == kind and parsed.values == values
    assert parse_smoothing(str(parsed)) == parsed


@pytest.mark.parametrize(
    "spec", ["ema", "ema:0", "ema:1.5", "savgol:4", "savgol:1", "savgol:5,5", "wobble", "ema:x"]
)
def test_parse_errors_speak_of_values(spec):
    with pytest.raises(MRAAError, match="smoothing") as info:
        parse_smoothing(spec)
    assert "--" not in str(info.value)


def test_parametrisation_round_trip_and_sign_alignment():
    track = jittered_track()
    previous = None
    for frame in track["affine"].double():
        params, signs = encode_affine(frame, previous)
        aligned = frame * signs.unsqueeze(-2)
        assert (torch.linalg.det(aligned) > 0).all()
        assert torch.allclose(decode_affine(params, signs), frame, atol=1e-9)
        if previous is not None:  # aligned columns point the same way as the previous frame's
            assert ((aligned * previous).sum(-2) > 0).all()
        previous = aligned


def test_constant_covariance_with_sign_flips_is_left_unchanged():
    """SVD sign flips alone are no motion: smoothing must return the input exactly."""
    track = jittered_track(frames=20)
    affine = track["affine"][:1].double().expand(20, -1, -1, -1).clone()
    flips = torch.where(torch.rand(20, affine.shape[1], 2) < 0.5, -1.0, 1.0).double()
    affine = (affine * flips.unsqueeze(-2)).float()
    params = {"shift": track["shift"][:1].expand(20, -1, -1).clone(), "affine": affine}
    for spec in SMOOTHERS:
        out = smooth_region_params(params, spec)
        assert torch.allclose(out["affine"], affine, atol=1e-5), spec
        assert torch.allclose(out["shift"], params["shift"], atol=1e-6), spec


@pytest.mark.parametrize("spec", SMOOTHERS)
def test_smoothing_reduces_jitter_and_stays_a_valid_transform(spec):
    track = jittered_track()
    out = smooth_region_params(track, spec)
    assert out["shift"].shape == track["shift"].shape and out["affine"].shape == track["affine"].shape
    assert jitter(out["shift"]) < 0.75 * jitter(track["shift"])
    det_in, det_out = torch.linalg.det(track["affine"].double()), torch.linalg.det(out["affine"].double())
    assert (det_in * det_out > 0).all()  # invertible, orientation of the input frame kept
    assert (det_out.abs() > 1e-3).all()
    covar = out["affine"].double() @ out["affine"].double().transpose(-1, -2)
    assert torch.allclose(out["covar"].double(), covar, atol=1e-6)
    assert torch.equal(out["heatmap"], track["heatmap"])


@pytest.mark.parametrize("spec", SMOOTHERS)
def test_streaming_equals_offline(spec):
    track = jittered_track()
    offline = smooth_region_params(track, spec)
    smoother = RegionSmoother(spec)
    parts, start = [], 0
    for size in [1, 3, 2, 7, 4, 1, 5, 17]:
        out = smoother.push({k: v[start : start + size] for k, v in track.items()})
        start += size
        if out is not None:
            parts.append(out)
    if (rest := smoother.flush()) is not None:
        parts.append(rest)
    streamed = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
    for key in track:
        assert torch.allclose(streamed[key], offline[key], atol=1e-6), key


def test_savgol_look_ahead_holds_back_window_half():
    track = jittered_track(frames=12)
    smoother = RegionSmoother("savgol:7")
    assert smoother.push({k: v[:3] for k, v in track.items()}) is None  # 3 = 7 // 2 frames held
    first = smoother.push({k: v[3:4] for k, v in track.items()})
    assert first["shift"].shape[0] == 1
    rest = smoother.push({k: v[4:] for k, v in track.items()})
    tail = smoother.flush()
    assert 1 + rest["shift"].shape[0] + tail["shift"].shape[0] == 12 and tail["shift"].shape[0] == 3


def test_savgol_on_a_polynomial_is_exact():
    t = torch.arange(15, dtype=torch.float64)
    shift = torch.stack([0.01 * t**2 - 0.1 * t, 0.05 * t], -1)[:, None].float() / 10  # (T, 1, 2)
    affine = torch.eye(2).expand(15, 1, 2, 2) * 0.3
    out = smooth_region_params({"shift": shift, "affine": affine}, "savgol:5")
    assert torch.allclose(out["shift"], shift, atol=1e-6)


def test_animator_smoothing_on_the_shipped_model():
    """The shipped model's regions of a jittered driving clip: every smoother reduces their jitter, and a
    look-ahead smoother inside animate_iter still returns every frame, in order, with the offline params."""
    from mraa.animate import DEFAULT_MODEL_DIR, Animator
    from mraa.data.video_io import read_video

    animator = Animator.from_checkpoint(batch_size=4)
    frames = torch.from_numpy(read_video(DEFAULT_MODEL_DIR / "driving.mp4")[:10]).permute(0, 3, 1, 2) / 255
    rng = np.random.default_rng(0)
    shaky = torch.stack([torch.roll(f, tuple(rng.integers(-2, 3, 2)), dims=(1, 2)) for f in frames])
    params = animator.region_params(shaky)
    for spec in SMOOTHERS:
        smoothed = smooth_region_params(params, spec)
        assert jitter(smoothed["shift"]) < 0.8 * jitter(params["shift"]), spec
    batches = list(animator.animate_iter(frames[0], shaky, "relative", smooth="savgol:5"))
    assert torch.equal(torch.cat([b.frame_indices for b in batches]), torch.arange(10))
    assert torch.cat([b.prediction for b in batches]).shape == (10, 3, 64, 64)
    assert torch.allclose(torch.cat([b.driving.cpu() for b in batches]), shaky)
    smoothed = torch.cat([b.driving_region_params["shift"].cpu() for b in batches])
    assert torch.allclose(smoothed, smooth_region_params(params, "savgol:5")["shift"], atol=1e-5)
    unsmoothed = torch.cat([p["shift"] for _, p in animator.driving_region_stream(shaky, (64, 64), "none")])
    assert torch.equal(unsmoothed, params["shift"])
