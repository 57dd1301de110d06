#!/usr/bin/env python
"""Animation speed: the official-style per-frame loop vs mraa's cached, batched pipeline.

Prints JSON. Uses the vox256 config at 256x256 with random weights (speed does not depend on training).
(a) per frame, batch 1: region predictor + animation params + full generator (re-encoding the source and
    recomputing the flow predictor's source inputs every frame), as the official demo does;
(b) mraa's Animator: source encoded once, BatchNorm folded into convs, frames in batches.
Both run in the same process on the same frames, and their outputs are compared.

    python benchmarks/animate.py [--frames 8] [--batch-size 4] [--device cpu] [--memory-frames 0]

``--memory-frames N`` additionally streams an N-frame driving video through ``mraa animate`` in a
subprocess and reports its peak resident memory (600 in the issue's target; slow on CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def per_frame_loop(models, source, driving, mode):
    from mraa.animate import animation_region_params

    out = []
    with torch.no_grad():
        src = models.region_predictor(source)
        first = None
        for i in range(driving.shape[0]):
            drv = models.region_predictor(driving[i : i + 1])
            first = first or drv
            params = animation_region_params(src, drv, first, mode, models.avd_network)
            out.append(models.generator(source, params, src)["prediction"])
    return torch.cat(out)


def calibrate_batchnorm(models, source, driving) -> None:
    """Give every BatchNorm the statistics of one batch of these inputs (as a trained model would have
    statistics of its data); with default running stats a random deep network's activations explode and
    float rounding differences are magnified far beyond what a real checkpoint shows."""
    norms = [
        m
        for _, module in models.items()
        for m in module.modules()
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
    ]
    for norm in norms:
        norm.momentum = 1.0
    models.train()
    with torch.no_grad():
        frames = torch.cat([source, driving])
        params = models.region_predictor(frames)
        src = {k: v[:1].expand(len(driving), *v.shape[1:]) for k, v in params.items() if k not in ("u", "d")}
        drv = {k: v[1:] for k, v in params.items() if k not in ("u", "d")}
        models.generator(source.expand(len(driving), -1, -1, -1), drv, src)
        rolled = {k: v.roll(1, dims=0) for k, v in drv.items()}
        models.avd_network(drv, rolled)  # varied identities: identical rows would give zero variances
    for norm in norms:
        norm.momentum = 0.1
    models.eval()


def smooth_images(n: int, device: str) -> torch.Tensor:
    """Random but image-like frames (n, 3, 256, 256): upsampled 16x16 noise. Pixel noise would make any
    two correct float32 pipelines differ by ~1e-3 through the warps' image gradients."""
    low = torch.rand(n, 3, 16, 16)
    return (
        torch.nn.functional.interpolate(low, size=(256, 256), mode="bicubic", align_corners=False)
        .clamp(0, 1)
        .to(device)
    )


def timed(fn, repeats=2):
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best, result


def memory_run(frames: int, batch_size: int) -> dict:
    """Peak RSS of `mraa animate` on an N-frame video (vox256 config, random weights)."""
    import numpy as np

    from mraa.checkpoint import save_checkpoint
    from mraa.config import load_config
    from mraa.data.video_io import VideoWriter, write_image
    from mraa.models import build_models

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cfg = load_config(ROOT / "configs" / "vox256.yaml")
        save_checkpoint(tmp / "ck.pth", build_models(cfg.model_params), cfg)
        rng = np.random.default_rng(0)
        with VideoWriter(tmp / "driving.mp4", 25) as writer:
            for _ in range(frames):
                writer.write(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8))
        write_image(tmp / "source.png", rng.integers(0, 255, (256, 256, 3), dtype=np.uint8))
        code = (
            "import sys; from mraa.cli import main; "
            f"rc = main(['animate', '--source', '{tmp}/source.png', '--driving', '{tmp}/driving.mp4', "
            f"'--output', '{tmp}/out.mp4', '--checkpoint', '{tmp}/ck.pth', '--quiet', '--mode', 'relative', "
            f"'--batch-size', '{batch_size}']); "
            # VmHWM is this process's own peak (ru_maxrss would include the parent's, inherited at fork)
            "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0]); sys.exit(rc)"
        )
        start = time.perf_counter()
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        return {
            "memory_frames": frames,
            "memory_peak_rss_mb": int(result.stdout.strip().splitlines()[-1]) / 1024,
            "memory_run_seconds": round(time.perf_counter() - start, 1),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--mode", default="relative", choices=("standard", "relative", "avd"))
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"))
    parser.add_argument("--memory-frames", type=int, default=0)
    parser.add_argument("--heatmap-scale", type=float, default=0.3, help="scale of the random regions head")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from mraa.animate import Animator
    from mraa.config import load_config
    from mraa.models import build_models

    torch.manual_seed(0)
    cfg = load_config(ROOT / "configs" / "vox256.yaml")
    models = build_models(cfg.model_params).to(args.device).eval()
    source = smooth_images(1, args.device)
    driving = smooth_images(args.frames, args.device)
    with torch.no_grad():  # moderate heatmap spread (as the parity case does): a random head gives
        models.region_predictor.regions.weight.mul_(args.heatmap_scale)  # needle-like, ill-conditioned regions
    calibrate_batchnorm(models, source, driving)
    animator = Animator(
        models, device=args.device, batch_size=args.batch_size, config=cfg, precision=args.precision
    )

    per_frame_loop(models, source, driving[:1], args.mode)  # warm-up
    animator.animate(source, driving[:1], mode=args.mode)
    t_a, out_a = timed(lambda: per_frame_loop(models, source, driving, args.mode))
    t_b, out_b = timed(lambda: animator.animate(source, driving, mode=args.mode))
    # float64 run of the per-frame loop: the float32 noise floor any reordering of the computation sees
    models64 = build_models(cfg.model_params)
    for (_, m32), (_, m64) in zip(models.items(), models64.items()):
        m64.load_state_dict(m32.state_dict())
    models64.to(torch.float64).eval()
    out_64 = per_frame_loop(models64, source.double(), driving.double(), args.mode).cpu()
    report = {
        "benchmark": "animate",
        "config": "vox256",
        "resolution": 256,
        "device": str(args.device),
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "mode": args.mode,
        "frames": args.frames,
        "batch_size": args.batch_size,
        "precision": args.precision,
        "per_frame_loop_fps": round(args.frames / t_a, 3),
        "mraa_pipeline_fps": round(args.frames / t_b, 3),
        "speedup": round(t_a / t_b, 3),
        "max_abs_diff": float((out_a.cpu() - out_b.cpu()).abs().max()),
        "per_frame_loop_vs_float64": float((out_a.cpu().double() - out_64).abs().max()),
        "mraa_pipeline_vs_float64": float((out_b.cpu().double() - out_64).abs().max()),
        "peak_rss_mb_this_process": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if args.memory_frames:
        report.update(memory_run(args.memory_frames, args.batch_size))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
