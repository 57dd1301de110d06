#!/usr/bin/env python
"""Build the model shipped with mraa (src/mraa/assets/default) from a finished training run.

    python scripts/make_default_assets.py --checkpoint runs/synth64-avd/00000004-cpk-avd.pth \
        --data data/synth64 [--seed 777]

1. exports the checkpoint to src/mraa/assets/default/{model.safetensors,config.yaml};
2. renders a sample source image and driving video from synthetic videos the model never saw (a seed other than
   the training data's), two different figures of the same kind;
3. measures reconstruction L1 on the held-out test videos against the no-motion baseline and writes
   benchmarks/default_model.json;
4. writes docs/images/default_model.png, a frame grid (driving frames, animated source) for the README.

The whole pipeline (data, training, AVD, this script) is scripts/train_default.sh.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "src" / "mraa" / "assets" / "default"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data", required=True, help="synthetic dataset with test/ (held-out videos)")
    parser.add_argument(
        "--seed", type=int, default=777, help="seed of the sample videos (not the training seed)"
    )
    parser.add_argument("--driving-frames", type=int, default=64)
    parser.add_argument(
        "--earlier-epochs",
        type=int,
        nargs="*",
        default=[],
        help="reconstruction epochs of the earlier runs whose weights this run started from, in order "
        "(the first stages of scripts/train_default.sh); recorded with this run's epochs",
    )
    parser.add_argument(
        "--still-background",
        choices=("identity", "source"),
        default="source",
        help="animate_params.still_background written into the shipped config (default: source, because the "
        "background predictor learns a constant slight zoom; see configs/synth64.yaml)",
    )
    return parser


def main() -> None:
    args = build_parser().parse_args()

    from mraa.animate import Animator
    from mraa.checkpoint import MODEL_KEYS, export_safetensors, load_model
    from mraa.data.frames_dataset import FramesDataset
    from mraa.data.synthetic import SynthConfig, render_video
    from mraa.data.video_io import write_image, write_video
    from mraa.evaluation import reconstruct_dataset
    from mraa.visualize import make_grid, tensor_to_uint8

    loaded = load_model(args.checkpoint)  # the checkpoint read once: its config and weights
    data, cfg, models = loaded.data, loaded.config, loaded.models
    cfg.animate_params.still_background = args.still_background
    ASSETS.mkdir(parents=True, exist_ok=True)
    include = tuple(name for name in MODEL_KEYS if data.get(name))
    export_safetensors(models, cfg, ASSETS, include=include)

    size = cfg.dataset_params.resolved_frame_shape[0]
    synth = SynthConfig(size=size, num_frames=args.driving_frames, camera_motion=0.0)
    source_video = render_video(args.seed, 0, synth)  # index 0: a humanoid
    driving_video = render_video(args.seed, 3, synth)  # index 3: another humanoid
    write_image(ASSETS / "source.png", source_video[0])
    write_video(ASSETS / "driving.mp4", list(driving_video), fps=synth.fps)

    animator = Animator.from_checkpoint(ASSETS / "model.safetensors", batch_size=8)
    start = time.perf_counter()
    test = FramesDataset(args.data, frame_shape=cfg.dataset_params.resolved_frame_shape, is_train=False)
    report = reconstruct_dataset(animator, test, progress=False)
    seconds = time.perf_counter() - start
    summary = report.to_dict()
    result = {
        "model": "src/mraa/assets/default (configs/synth64.yaml)",
        "checkpoint": str(args.checkpoint),
        "test_videos": len(report.videos) if hasattr(report, "videos") else None,
        "reconstruction_l1": summary.get("l1"),
        "no_motion_baseline_l1": summary.get("baseline_l1"),
        "ratio": (summary.get("l1") / summary.get("baseline_l1")) if summary.get("baseline_l1") else None,
        "reconstruction_epochs": sum(args.earlier_epochs) + cfg.train_params.num_epochs,
        "reconstruction_stages": [*args.earlier_epochs, cfg.train_params.num_epochs],
        "separation_weight": cfg.train_params.loss_weights.separation,
        "pairs_per_epoch": cfg.train_params.num_repeats
        * len(FramesDataset(args.data, frame_shape=test.frame_shape, is_train=True)),
        "avd_epochs": cfg.train_avd_params.num_epochs,
        "evaluation_seconds": round(seconds, 1),
    }
    (ROOT / "benchmarks" / "default_model.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))

    to_tensor = lambda a: torch.from_numpy(np.array(a)).permute(0, 3, 1, 2).float() / 255  # noqa: E731
    driving = to_tensor(driving_video)
    frames = animator.animate(to_tensor(source_video[:1]), driving, mode=animator.default_mode())
    picks = np.linspace(0, len(driving_video) - 1, 6).round().astype(int)
    animated = tensor_to_uint8(frames)
    blank = np.full_like(source_video[0], 255)
    grid = make_grid(
        [[source_video[0], *[driving_video[i] for i in picks]], [blank, *[animated[i] for i in picks]]]
    )
    grid = np.kron(grid, np.ones((2, 2, 1), np.uint8))  # 2x for the README
    write_image(ROOT / "docs" / "images" / "default_model.png", grid)
    print("wrote", ASSETS, "and docs/images/default_model.png")


if __name__ == "__main__":
    main()
