#!/usr/bin/env python
"""Animation speed, side by side in one process: a per-frame reference loop vs mraa's Animator variants.

Prints one JSON object. Random weights (speed does not depend on training) with BatchNorm statistics
calibrated on the inputs; image-like random frames; every variant runs on the same frames, the runs are
interleaved (reference, variant 1, variant 2, ..., repeated), and the median time of each is reported with the
load average before and after, since only ratios measured in one run mean anything on a shared machine.

Reference loop:
- ``--official DIR``: the official MRAA code (github:snap-research/articulated-animation), imported from a
  scratch folder outside the project (never committed), with its own config from DIR/config; label
  ``official``;
- otherwise mraa's own modules in the official per-frame loop (no caching, no BatchNorm folding, batch 1);
  label ``mraa-per-frame-loop`` (a re-creation, not the official code).

Variants (``--variants``, comma-separated): ``fp32`` (batch 1), ``fp32-b4``, ``bf16``, ``fp32-eager`` /
``bf16-eager`` (CPU without the packed convolutions of mraa.modules.packed), ``onnx``
(onnxruntime backend), ``compile`` (torch.compile, inductor), ``fp32-b8`` / ``bf16-b8`` (GPU batches),
``fp16`` (CUDA).

    python benchmarks/animate.py --official OFFICIAL_DIR --frames 4 --repeats 3 --mode avd
    python benchmarks/animate.py --variants fp32,bf16 --psnr --profile       # no official code needed
    python benchmarks/animate.py --device cuda --variants fp32-b8,bf16-b8,compile --frames 32   # GPU

``--psnr`` adds bf16 against fp32 on the shipped trained model (its sample source and driving video).
``--profile`` adds the per-part time of one fp32 frame and the top operators from torch.profiler;
``--memory-frames N`` the peak resident memory of ``mraa animate`` streaming an N-frame video.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {  # name: Animator keyword arguments
    "fp32": {"batch_size": 1},
    "fp32-b4": {"batch_size": 4},
    "fp32-b8": {"batch_size": 8},
    "bf16": {"batch_size": 1, "precision": "bf16"},
    "fp32-eager": {"batch_size": 1, "prepack": False},  # CPU: without the packed convolutions
    "bf16-eager": {"batch_size": 1, "precision": "bf16", "prepack": False},
    "bf16-b8": {"batch_size": 8, "precision": "bf16"},
    "fp16": {"batch_size": 8, "precision": "fp16"},
    "onnx": {"batch_size": 1, "backend": "onnxruntime"},
    "compile": {"compile": True},
}


def load_official(folder: str):
    """The official networks and animation-params function, imported from ``folder``."""
    sys.path.insert(0, folder)
    for name, attrs in {"frames_dataset": ["PairedDataset"], "logger": ["Logger", "Visualizer"]}.items():
        stub = types.ModuleType(name)  # animate.py imports training-only modules
        for attr in attrs:
            setattr(stub, attr, object)
        sys.modules.setdefault(name, stub)
    spec = importlib.util.spec_from_file_location("official_animate", Path(folder) / "animate.py")
    official_animate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(official_animate)
    from modules.avd_network import AVDNetwork
    from modules.generator import Generator
    from modules.region_predictor import RegionPredictor

    return Generator, RegionPredictor, AVDNetwork, official_animate.get_animation_region_params


def official_models(folder: str, config_path: Path, state: dict) -> dict:
    import yaml

    generator, region_predictor, avd, params_fn = load_official(folder)
    mp = yaml.safe_load(config_path.read_text())["model_params"]
    common = {"num_regions": mp["num_regions"], "num_channels": mp["num_channels"]}
    nets = {
        "generator": generator(revert_axis_swap=mp["revert_axis_swap"], **common, **mp["generator_params"]),
        "region_predictor": region_predictor(
            estimate_affine=mp["estimate_affine"], **common, **mp["region_predictor_params"]
        ),
        "avd_network": avd(num_regions=mp["num_regions"], **mp["avd_network_params"]),
    }
    for name, net in nets.items():
        net.load_state_dict(state[name])
        net.eval()
    nets["params_fn"] = params_fn
    return nets


def reference_loop(nets: dict, source, driving, mode: str):
    """The official demo's loop: per frame, region predictor + animation params + the whole generator."""
    with torch.no_grad():
        src = nets["region_predictor"](source)
        first = nets["region_predictor"](driving[:1])
        out = []
        for i in range(driving.shape[0]):
            drv = nets["region_predictor"](driving[i : i + 1])
            params = nets["params_fn"](src, drv, first, mode=mode, avd_network=nets["avd_network"])
            out.append(nets["generator"](source, source_region_params=src, driving_region_params=params))
        return torch.cat([o["prediction"] for o in out])


