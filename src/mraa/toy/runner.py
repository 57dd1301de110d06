"""Train and evaluate the toy networks over training-set sizes and seeds; results to CSV and Markdown.

One *run* is (network, training-set size, seed): the training set is the first ``size`` images of the
training stream with that seed, the network is initialised from that seed, trained with an L1 loss on
the angle (Adam, paper settings by default) and evaluated on the fixed test set (mean absolute error in
degrees). Finished runs are appended to ``results.csv`` (rewritten atomically after each run), so an
interrupted experiment resumes where it stopped.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import functools
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
    seeds: int = 5
    networks: tuple[str, ...] = NETWORKS
    batch_size: int = 8
    lr: float = 1e-4
    image_size: int = 24
    block_expansion: int = 8
    num_blocks: int = 3
    max_features: int = 64
    temperature: float = 0.1
    weight_decay: float = 0.0  # Adam's L2 penalty; the paper states none
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
    """Mean absolute angle error in degrees of ``model`` (in eval mode) on images (N, 3, H, W), taken
    between axes (:func:`axis_error`): the same as the plain L1 whenever the two differ by at most 90."""
    return float(axis_error(predict(model, images, batch_size), angles).mean())


def _gradients_finite(model: nn.Module) -> bool:
    return all(p.grad is None or bool(torch.isfinite(p.grad).all()) for p in model.parameters())


def axis_error(pred: Tensor, target: Tensor) -> Tensor:
    """Absolute angle error in degrees between two axes (angles modulo 180), in [0, 90].

    A rectangle is symmetric under a half turn, so 179 degrees and -1 degree are the same axis as 1 degree
    off 0; this is the error the paper's metric means for every network, whatever range its output has.
    """
    diff = torch.remainder(pred - target, 180.0)  # [0, 180)
    return torch.minimum(diff, 180.0 - diff)


@torch.no_grad()
def predict(model: nn.Module, images: Tensor, batch_size: int = 64, batch_stats: bool = False) -> Tensor:
    """Predicted angles (N,) on the CPU; BatchNorm uses running statistics unless ``batch_stats``.

    With ``batch_stats`` the model runs in train mode on a copy (its running statistics are left as they
    are), each batch normalised with its own statistics, as during training.
    """
    device = next(model.parameters()).device
    if batch_stats:
        model = copy.deepcopy(model).train()
    else:
        model.eval()
    preds = [model(images[i : i + batch_size].to(device)).cpu() for i in range(0, len(images), batch_size)]
    return torch.cat(preds)


@functools.lru_cache(maxsize=4)
def _training_stream(seed: int, size: int, image_size: int) -> tuple[Tensor, Tensor]:
    return make_rectangles(size, seed, image_size, split="train")


def training_set(size: int, seed: int, image_size: int, cache_size: int = 1024) -> tuple[Tensor, Tensor]:
    """The first ``size`` training images of ``seed`` (nested sets), rendered once per process.

    The stream is rendered up to ``max(size, cache_size)`` images and sliced, so the three networks and all
    sizes of one seed share one rendering (identical to :func:`make_rectangles` of ``size`` images).
    """
    images, angles = _training_stream(seed, max(size, cache_size), image_size)
    return images[:size], angles[:size]


def train_model(
    network: str, size: int, seed: int, config: ToyConfig, device: torch.device | str = "cpu"
) -> tuple[nn.Module, float, int]:
    """Train one network on the first ``size`` training images of ``seed``.

    Returns:
        the model, the mean training L1 of the last epoch (train mode) and the number of skipped steps.
    """
    images, angles = training_set(size, seed, config.image_size)
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
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
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
    return model, epoch_loss, skipped


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
    model, epoch_loss, skipped = train_model(network, size, seed, config, device)
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


# two-sided 95 % quantiles of Student's t for 1..30 degrees of freedom (beyond: the normal 1.96)
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)  # fmt: skip


def _mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    mean = sum(values) / len(values)
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1) if len(values) > 1 else 0.0
    return mean, math.sqrt(var)


def _half_width(std: float, count: int) -> float:
    """95 % Student-t half-width for ``count`` values of sample std ``std`` (0 for one value)."""
    if count < 2:
        return 0.0
    quantile = _T975[count - 2] if count - 1 <= len(_T975) else 1.96
    return quantile * std / math.sqrt(count)


def t_interval(values: list[float]) -> float:
    """Half-width of the 95 % Student-t confidence interval of the mean of ``values`` (0 for one value)."""
    if len(values) < 2:
        return 0.0
    return _half_width(_mean_std(values)[1], len(values))


def summarize(results: Iterable[RunResult]) -> dict[tuple[str, int], tuple[float, float, int, float]]:
    """Per (network, size): mean, sample std (0 for one seed), count and 95 % t-interval half-width of
    the test L1 over seeds."""
    groups: dict[tuple[str, int], list[float]] = {}
    for row in results:
        groups.setdefault((row.network, row.size), []).append(row.test_l1_deg)
    stats = {}
    for key, values in groups.items():
        mean, std = _mean_std(values)
        stats[key] = (mean, std, len(values), _half_width(std, len(values)))
    return stats


def results_table(results: Iterable[RunResult]) -> str:
    """Markdown table: one row per training-set size, one column per network, ``mean ± 95 % CI`` degrees
    (Student t over seeds)."""
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
                mean, _, count, half = stats[(network, size)]
                cells.append(f"{mean:.2f} ± {half:.2f} (n={count})")
            else:
                cells.append("–")
        lines.append(f"| {size} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_results_table(results: Iterable[RunResult], path: str | os.PathLike) -> None:
    """Write (atomically) ``results.md``: the table and a line describing the settings."""
    results = list(results)
    text = (
        "# Toy experiment: test L1 angle error (degrees), mean ± 95 % t-interval over seeds\n\n"
        + results_table(results)
    )
    if results:
        first = results[0]
        settings = ", ".join(f"{name}={getattr(first, name)}" for name in _RUN_SETTINGS)
        total = sum(r.seconds for r in results)
        text += f"\nSettings: {settings}. Summed run time: {total / 60:.1f} min.\n"
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)


MAX_IMAGE_SIZE = 256  # pixels; the renderer supersamples 4x4, and the toy networks are for small images
MAX_TRAIN_SIZE = 65536  # images per training set
MAX_SEEDS = 1000
MAX_EPOCHS = 100000
MAX_DATA_BYTES = 2 * 1024**3  # the largest training set must fit in memory as float32


def check_config(config: ToyConfig) -> None:
    """Raise :class:`MRAAError` (one line, naming the value) for settings the experiment cannot run."""
    for name in config.networks:
        if name not in NETWORKS:
            raise MRAAError(f"unknown toy network {name!r}; expected one of {', '.join(NETWORKS)}")
    if not config.networks:
        raise MRAAError("no toy networks selected")
    bounds = {"seeds": (1, MAX_SEEDS), "epochs": (1, MAX_EPOCHS), "image size": (8, MAX_IMAGE_SIZE)}
    values = {"seeds": config.seeds, "epochs": config.epochs, "image size": config.image_size}
    for label, (low, high) in bounds.items():
        if not low <= values[label] <= high:
            raise MRAAError(f"{label} must be between {low} and {high}, got {values[label]}")
    if config.image_size % 2**config.num_blocks:
        raise MRAAError(
            f"image size must be divisible by 2**num_blocks = {2**config.num_blocks}, got {config.image_size}"
        )
    if not config.sizes or not all(1 <= s <= MAX_TRAIN_SIZE for s in config.sizes):
        raise MRAAError(
            f"training-set sizes must be between 1 and {MAX_TRAIN_SIZE}, got {list(config.sizes)}"
        )
    data_bytes = max(config.sizes) * 3 * config.image_size**2 * 4
    if data_bytes > MAX_DATA_BYTES:
        raise MRAAError(
            f"{max(config.sizes)} training images of {config.image_size}x{config.image_size} need "
            f"{data_bytes / 1024**3:.1f} GiB (at most {MAX_DATA_BYTES / 1024**3:.0f} GiB); use fewer or smaller images"
        )


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

    check_config(config)
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
