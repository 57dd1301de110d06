"""Jitter and lag of the driving-region smoothers on a jittered driving video (prints JSON).

The shipped sample driving video is shifted by a random sub-pixel translation per frame (Gaussian, ``--jitter``
pixels standard deviation, border replicated), its regions are predicted by the shipped model, and each
smoother is applied to that track. Figures per smoother:

- ``jitter``: mean norm of the second difference of the region centres (in pixels), averaged over regions;
- ``rmse_px``: root mean squared distance of the centres to those of the clean video;
- ``latency_frames``: frames each output waits for (look-ahead: WINDOW // 2 for savgol, 0 for causal ones);
- ``lag_frames``: the lag the smoother costs, measured noise-free: the smoother is applied to the *clean*
  video's track, and the lag is the shift (parabola-refined) that maximises the cross-correlation of its centre
  velocities with the clean ones (positive: the smoothed track trails the clean one). (The same peak for the
  jittered track is dominated by the noise: it moves by +-2 frames between seeds.)

    PYTHONPATH=src python benchmarks/smoothing.py [--jitter 1.5] [--seed 0] [--plot docs/images/smoothing.png]

``--plot`` (needs matplotlib, the ``toy`` extra) draws one region's horizontal centre over time.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
import torch.nn.functional as F

from mraa.animate import DEFAULT_MODEL_DIR, Animator
from mraa.data.video_io import read_video
from mraa.smoothing import parse_smoothing, smooth_region_params

SMOOTHERS = ("none", "ema:0.5", "ema:0.3", "one-euro", "one-euro:0.02,0.5", "savgol:5", "savgol:9")


def jitter_frames(frames: torch.Tensor, sigma_px: float, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    """Translate each frame (T, C, H, W) by a random Gaussian offset (pixels); returns frames and offsets."""
    rng = np.random.default_rng(seed)
    offsets = rng.normal(0.0, sigma_px, size=(frames.shape[0], 2))  # (T, 2) x, y in pixels
    h, w = frames.shape[2:]
    theta = torch.zeros(frames.shape[0], 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    theta[:, 0, 2] = torch.from_numpy(-offsets[:, 0] * 2 / w).float()
    theta[:, 1, 2] = torch.from_numpy(-offsets[:, 1] * 2 / h).float()
    grid = F.affine_grid(theta, list(frames.shape), align_corners=False)
    return F.grid_sample(frames, grid, padding_mode="border", align_corners=False), offsets


def second_difference_jitter(centres: np.ndarray) -> float:
    """Mean norm of c[t+1] - 2 c[t] + c[t-1] over frames and regions; centres (T, K, 2) in pixels."""
    second = centres[2:] - 2 * centres[1:-1] + centres[:-2]
    return float(np.linalg.norm(second, axis=-1).mean())


def velocity_lag(track: np.ndarray, clean: np.ndarray, max_lag: int = 8) -> float:
    """Lag (frames) of ``track`` behind ``clean`` by cross-correlating their velocities (T-1, K, 2)."""
    a = np.diff(track, axis=0).reshape(track.shape[0] - 1, -1)
    b = np.diff(clean, axis=0).reshape(clean.shape[0] - 1, -1)
    a, b = a - a.mean(0), b - b.mean(0)
    lags = np.arange(-max_lag, max_lag + 1)
    scores = []
    for lag in lags:  # score(lag) = sum_t a[t] . b[t - lag]
        if lag >= 0:
            scores.append(float((a[lag:] * b[: len(b) - lag]).sum() / (len(a) - lag)))
        else:
            scores.append(float((a[:lag] * b[-lag:]).sum() / (len(a) + lag)))
    scores = np.array(scores)
    i = int(scores.argmax())
    if 0 < i < len(scores) - 1:  # parabola through the peak and its neighbours
        left, mid, right = scores[i - 1 : i + 2]
        denominator = left - 2 * mid + right
        offset = 0.5 * (left - right) / denominator if denominator != 0 else 0.0
        return float(lags[i] + offset)
    return float(lags[i])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jitter", type=float, default=1.5, help="jitter standard deviation in pixels")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoothers", nargs="+", default=list(SMOOTHERS))
    parser.add_argument("--plot", help="write a PNG of one region's track (clean, jittered, smoothed)")
    parser.add_argument("--region", type=int, default=0, help="region drawn by --plot")
    args = parser.parse_args()
    torch.set_num_threads(1)
    animator = Animator.from_checkpoint(batch_size=16)
    clean = torch.from_numpy(read_video(DEFAULT_MODEL_DIR / "driving.mp4")).permute(0, 3, 1, 2).float() / 255
    shaky, _ = jitter_frames(clean, args.jitter, args.seed)
    size = clean.shape[-1]
    clean_params = animator.region_params(clean)
    shaky_params = animator.region_params(shaky)
    to_px = (size - 1) / 2.0  # [-1, 1] -> pixels
    clean_centres = clean_params["shift"].cpu().numpy() * to_px
    results, tracks = {}, {}
    for spec in args.smoothers:
        smoothed = smooth_region_params(shaky_params, spec)
        centres = smoothed["shift"].cpu().numpy() * to_px
        tracks[spec] = centres
        canonical_det = torch.linalg.det(smoothed["affine"]) * torch.linalg.det(shaky_params["affine"])
        clean_smoothed = smooth_region_params(clean_params, spec)["shift"].cpu().numpy() * to_px
        results[spec] = {
            "jitter": round(second_difference_jitter(centres), 4),
            "rmse_px": round(float(np.sqrt(((centres - clean_centres) ** 2).sum(-1).mean())), 4),
            "latency_frames": parse_smoothing(spec).delay,
            "lag_frames": round(velocity_lag(clean_smoothed, clean_centres), 2),
            "orientation_kept": bool((canonical_det > 0).all()),
        }
    report = {
        "video": "src/mraa/assets/default/driving.mp4 (shipped model, 64x64, 64 frames, 10 regions)",
        "jitter_px_std": args.jitter,
        "seed": args.seed,
        "clean_video_jitter": round(second_difference_jitter(clean_centres), 4),
        "smoothers": results,
    }
    print(json.dumps(report, indent=2))
    if args.plot:
        plot_tracks(args.plot, clean_centres, tracks, args.region)


def plot_tracks(path: str, clean: np.ndarray, tracks: dict[str, np.ndarray], region: int) -> None:
    """One region's horizontal centre over time: clean, jittered (``none``) and two smoothers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3), dpi=100)
    ax.plot(clean[:, region, 0], color="black", lw=2, label="clean video")
    styles = {"none": ("tab:red", 1), "ema:0.5": ("tab:blue", 1.5), "savgol:9": ("tab:green", 1.5)}
    for spec, (color, width) in styles.items():
        if spec in tracks:
            label = "jittered, no smoothing" if spec == "none" else f"jittered, --smooth {spec}"
            ax.plot(tracks[spec][:, region, 0], color=color, lw=width, label=label)
    ax.set_xlabel("frame")
    ax.set_ylabel(f"region {region} centre x (px)")
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    main()