def mraa_loop_nets(models) -> dict:
    """mraa's own modules wrapped to the official call signatures (the labelled re-creation)."""
    from mraa.animate import animation_region_params

    def generator(source, source_region_params, driving_region_params):
        return models.generator(source, driving_region_params, source_region_params)

    def params_fn(src, drv, first, mode, avd_network):
        return animation_region_params(src, drv, first, mode, avd_network)

    return {
        "generator": generator,
        "region_predictor": models.region_predictor,
        "avd_network": models.avd_network,
        "params_fn": params_fn,
    }


def calibrate_batchnorm(models, source, driving) -> None:
    """Give every BatchNorm the statistics of these inputs (as a trained model has those of its data):
    with default running stats a random deep network's activations explode and float rounding differences
    are magnified far beyond what a real checkpoint shows. The AVD keeps its default statistics: near-identical
    random frames would give it near-zero variances and an ill-conditioned MLP."""
    norms = [m for _, net in models.items() for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for norm in norms:
        norm.momentum = 1.0
    models.train()
    with torch.no_grad():
        params = models.region_predictor(torch.cat([source, driving]))
        src = {k: v[:1].expand(len(driving), *v.shape[1:]) for k, v in params.items() if k not in ("u", "d")}
        drv = {k: v[1:] for k, v in params.items() if k not in ("u", "d")}
        models.generator(source.expand(len(driving), -1, -1, -1), drv, src)
    for norm in norms:
        norm.momentum = 0.1
    models.eval()


def smooth_images(n: int, size: int, seed: int) -> torch.Tensor:
    """Image-like random frames (n, 3, size, size): upsampled 16x16 noise (pixel noise would make any two
    correct float32 pipelines differ by ~1e-3 through the warps' image gradients)."""
    low = torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(seed))
    return torch.nn.functional.interpolate(low, size=(size, size), mode="bicubic", align_corners=False).clamp(
        0, 1
    )


def load_average() -> str:
    try:
        return Path("/proc/loadavg").read_text().split(" ", 3)[:3].__str__()
    except OSError:
        return "n/a"


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run_interleaved(runs: dict, repeats: int, device: str) -> dict:
    """Median seconds of each run, the runs interleaved ``repeats`` times; also the last outputs."""
    times: dict = {name: [] for name in runs}
    outputs: dict = {}
    for _ in range(repeats):
        for name, fn in runs.items():
            sync(device)
            start = time.perf_counter()
            outputs[name] = fn()
            sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}, outputs


def build(args):
    """Models (random, calibrated), their checkpoint, frames, and the reference loop's networks."""
    from mraa.checkpoint import save_checkpoint
    from mraa.config import load_config
    from mraa.models import build_models

    config_path = Path(args.official) / "config" / f"{args.config}.yaml" if args.official else None
    if config_path is None or not config_path.is_file():
        config_path = ROOT / "configs" / f"{args.config}.yaml"
    cfg = load_config(config_path)
    size = args.size or (384 if "384" in args.config else 256)
    torch.manual_seed(0)
    models = build_models(cfg.model_params).eval()
    source, driving = smooth_images(1, size, 1), smooth_images(args.frames, size, 2)
    with torch.no_grad():  # a moderate heatmap spread (a random head gives needle-like regions)
        models.region_predictor.regions.weight.mul_(args.heatmap_scale)
    calibrate_batchnorm(models, source, driving)
    checkpoint = Path(tempfile.mkdtemp()) / "checkpoint.pth"
    save_checkpoint(checkpoint, models, cfg)
    if args.official:
        state = {name: net.state_dict() for name, net in models.items()}
        nets, label = official_models(args.official, config_path, state), "official"
    else:
        nets, label = mraa_loop_nets(models), "mraa-per-frame-loop"
    return cfg, checkpoint, source, driving, nets, label


def make_runs(args, cfg, checkpoint, source, driving, nets, label) -> dict:
    from mraa.animate import Animator

    dev = args.device
    src_dev, drv_dev = source.to(dev), driving.to(dev)
    if dev != "cpu":
        for key in ("generator", "region_predictor", "avd_network"):
            if isinstance(nets[key], torch.nn.Module):
                nets[key].to(dev)
    runs = {label: lambda: reference_loop(nets, src_dev, drv_dev, args.mode)}
    for name in args.variants.split(","):
        kwargs = dict(VARIANTS[name])
        try:
            animator = Animator.from_checkpoint(checkpoint, cfg, device=dev, **kwargs)
        except Exception as err:  # e.g. onnxruntime missing: report, keep going
            runs[name] = err
            continue
        start = time.perf_counter()
        animator.animate(src_dev, drv_dev[:1], mode=args.mode)  # warm-up (compiles, builds sessions)
        warm = time.perf_counter() - start

        def run(animator=animator):
            return animator.animate(src_dev, drv_dev, mode=args.mode)

        run.warmup_seconds = warm
        runs[name] = run
    return runs


