"""Diagnostic runs of the toy experiment at small training sets (docs/toy/README.md, "Diagnostics").

Trains (condition, network, size, seed) runs and appends one row per run to a CSV (resumable), with
several test metrics of the same trained model:

- ``test_l1``: plain L1 on the fixed test set, BatchNorm running statistics (the experiment's metric);
- ``test_axis_l1``: the same, with the error taken between axes (modulo 180 degrees);
- ``test_batchstats_l1``: plain L1 with BatchNorm normalising each test batch of 8 by its own statistics;
- ``val_l1``: plain L1 on a separate validation split of 128 images (for choosing settings).

    OMP_NUM_THREADS=1 python benchmarks/toy_diagnostics.py --out docs/toy/diagnostics.csv \\
        --condition base32 --image-size 32 --seeds 10 [--temperature 1.0] [--weight-decay 1e-4] ...
    python benchmarks/toy_diagnostics.py --out docs/toy/diagnostics.csv --summary test_l1
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import math
import time
from pathlib import Path

import torch

from mraa.toy.dataset import make_rectangles, make_test_set
from mraa.toy.networks import NETWORKS, count_parameters
from mraa.toy.runner import ToyConfig, axis_error, predict, t_interval, train_model

FIELDS = [
    "condition", "network", "size", "seed", "image_size", "temperature", "weight_decay", "block_expansion",
    "parameters", "test_l1", "test_axis_l1", "test_batchstats_l1", "val_l1", "train_l1", "skipped_steps", "seconds",
]  # fmt: skip


METRICS = ("test_l1", "test_axis_l1", "test_batchstats_l1", "val_l1", "train_l1")


def summary(path: Path, metric: str = "test_l1") -> str:
    """Markdown table of ``metric``: mean ± 95 % t-interval per (condition, size, network), and the
    paired (same seed, same training images) difference PCA - regression with its interval."""
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    groups: dict[tuple[str, int, str], dict[int, float]] = {}
    for r in rows:
        groups.setdefault((r["condition"], int(r["size"]), r["network"]), {})[int(r["seed"])] = float(
            r[metric]
        )
    lines = [
        f"| condition | size | naive | regression | pca | pca - regression (paired) | ({metric}) |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for condition, size in sorted({(c, s) for c, s, _ in groups}, key=lambda k: (k[0], k[1])):
        cells = []
        for network in NETWORKS:
            values = list(groups.get((condition, size, network), {}).values())
            mean = sum(values) / len(values) if values else math.nan
            cells.append(f"{mean:.2f} ± {t_interval(values):.2f} (n={len(values)})" if values else "–")
        reg, pca = groups.get((condition, size, "regression"), {}), groups.get((condition, size, "pca"), {})
        diffs = [pca[s] - reg[s] for s in sorted(set(reg) & set(pca))]
        paired = f"{sum(diffs) / len(diffs):+.2f} ± {t_interval(diffs):.2f}" if diffs else "–"
        lines.append(f"| {condition} | {size} | " + " | ".join(cells) + f" | {paired} | |")
    return "\n".join(lines) + "\n"


def export_results(path: Path, condition: str, results_path: Path) -> int:
    """Add the runs of ``condition`` to a ``mraa toy`` results.csv (test L1 = ``test_axis_l1``, the metric
    ``mraa toy`` reports); runs already there are kept. Returns the number of rows added."""
    from mraa.toy.runner import RunResult, read_results_csv, write_results_csv

    base = ToyConfig()
    with path.open() as handle:
        rows = [r for r in csv.DictReader(handle) if r["condition"] == condition]
    done = {r.key: r for r in read_results_csv(results_path)}
    added = 0
    for r in rows:
        result = RunResult(
            network=r["network"], size=int(r["size"]), seed=int(r["seed"]),
            test_l1_deg=float(r["test_axis_l1"]), train_l1_deg=float(r["train_l1"]),
            skipped_steps=int(r.get("skipped_steps") or 0), seconds=float(r["seconds"]), epochs=base.epochs,
            batch_size=base.batch_size, lr=base.lr, image_size=int(r["image_size"]),
            block_expansion=int(r["block_expansion"]), num_blocks=base.num_blocks, max_features=base.max_features,
        )  # fmt: skip
        added += result.key not in done
        done.setdefault(result.key, result)
    write_results_csv(done.values(), results_path)
    return added


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--condition", help="label of this set of runs (required unless --summary)")
    parser.add_argument("--summary", choices=METRICS, help="print the table of this metric and exit")
    parser.add_argument("--export-to", type=Path, help="add --condition's runs to this results.csv and exit")
    parser.add_argument("--networks", nargs="+", default=list(NETWORKS), choices=NETWORKS)
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--image-size", type=int, default=24)
    parser.add_argument("--temperature", type=float, default=0.1)
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--block-expansion", type=int, default=8)
    args = parser.parse_args()
    if args.summary:
        print(summary(args.out, args.summary), end="")
        return
    if not args.condition:
        parser.error("--condition is required")
    if args.export_to:
        print(f"added {export_results(args.out, args.condition, args.export_to)} runs to {args.export_to}")
        return
    torch.set_num_threads(1)
    config = dataclasses.replace(
        ToyConfig(),
        image_size=args.image_size,
        temperature=args.temperature,
        weight_decay=args.weight_decay,
        block_expansion=args.block_expansion,
    )
    test_x, test_y = make_test_set(config.image_size)
    val_x, val_y = make_rectangles(128, 0, config.image_size, split="val")
    done, fields = set(), FIELDS
    if args.out.exists() and args.out.stat().st_size:
        with args.out.open() as handle:
            reader = csv.DictReader(handle)
            done = {(r["condition"], r["network"], int(r["size"]), int(r["seed"])) for r in reader}
            fields = reader.fieldnames or FIELDS  # keep an older file's columns
    new_file = not args.out.exists() or not args.out.stat().st_size
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, lineterminator="\n", extrasaction="ignore")
        if new_file:
            writer.writeheader()
        for size in args.sizes:
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                for network in args.networks:
                    if (args.condition, network, size, seed) in done:
                        continue
                    start = time.perf_counter()
                    model, train_l1, skipped = train_model(network, size, seed, config)
                    pred = predict(model, test_x)
                    row = {
                        "condition": args.condition, "network": network, "size": size, "seed": seed,
                        "image_size": config.image_size, "temperature": config.temperature,
                        "weight_decay": config.weight_decay, "block_expansion": config.block_expansion,
                        "parameters": count_parameters(model),
                        "test_l1": round(float((pred - test_y).abs().mean()), 4),
                        "test_axis_l1": round(float(axis_error(pred, test_y).mean()), 4),
                        "test_batchstats_l1": round(
                            float((predict(model, test_x, 8, batch_stats=True) - test_y).abs().mean()), 4
                        ),
                        "val_l1": round(float((predict(model, val_x) - val_y).abs().mean()), 4),
                        "train_l1": round(train_l1, 4),
                        "skipped_steps": skipped,
                        "seconds": round(time.perf_counter() - start, 1),
                    }  # fmt: skip
                    writer.writerow(row)
                    handle.flush()


if __name__ == "__main__":
    main()
