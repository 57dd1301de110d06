"""Helpers of benchmarks/animate.py: per-part profile of one animated frame, peak memory of `mraa animate`."""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def _median_ms(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return round(1000 * statistics.median(times), 1)


def profile_animator(checkpoint, cfg, source, driving, mode: str, top: int = 12) -> dict:
    """Milliseconds per part for one frame (fp32 Animator, batch 1) and the top operators by self CPU time."""
    from torch.profiler import ProfilerActivity, profile

    from mraa.animate import Animator, animation_region_params

    animator = Animator.from_checkpoint(checkpoint, cfg, batch_size=1)
    frame = driving[:1]
    state = animator.encode_source(source)
    models = animator.models
    with torch.no_grad():
        drv = animator.region_params(frame)
        params = animation_region_params(state.region_params, drv, drv, mode, models.avd_network, scale=1.0)
        flow = models.generator.pixelwise_flow_predictor
        src = state.region_params
        motion = flow(state.image, params, src, source_small=state.small, source_gaussians=state.gaussians)
        parts = {
            "encode_source_once": _median_ms(lambda: animator.encode_source(source)),
            "region_predictor": _median_ms(lambda: animator.region_params(frame)),
            "animation_params": _median_ms(
                lambda: animation_region_params(src, drv, drv, mode, models.avd_network, scale=1.0)
            ),
            "flow_predictor": _median_ms(
                lambda: flow(
                    state.image, params, src, source_small=state.small, source_gaussians=state.gaussians
                )
            ),
            "generator_without_flow": _median_ms(
                lambda: models.generator(
                    state.image, params, src, source_features=state.features, motion=motion
                )
            ),
            "whole_frame_render": _median_ms(lambda: animator.render(state, params)),
        }
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            animator.render(state, params)
    rows = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
    total = sum(e.self_cpu_time_total for e in prof.key_averages())
    parts["top_ops_self_cpu_percent"] = {e.key: round(100 * e.self_cpu_time_total / total, 1) for e in rows}
    return parts


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