def bf16_psnr(frames: int = 0) -> dict:
    """PSNR of bf16 (Animator precision, and an outer torch.autocast) against fp32 on the shipped model."""
    from mraa.animate import DEFAULT_MODEL_DIR, Animator
    from mraa.data.video_io import fit_frame, read_image, read_video
    from mraa.modules.packed import cpu_bf16_supported

    if not cpu_bf16_supported():  # the Animator refuses bf16 there (~100x slower convolutions)
        return {"bf16_psnr_skipped": "this CPU has no native bfloat16 (AVX-512 or AVX-NE-CONVERT)"}
    fp32, bf16 = Animator.from_checkpoint(), Animator.from_checkpoint(precision="bf16")
    size = fp32.image_size

    def tensor(image):
        return torch.from_numpy(fit_frame(image, size)).permute(2, 0, 1).float() / 255

    video = read_video(DEFAULT_MODEL_DIR / "driving.mp4")
    driving = torch.stack([tensor(f) for f in video[: frames or len(video)]])
    source = tensor(read_image(DEFAULT_MODEL_DIR / "source.png"))
    ref = fp32.animate(source, driving)

    def psnr(out):
        return round(10 * math.log10(1 / float(((out - ref) ** 2).mean())), 2)

    # the packed convolutions stay float32 under an outer autocast
    eager = Animator.from_checkpoint(prepack=False)
    with torch.autocast("cpu", torch.bfloat16):
        outer = eager.animate(source, driving)
    return {
        "psnr_model": "shipped default",
        "psnr_frames": len(driving),
        "psnr_size": list(size),
        "bf16_psnr_db": psnr(bf16.animate(source, driving)),
        "outer_autocast_bf16_psnr_db": psnr(outer),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", help="folder holding the official code (modules/, config/, animate.py)")
    parser.add_argument("--config", default="vox256")
    parser.add_argument("--size", type=int, help="frame size (default: 384 for *384 configs, else 256)")
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--mode", default="avd", choices=("standard", "relative", "avd"))
    parser.add_argument("--variants", default="fp32,fp32-b4,bf16")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--heatmap-scale", type=float, default=0.3, help="scale of the random regions head")
    parser.add_argument("--psnr", action="store_true", help="bf16 vs fp32 PSNR on the shipped model")
    parser.add_argument("--profile", action="store_true", help="per-part times and top operators")
    parser.add_argument("--memory-frames", type=int, default=0, help="peak RSS of `mraa animate`, N frames")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    report = {"benchmark": "animate", "config": args.config, "device": args.device, "mode": args.mode,
              "threads": torch.get_num_threads(), "frames": args.frames, "repeats": args.repeats,
              "loadavg_before": load_average()}  # fmt: skip
    built = build(args)
    runs = make_runs(args, *built)
    failed = {name: f"{type(fn).__name__}: {fn}" for name, fn in runs.items() if isinstance(fn, Exception)}
    runs = {name: fn for name, fn in runs.items() if not isinstance(fn, Exception)}
    times, outputs = run_interleaved(runs, args.repeats, args.device)
    label = built[-1]
    report["reference"] = label
    report["size"] = built[2].shape[-1]
    report["fps"] = {name: round(args.frames / t, 3) for name, t in times.items()}
    report[f"speedup_vs_{label}"] = {name: round(times[label] / t, 3) for name, t in times.items()}
    ref = outputs[label].float().cpu()
    report["max_abs_diff"] = {n: float((o.float().cpu() - ref).abs().max()) for n, o in outputs.items()}
    report["warmup_seconds"] = {n: round(f.warmup_seconds, 1) for n, f in runs.items() if n != label}
    report["failed"] = failed
    report["loadavg_after"] = load_average()
    if args.profile:
        from profile_parts import profile_animator  # benchmarks/profile_parts.py

        report["profile"] = profile_animator(built[1], built[0], built[2], built[3], args.mode)
    if args.psnr:
        report.update(bf16_psnr())
    if args.memory_frames:
        from profile_parts import memory_run

        report.update(memory_run(args.memory_frames, 1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
