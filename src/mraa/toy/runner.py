"""Train and evaluate the toy networks over training-set sizes and seeds; results to CSV and Markdown.

One *run* is (network, training-set size, seed): the training set is the first ``size`` images of the
training stream with that seed, the network is initialised from that seed, trained with an L1 loss on
the angle (Adam, paper settings by default) and evaluated on the fixed test set (mean absolute error in
degrees). Finished runs are appended to ``results.csv`` (rewritten atomically after each run), so an
interrupted experiment resumes where it stopped.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
import math
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from mraa.atomic import atomic_write_text
from mraa.errors import MRAAError
from mraa.toy.dataset import TEST_SIZE, make_rectangles, make_test_set
from mraa.toy.networks import NETWORKS, build_network

log = logging.getLogger(__name__)

CSV_NAME = "results.csv"
TABLE_NAME = "results.md"
PLOT_NAME = "error_vs_size.png"
SAMPLES_NAME = "samples.png"
PAPER_SIZES = (32, 64, 128, 256, 512, 1024)


@dataclass(frozen=True)
class ToyConfig:
    """Settings of the experiment. Training settings follow the paper; the widths fit a CPU budget."""

    sizes: tuple[int, ...] = PAPER_SIZES
    epochs: int = 100
    seeds: int = 3
    networks: tuple[str, ...] = NETWORKS
    batch_size: int = 8
    lr: float = 1e-4
    image_size: int = 24
    block_expansion: int = 8
    num_blocks: int = 3
    max_features: int = 64
    temperature: float = 0.1
    test_size: int = TEST_SIZE


QUICK_CONFIG = ToyConfig(
    sizes=(8, 16),
    epochs=2,
    seeds=1,
    image_size=16,
    block_expansion=4,
    num_blocks=2,
    max_features=16,
    test_size=16,
)

# settings that must agree between a CSV being resumed and the current config
_RUN_SETTINGS = ("epochs", "batch_size", "lr", "image_size", "block_expansion", "num_blocks", "max_features")


@dataclass(frozen=True)
class RunResult:
    """One finished run (a row of ``results.csv``)."""

    network: str
    size: int
    seed: int
    test_l1_deg: float
    train_l1_deg: float  # mean training loss over the last epoch
    skipped_steps: int  # steps dropped because the loss or a gradient was not finite
    seconds: float
    epochs: int
    batch_size: int
    lr: float
    image_size: int
    block_expansion: int
    num_blocks: int
    max_features: int

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.network, self.size, self.seed)


_FIELDS = [f.name for f in dataclasses.fields(RunResult)]


def evaluate(model: nn.Module, images: Tensor, angles: Tensor, batch_size: int = 64) -> float:
    """Mean absolute angle error in degrees of ``model`` (in eval mode) on images (N, 3, H, W)."""
    device = next(model.parameters()).device
    model.eval()
    errors = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            pred = model(images[start : start + batch_size].to(device)).cpu()
            errors.append((pred - angles[start : start + batch_size]).abs())
    return float(torch.cat(errors).mean())


def _gradients_finite(model: nn.Module) -> bool:
    return all(p.grad is None or bool(torch.isfinite(p.grad).all()) for p in model.parameters())


def train_run(
    network: str,
    size: int,
    seed: int,
    config: ToyConfig,
    test_set: tuple[Tensor, Tensor],
    device: torch.device | str = "cpu",
) -> RunResult:
    """Train one network on ``size`` images from seed ``seed`` and evaluate it on ``test_set``."""
    start_time = time.perf_counter()
    images, angles = make_rectangles(size, seed, config.image_size, split="train")
    images, angles = images.to(device), angles.to(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_network(
            network,
            config.image_size,
            config.block_expansion,
            config.num_blocks,
            config.max_features,
            config.temperature,
        ).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    shuffle = torch.Generator().manual_seed(seed)
    skipped = 0
    epoch_loss = math.nan
    for _ in range(config.epochs):
        model.train()
        order = torch.randperm(size, generator=shuffle)
        total, count = 0.0, 0
        for begin in range(0, size, config.batch_size):
            batch = order[begin : begin + config.batch_size].to(device)
            loss = (model(images[batch]) - angles[batch]).abs().mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if not torch.isfinite(loss) or not _gradients_finite(model):
                skipped += 1
                continue
            optimizer.step()
            total += float(loss.detach()) * len(batch)
            count += len(batch)
        epoch_loss = total / count if count else math.nan
    if skipped:
        log.warning("%s size=%d seed=%d: skipped %d non-finite steps", network, size, seed, skipped)
    test_l1 = evaluate(model, test_set[0], test_set[1])
    return RunResult(
        network=network,
        size=size,
        seed=seed,
        test_l1_deg=round(test_l1, 4),  # rounded as in the CSV, so that results read back are equal
        train_l1_deg=round(epoch_loss, 4),
        skipped_steps=skipped,
        seconds=round(time.perf_counter() - start_time, 1),
        **{name: getattr(config, name) for name in _RUN_SETTINGS},
    )


def write_results_csv(results: Iterable[RunResult], path: str | os.PathLike) -> None:
    """Write (atomically) one CSV row per run, sorted by network, size and seed."""
    rows = sorted(results, key=lambda r: (NETWORKS.index(r.network) if r.network in NETWORKS else 99, r.key))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(dataclasses.asdict(row))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, buffer.getvalue())


def read_results_csv(path: str | os.PathLike) -> list[RunResult]:
    """Read the rows written by :func:`write_results_csv` (an empty list if the file does not exist)."""
    path = Path(path)
    if not path.exists():
        return []
    types = {f.name: f.type for f in dataclasses.fields(RunResult)}
    convert = {"str": str, "int": int, "float": float}
    results = []
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = set(_FIELDS) - set(reader.fieldnames or ())
        if missing:
            raise MRAAError(f"{path}: not a toy results file (missing columns {', '.join(sorted(missing))})")
        for line, row in enumerate(reader, start=2):
            try:
                results.append(RunResult(**{k: convert[types[k]](row[k]) for k in _FIELDS}))
            except (TypeError, ValueError) as exc:
                raise MRAAError(f"{path}:{line}: malformed row ({exc})") from exc
    return results


def _check_resumable(previous: list[RunResult], config: ToyConfig, path: Path) -> None:
    for row in previous:
        for name in _RUN_SETTINGS:
            if getattr(row, name) != getattr(config, name):
                raise MRAAError(
                    f"{path} holds runs with {name}={getattr(row, name)}, but this run uses "
                    f"{name}={getattr(config, name)}; choose another --out folder or delete the file"
                )


def summarize(results: Iterable[RunResult]) -> dict[tuple[str, int], tuple[float, float, int]]:
    """Mean, sample standard deviation (0 for one seed) and count of test L1 per (network, size)."""
    groups: dict[tuple[str, int], list[float]] = {}
    for row in results:
        groups.setdefault((row.network, row.size), []).append(row.test_l1_deg)
    stats = {}
    for key, values in groups.items():
        mean = sum(values) / len(values)
        var = sum((v - mean) ** 2 for v in values) / (len(values) - 1) if len(values) > 1 else 0.0
        stats[key] = (mean, math.sqrt(var), len(values))
    return stats


def results_table(results: Iterable[RunResult]) -> str:
    """Markdown table: one row per training-set size, one column per network, ``mean ± std`` degrees."""
    results = list(results)
    stats = summarize(results)
    networks = [n for n in NETWORKS if any(r.network == n for r in results)]
    networks += sorted({r.network for r in results} - set(networks))
    sizes = sorted({r.size for r in results})
    lines = [
        "| train size | " + " | ".join(networks) + " |",
        "|---:|" + "---:|" * len(networks),
    ]
    for size in sizes:
        cells = []
        for network in networks:
            if (network, size) in stats:
                mean, std, count = stats[(network, size)]
                cells.append(f"{mean:.2f} ± {std:.2f} (n={count})")
            else:
                cells.append("–")
        lines.append(f"| {size} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_results_table(results: Iterable[RunResult], path: str | os.PathLike) -> None:
    """Write (atomically) ``results.md``: the table and a line describing the settings."""
    results = list(results)
    text = "# Toy experiment: test L1 angle error (degrees), mean ± std over seeds\n\n" + results_table(
        results
    )
    if results:
        first = results[0]
        settings = ", ".join(f"{name}={getattr(first, name)}" for name in _RUN_SETTINGS)
        total = sum(r.seconds for r in results)
        text += f"\nSettings: {settings}. Summed run time: {total / 60:.1f} min.\n"
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)


def run_toy(
    out_dir: str | os.PathLike,
    config: ToyConfig = ToyConfig(),
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> list[RunResult]:
    """Run (or resume) the whole experiment, writing ``results.csv`` and ``results.md`` in ``out_dir``.

    Runs already in ``out_dir/results.csv`` with the same settings are read back instead of repeated.

    Returns:
        All results (previous and new) for the requested networks, sizes and seeds.
    """
    from tqdm.auto import tqdm

    for name in config.networks:
        if name not in NETWORKS:
            raise MRAAError(f"unknown toy network {name!r}; expected one of {', '.join(NETWORKS)}")
    if not config.sizes or min(config.sizes) < 1 or config.seeds < 1 or config.epochs < 1:
        raise MRAAError("sizes, seeds and epochs must be positive")
    out_dir = Path(out_dir)
    csv_path = out_dir / CSV_NAME
    previous = read_results_csv(csv_path)
    _check_resumable(previous, config, csv_path)
    done = {row.key: row for row in previous}
    jobs = [
        (network, size, seed)
        for size in config.sizes
        for seed in range(config.seeds)
        for network in config.networks
    ]
    todo = [job for job in jobs if job not in done]
    if len(todo) < len(jobs):
        log.info("resuming: %d of %d runs already in %s", len(jobs) - len(todo), len(jobs), csv_path)
    test_set = make_test_set(config.image_size, config.test_size)
    bar = tqdm(todo, desc="toy runs", unit="run", disable=not progress)
    for network, size, seed in bar:
        bar.set_postfix_str(f"{network} n={size} seed={seed}")
        result = train_run(network, size, seed, config, test_set, device)
        log.debug("%s size=%d seed=%d: test L1 %.2f deg", network, size, seed, result.test_l1_deg)
        done[result.key] = result
        write_results_csv(done.values(), csv_path)
    bar.close()
    write_results_csv(done.values(), csv_path)
    selected = [done[job] for job in jobs]
    write_results_table(done.values(), out_dir / TABLE_NAME)
    return selected
