"""Speed of the toy experiment's training steps, and the projected wall time of the full run.

Prints one JSON object: milliseconds per training step (batch 8) for each network at the default
``mraa toy`` settings, and the projected time of 100 epochs x sizes 32..1024 x 5 seeds x 3 networks.

    .venv/bin/python benchmarks/toy.py [--threads 1] [--steps 30] [--image-size 32] [--lockstep 5]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import torch

from mraa.toy.dataset import make_rectangles
from mraa.toy.networks import build_network, count_parameters
from mraa.toy.runner import ToyConfig


def step_time(name: str, config: ToyConfig, steps: int, warmup: int = 3) -> tuple[float, int]:
    """Seconds per training step of ``name`` (median over ``steps``), and its parameter count."""
    torch.manual_seed(0)
    model = build_network(
        name, config.image_size, config.block_expansion, config.num_blocks, config.max_features
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    images, angles = make_rectangles(config.batch_size * (steps + warmup), 0, config.image_size)
    times = []
    for i in range(steps + warmup):
        batch = slice(i * config.batch_size, (i + 1) * config.batch_size)
        start = time.perf_counter()
        loss = (model(images[batch]) - angles[batch]).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2], count_parameters(model)


def lockstep_step_time(name: str, config: ToyConfig, models: int, steps: int, warmup: int = 3) -> float:
    """Seconds per training step *per model* when ``models`` independent copies train in lockstep.

    The copies' parameters and BatchNorm buffers are stacked (``torch.func.stack_module_state``) and one
    ``vmap`` of ``functional_call`` runs them all; every copy sees its own batch, so BatchNorm statistics
    stay per model, and Adam (elementwise) on the stacked parameters equals one Adam per model.
    """
    import copy

    from torch.func import functional_call, stack_module_state, vmap

    copies = []
    for seed in range(models):
        torch.manual_seed(seed)
        copies.append(
            build_network(
                name, config.image_size, config.block_expansion, config.num_blocks, config.max_features
            )
        )
    params, buffers = stack_module_state(copies)
    params = {k: v.detach().clone().requires_grad_() for k, v in params.items()}
    base = copy.deepcopy(copies[0]).to("meta")
    optimizer = torch.optim.Adam(list(params.values()), lr=config.lr)
    count = config.batch_size * (steps + warmup)
    data = [make_rectangles(count, seed, config.image_size) for seed in range(models)]
    images = torch.stack([d[0] for d in data])  # (G, N, 3, H, W)
    angles = torch.stack([d[1] for d in data])  # (G, N)

    def forward(p: dict, b: dict, x: torch.Tensor) -> torch.Tensor:
        return functional_call(base, (p, b), (x,))

    times = []
    for i in range(steps + warmup):
        batch = slice(i * config.batch_size, (i + 1) * config.batch_size)
        start = time.perf_counter()
        pred = vmap(forward)(params, buffers, images[:, batch])  # (G, B)
        loss = (pred - angles[:, batch]).abs().mean(dim=1).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2] / models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument(
        "--lockstep", type=int, default=0, help="also time N models trained in lockstep (vmap)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = ToyConfig()
    if args.image_size:
        config = dataclasses.replace(config, image_size=args.image_size)
    steps_per_network = config.epochs * config.seeds * sum(-(-s // config.batch_size) for s in config.sizes)
    report: dict = {"threads": args.threads, "config": dataclasses.asdict(config), "networks": {}}
    total = 0.0
    for name in config.networks:
        seconds, params = step_time(name, config, args.steps)
        report["networks"][name] = {"ms_per_step": round(seconds * 1e3, 2), "parameters": params}
        if args.lockstep:
            per_model = lockstep_step_time(name, config, args.lockstep, args.steps)
            report["networks"][name]["lockstep_ms_per_model_step"] = round(per_model * 1e3, 2)
        total += seconds * steps_per_network
    report["steps_per_network"] = steps_per_network
    report["projected_full_run_min"] = round(total / 60, 1)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
