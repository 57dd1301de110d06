"""``mraa info``: what a checkpoint holds, without loading a model."""

from __future__ import annotations

import argparse
import json


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "info",
        help="show what a checkpoint holds (regions, background type, AVD, parameters, config, sha256)",
        description="Read a checkpoint's state dicts and print its number of regions, background motion "
        "type, whether the AVD network is trained, parameter counts per network, which configs in configs/ "
        "build exactly these networks, and the file's sha256.",
    )
    parser.add_argument(
        "checkpoint",
        nargs="?",
        help="official .pth, training checkpoint or export (default: the shipped model)",
    )
    parser.add_argument("--config", help="also check this YAML config against the weights")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mraa.animate import default_checkpoint
    from mraa.model_info import read_info

    info = read_info(args.checkpoint or default_checkpoint(), args.config)
    if args.json:
        print(json.dumps(info.as_dict(), indent=2))
        return 0
    total = sum(info.parameters.values())
    print(f"checkpoint: {info.path}")
    print(f"sha256: {info.sha256}")
    print(f"regions: {info.num_regions}; background motion: {info.bg_type}")
    print(f"AVD network: {'trained' if info.avd_trained else 'not trained (mode avd will look poor)'}")
    counts = ", ".join(f"{name} {count:,}" for name, count in info.parameters.items())
    print(f"parameters: {total:,} ({counts})")
    if info.epochs:
        print("epochs: " + ", ".join(f"{k[6:]} {v}" for k, v in info.epochs.items()))
    print(f"stored config: {'yes' if info.stored_config else 'no (pass --config to animate with it)'}")
    if info.config_matches is not None:
        which = args.config or "the stored config"
        print(f"{which}: {'matches the weights' if info.config_matches else 'does NOT match the weights'}")
    print(f"matching configs: {', '.join(info.matching_configs) or 'none found in configs/'}")
    return 0
