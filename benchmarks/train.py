#!/usr/bin/env python
"""Training speed: milliseconds per optimisation step (forward + backward + Adam step).

Prints JSON. Uses the vox256 config (configs/vox256.yaml; model defaults otherwise) at 256x256 with random
weights and random images, batch 2, with every loss of the config: the perceptual loss runs a randomly
initialised VGG19 (same cost as a real one), plus the equivariance losses. Timing speed does not depend on
what the weights are.

    python benchmarks/train.py [--steps 3] [--warmup 1] [--batch-size 2] [--size 256] [--device cpu]
                               [--amp bf16] [--threads N] [--no-perceptual]

On CPU a step takes seconds; keep --steps small on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def build(config: Path | None, no_perceptual: bool, device: torch.device):
    from mraa.config import MRAAConfig, load_config
    from mraa.losses import Vgg19Features
    from mraa.models import build_models
    from mraa.training.reconstruction_model import ReconstructionModel, disable_perceptual, uses_perceptual

    cfg = load_config(config) if config is not None and config.is_file() else MRAAConfig()
    if no_perceptual:
        cfg = disable_perceptual(cfg)
    torch.manual_seed(0)
    models = build_models(cfg.model_params)
    vgg = Vgg19Features() if uses_perceptual(cfg.train_params) else None
    model = ReconstructionModel(
        models.region_predictor,
        models.bg_predictor,
        models.generator,
        cfg.train_params,
        vgg=vgg,
        rng=torch.Generator().manual_seed(0),
    ).to(device)
    model.train()
    return cfg, model


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "vox256.yaml")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=3, help="timed steps")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--amp", choices=("bf16",), help="bfloat16 autocast")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument(
        "--no-perceptual", action="store_true", help="L1 instead of the VGG19 perceptual loss"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    if args.threads:
        torch.set_num_threads(args.threads)
    from mraa.training.precision import autocast

    device = torch.device(args.device)
    cfg, model = build(args.config, args.no_perceptual, device)
    optimizer = torch.optim.Adam(model.trainable_parameters(), lr=cfg.train_params.lr)
    generator = torch.Generator().manual_seed(1)
    shape = (args.batch_size, 3, args.size, args.size)
    batch = {k: torch.rand(shape, generator=generator).to(device) for k in ("source", "driving")}

    forward_ms, total_ms = [], []
    for step in range(args.warmup + args.steps):
        sync(device)
        start = time.perf_counter()
        with autocast(device, args.amp):
            losses, _ = model(batch)
        loss = sum(value.float() for value in losses.values())
        sync(device)
        middle = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        sync(device)
        end = time.perf_counter()
        if step >= args.warmup:
            forward_ms.append((middle - start) * 1e3)
            total_ms.append((end - start) * 1e3)
        print(f"step {step}: {(end - start) * 1e3:.0f} ms", file=sys.stderr)

    result = {
        "benchmark": "train_step",
        "config": args.config.name if args.config.is_file() else "defaults (vox256 model)",
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "batch_size": args.batch_size,
        "size": args.size,
        "amp": args.amp or "fp32",
        "losses": sorted(losses),
        "steps": args.steps,
        "ms_per_step": round(statistics.median(total_ms), 1),
        "ms_per_step_min": round(min(total_ms), 1),
        "ms_forward": round(statistics.median(forward_ms), 1),
        "ms_backward_and_step": round(statistics.median(t - f for t, f in zip(total_ms, forward_ms)), 1),
        "pairs_per_second": round(args.batch_size / (statistics.median(total_ms) / 1e3), 3),
        "trainable_parameters": sum(p.numel() for p in model.trainable_parameters()),
    }
    if device.type == "cuda":
        result["peak_memory_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
