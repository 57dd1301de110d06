"""The training loop shared by reconstruction and AVD training: :func:`fit`, read top to bottom.

``fit`` checks the values, the run folder and the starting checkpoint, then builds the optimizer and the
learning-rate schedule, and runs the epochs, saving checkpoints and logging metrics. What differs between
the two trainings (which networks train, which are saved, which parameters) is a :class:`Task`.

Randomness is a pure function of (run seed, epoch, rank): at the start of every epoch the global RNGs, the
data order, the data-loader worker seeds and the loss-side generator (equivariance warps / AVD scaling) are
re-seeded from it. A run resumed from an end-of-epoch checkpoint therefore sees exactly the pairs and random
transforms an uninterrupted run would have seen.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from mraa.atomic import atomic_path, remove_stale_temps
from mraa.checkpoint import load_checkpoint, save_checkpoint
from mraa.config import MRAAConfig, TrainAVDParams, TrainParams, save_config
from mraa.errors import MRAAError
from mraa.governor import computes
from mraa.models import MRAAModels
from mraa.training.checkpoints import checkpoint_path, prune_after_save
from mraa.training.data import EpochLoader
from mraa.training.distributed import (
    DistInfo,
    all_reduce_mean,
    barrier,
    broadcast_int,
    cleanup_distributed,
    init_distributed,
    maybe_sync_batchnorm,
    wrap_ddp,
)
from mraa.training.logger import RunningMeans, TrainLogger
from mraa.training.precision import autocast, check_amp
from mraa.training.rundir import (
    RunExistsError,
    check_run_dir,
    clear_run,
    lock_run_dir,
    remove_empty_run_dir,
    remove_failed_run,
    run_file_name,
    run_tag,
    unlock_run_dir,
)
from mraa.training.schedule import PairsLRSchedule, check_training_values
from mraa.training.seeding import (
    SEED_GLOBAL,
    SEED_TRANSFORM,
    derive_seed,
    new_run_seed,
    seed_everything,
    set_deterministic,
)

log = logging.getLogger(__name__)

STATE_KEY = "mraa_train_state"  # our extra checkpoint entry for exact resumption

__all__ = ["RunExistsError", "RunOptions", "Task", "TrainResult", "fit", "run_epochs"]


@dataclass(frozen=True)
class RunOptions:
    """How to run a training (the same choices for reconstruction and AVD training).

    Args:
        checkpoint: the checkpoint to start from (see each training for its meaning).
        resume: continue the run in the log folder, restoring weights, optimizer, learning-rate position,
            epoch, pairs seen and seed.
        overwrite: a log folder holding a previous run is cleared first (otherwise it is refused).
        device: "cpu", "cuda", "cuda:1"...; None picks CUDA when available. Under ``torchrun`` each
            process uses ``cuda:LOCAL_RANK``.
        seed: run seed (saved for resuming); None draws one, or reuses the resumed run's.
        deterministic: request deterministic kernels (``torch.use_deterministic_algorithms``).
        amp: "bf16" for bfloat16 autocast (meant for CUDA), None for float32.
        num_workers: data-loader workers (default: the config's ``dataloader_workers``).
        progress, tensorboard, visualize: the progress bar, TensorBoard logs, one picture per epoch.
    """

    checkpoint: str | os.PathLike | None = None
    resume: bool = False
    overwrite: bool = False
    device: str | torch.device | None = None
    seed: int | None = None
    deterministic: bool = False
    amp: str | None = None
    num_workers: int | None = None
    progress: bool = True
    tensorboard: bool = True
    visualize: bool = True


@dataclass(frozen=True)
class Task:
    """What one kind of training trains and saves.

    Args:
        mode: "reconstruction" or "avd": checkpoint names ``*-cpk-<mode>.pth``, keys ``optimizer_<mode>``
            and ``epoch_<mode>``, the config and metrics file names.
        params: the schedule (``cfg.train_params`` or ``cfg.train_avd_params``).
        build: the training model, ``model(batch) -> (losses, outputs)``, from the loss-side generator.
        trainable: the parameters the optimizer updates, from the (built) training model.
        start: ``(log_dir, options) -> (checkpoint or None, resume it?)``: the file to start from.
        require: networks the starting checkpoint must hold; save: networks each checkpoint holds.
        supersedes: other modes whose runs in the same folder a new run makes stale (cleared with it).
        visualize: ``(batch, outputs) -> uint8 picture`` for the end of each epoch.
    """

    mode: str
    params: TrainParams | TrainAVDParams
    build: Callable[[torch.Generator], nn.Module]
    trainable: Callable[[nn.Module], Iterable[nn.Parameter]]
    start: Callable[[Path, RunOptions], tuple[Path | None, bool]]
    require: tuple[str, ...]
    save: tuple[str, ...]
    supersedes: tuple[str, ...] = ()
    visualize: Callable[[dict[str, Tensor], dict], np.ndarray] | None = None
    find_unused_parameters: bool = False


@dataclass
class LoopState:
    """Position of a run: the next epoch to train, optimisation steps and pairs seen so far, the run seed."""

    next_epoch: int = 0
    step: int = 0
    pairs_seen: int = 0
    seed: int = 0
    last_losses: dict[str, float] = field(default_factory=dict)
    last_checkpoint: Path | None = None

    def to_checkpoint(
        self, mode: str, schedule: PairsLRSchedule, world_size: int, batch_size: int
    ) -> dict[str, Any]:
        return {
            "mode": mode,
            "next_epoch": self.next_epoch,
            "step": self.step,
            "pairs_seen": self.pairs_seen,
            "seed": self.seed,
            "scheduler": schedule.state_dict(),
            "world_size": world_size,
            "batch_size": batch_size,
        }


@dataclass
class TrainResult:
    """Summary of a finished (or already complete) run."""

    log_dir: Path
    checkpoint: Path | None  # the last checkpoint written by this call
    epochs: int  # epochs completed in total
    steps: int
    pairs_seen: int
    seed: int
    last_losses: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_state(cls, log_dir: Path, state: LoopState) -> TrainResult:
        """The result of a run whose loop ended in ``state``."""
        return cls(log_dir, state.last_checkpoint, state.next_epoch, state.step, state.pairs_seen, state.seed,
                   state.last_losses)  # fmt: skip


@dataclass
class RunSetup:
    """What :func:`open_run` found and built: the starting checkpoint, the data loader and the position."""

    log_dir: Path
    start: Path | None  # checkpoint loaded into the models, if any
    data: dict[str, Any]  # its raw contents (optimizer state etc.)
    resuming: bool
    loader: EpochLoader
    state: LoopState
    lock: int | None = None  # the run folder's lock (main process), see mraa.training.rundir.lock_run_dir


# ----------------------------------------------------------------------------------------- the loop
def fit(
    cfg: MRAAConfig,
    models: MRAAModels,
    dataset: Dataset,
    log_dir: str | os.PathLike,
    *,
    task: Task,
    options: RunOptions,
) -> TrainResult:
    """Train ``task`` on ``dataset``, writing checkpoints, the config and metrics to ``log_dir``.

    Nothing is written before the values and the run folder are checked, the starting checkpoint loaded
    and the data loader built.
    """
    log_dir = Path(log_dir)
    plan = check_start(cfg, log_dir, task=task, options=options)
    info = init_distributed(options.device)
    run: RunSetup | None = None
    failed_new_run = False
    try:
        set_deterministic(options.deterministic)
        amp = check_amp(info.device, options.amp)
        run = open_run(cfg, models, dataset, log_dir, info, task=task, options=options, plan=plan)
        models.to(info.device)
        rng = torch.Generator()  # the loss-side randomness, re-seeded every epoch
        model = maybe_sync_batchnorm(task.build(rng).to(info.device), cfg.train_params.use_sync_bn, info)
        optimizer, schedule = make_optimizer(cfg, task, task.trainable(model), run)
        ddp_model = wrap_ddp(model, info, find_unused_parameters=task.find_unused_parameters)
        if not _report_plan(task, run, info):  # already trained for num_epochs
            return TrainResult.from_state(log_dir, run.state)
        state = _train_epochs(
            cfg, models, ddp_model, optimizer, schedule, run, rng, amp,
            task=task, options=options, info=info, log_dir=log_dir,
        )  # fmt: skip
        return TrainResult.from_state(log_dir, state)
    except BaseException:
        # a new run that failed before its first checkpoint has nothing to resume: its config.yaml and
        # metrics must not block the next run (resumed runs and runs with a checkpoint keep everything)
        if run is not None and info.is_main and not options.resume and run.state.last_checkpoint is None:
            remove_failed_run(log_dir, task.mode)  # under the lock
            failed_new_run = True
        raise
    finally:
        if run is not None:
            unlock_run_dir(log_dir, run.lock)
        if failed_new_run and plan.new_folder:
            remove_empty_run_dir(log_dir)
        cleanup_distributed(info)


def _train_epochs(
    cfg: MRAAConfig, models: MRAAModels, ddp_model, optimizer, schedule, run: RunSetup, rng, amp,
    *, task: Task, options: RunOptions, info, log_dir: Path,
):  # fmt: skip
    """The epochs of :func:`fit`, with its checkpoint writer (thinned as configured) and metrics logger."""
    save = checkpoint_writer(cfg, models, optimizer, schedule, task=task, info=info, log_dir=log_dir)
    save = prune_after_save(save, task.params, resumed_from(run, task.mode))
    logger = TrainLogger(log_dir, enabled=info.is_main, mode=task.mode, tensorboard=options.tensorboard)
    logger.truncate_after(run.state.pairs_seen)
    try:
        return run_epochs(
            ddp_model,
            optimizer,
            schedule,
            run.loader,
            run.state,
            info=info,
            num_epochs=task.params.num_epochs,
            checkpoint_freq=task.params.checkpoint_freq,
            save=save,
            logger=logger,
            rng=rng,
            amp=amp,
            visualize=task.visualize if options.visualize else None,
            progress=options.progress,
            desc=run_tag(task.mode),
        )
    finally:
        logger.close()


@dataclass
class StartPlan:
    """How a run starts: the checkpoint to start from, whether to resume it, the previous run's files to clear."""

    start: Path | None
    resume: bool
    stale: list[Path]
    new_folder: bool = False  # the log folder did not exist before this run


def check_start(cfg: MRAAConfig, log_dir: Path, *, task: Task, options: RunOptions) -> StartPlan:
    """Checks made before anything is written: the values, the run folder and the starting checkpoint."""
    check_training_values(cfg, task.mode)
    if options.num_workers is not None and options.num_workers < 0:
        raise MRAAError(f"the number of data-loader workers must be >= 0, got {options.num_workers}")
    stale = check_run_dir(
        log_dir, (task.mode, *task.supersedes), resume=options.resume, overwrite=options.overwrite
    )
    start, resume = task.start(log_dir, options)
    if start is not None and Path(start).resolve() in {path.resolve() for path in stale}:
        raise MRAAError(
            f"the starting checkpoint {start} belongs to the run in {log_dir} that would be cleared"
        )
    return StartPlan(start, resume, stale, new_folder=not log_dir.exists())


def run_epochs(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: PairsLRSchedule,
    loader: EpochLoader,
    state: LoopState,
    *,
    info: DistInfo,
    num_epochs: int,
    checkpoint_freq: int,
    save: Callable[[int, LoopState], Path],
    logger: TrainLogger,
    rng: torch.Generator,
    amp: str | None = None,
    visualize: Callable[[dict[str, Tensor], dict], np.ndarray] | None = None,
    progress: bool = True,
    desc: str = "train",
) -> LoopState:
    """Train from ``state.next_epoch`` to ``num_epochs``; ``model(batch)`` returns ``(losses, outputs)``.

    ``save(epoch, state)`` is called on the main process every ``checkpoint_freq`` epochs and after the last.
    """
    for epoch in range(state.next_epoch, num_epochs):
        seed_everything(derive_seed(state.seed, epoch, info.rank, SEED_GLOBAL))
        rng.manual_seed(derive_seed(state.seed, epoch, info.rank, SEED_TRANSFORM))
        model.train()
        means = RunningMeans()
        batch = outputs = None
        bar = _progress_bar(loader, epoch, num_epochs, desc, enabled=progress and info.is_main)
        for raw in bar:
            schedule.update(state.pairs_seen)
            batch = _to_device(raw, info.device)
            values, outputs = train_step(
                model, optimizer, batch, info=info, amp=amp, where=(epoch, state.step)
            )
            state.step += 1
            state.pairs_seen += loader.batch_size
            means.add(values)
            state.last_losses = values
            lr = schedule.get_last_lr()[0]
            logger.log_step(
                {"epoch": epoch, "step": state.step, "pairs_seen": state.pairs_seen, "lr": lr, **values}
            )
            bar.set_postfix(loss=f"{values['loss']:.4g}", refresh=False)
        bar.close()
        state.next_epoch = epoch + 1
        logger.log_epoch(epoch, means.means(), state.pairs_seen, state.step)
        if visualize is not None and info.is_main and batch is not None:
            logger.save_image(f"{epoch:08d}-{desc}", visualize(batch, outputs), step=state.step)
        if (epoch + 1) % max(checkpoint_freq, 1) == 0 or epoch + 1 == num_epochs:
            if info.is_main:
                state.last_checkpoint = save(epoch, state)
                log.info("saved %s", state.last_checkpoint)
            barrier(info)
    return state


@computes  # fewer compute threads while other processes (or busy data workers) use the CPUs
def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: dict[str, Tensor],
    *,
    info: DistInfo,
    amp: str | None,
    where: tuple[int, int],
) -> tuple[dict[str, float], dict]:
    """One optimisation step on ``batch``: the loss values (averaged over processes) and the outputs."""
    with autocast(info.device, amp):
        losses, outputs = model(batch)
    loss = sum(value.float() for value in losses.values())
    values = _loss_values(losses, loss, info)
    if not all(math.isfinite(v) for v in values.values()):
        raise MRAAError(
            f"non-finite loss at epoch {where[0]} step {where[1]}: {values} "
            "(try a lower learning rate, or train without mixed precision)"
        )
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return values, outputs


# ------------------------------------------------------------------------------- start and saving
def open_run(
    cfg: MRAAConfig,
    models: MRAAModels,
    dataset: Dataset,
    log_dir: Path,
    info: DistInfo,
    *,
    task: Task,
    options: RunOptions,
    plan: StartPlan,
) -> RunSetup:
    """Common start of a training run: starting checkpoint, seed, loader, position, then the log folder.

    The folder is written to only once the checkpoint has loaded and the loader is built: the previous
    run's files (``plan.stale``) are deleted, temporary files of interrupted writes removed, the config saved.
    """
    start, resume = plan.start, plan.resume
    data: dict[str, Any] = {}
    resuming = False
    if start is not None:
        data = load_checkpoint(start, models, require=task.require)
        resuming = resume and f"epoch_{task.mode}" in data
        if resume and not resuming:
            raise MRAAError(
                f"cannot resume {task.mode} training from {start}: it is not a {task.mode} checkpoint"
            )
        log.info("%s from %s", "resuming" if resuming else "initial weights", start)
    saved = data.get(STATE_KEY) if resuming else None
    same_mode = isinstance(saved, dict) and saved.get("mode") == task.mode
    seed = choose_seed(options.seed, saved if same_mode else None, info)
    if task.params.num_repeats > 1:
        from mraa.data.frames_dataset import DatasetRepeater

        dataset = DatasetRepeater(dataset, task.params.num_repeats)
    workers = task.params.dataloader_workers if options.num_workers is None else options.num_workers
    pin_memory = info.device.type == "cuda"
    loader = EpochLoader(dataset, task.params.batch_size, workers, info, seed, pin_memory=pin_memory)
    state = state_from_checkpoint(data, task.mode, loader) if resuming else LoopState()
    state.seed = seed
    lock = None
    if info.is_main:
        log_dir.mkdir(parents=True, exist_ok=True)
        lock = lock_run_dir(log_dir)  # a second run in this folder stops here, before it changes anything
        try:
            clear_run(log_dir, plan.stale)
            for folder in (log_dir, log_dir / "train-vis"):
                for path in remove_stale_temps(folder):
                    log.info("removed %s, left by an interrupted write", path)
            write_run_config(cfg, log_dir, run_file_name("config", task.mode, ".yaml"))
        except BaseException:
            unlock_run_dir(log_dir, lock)
            raise
    return RunSetup(log_dir, start, data, resuming, loader, state, lock)


def make_optimizer(
    cfg: MRAAConfig, task: Task, parameters: Iterable[nn.Parameter], run: RunSetup
) -> tuple[torch.optim.Adam, PairsLRSchedule]:
    """Adam over ``parameters`` and its schedule; a resumed run restores the moments and the position."""
    betas = tuple(cfg.train_params.betas)
    optimizer = torch.optim.Adam(parameters, lr=task.params.lr, betas=betas)
    key = f"optimizer_{task.mode}"
    if run.resuming and key in run.data:
        optimizer.load_state_dict(run.data[key])
        for group in optimizer.param_groups:  # hyper-parameters come from the config
            group["betas"] = betas
    elif run.resuming:
        log.warning("%s has no %s: Adam restarts from zero moments", run.start, key)
    milestones = [m * run.loader.pairs_per_epoch for m in task.params.epoch_milestones]
    schedule = PairsLRSchedule(optimizer, task.params.lr, milestones)
    schedule.load_state_dict({"pairs_seen": run.state.pairs_seen})
    return optimizer, schedule


def checkpoint_writer(
    cfg: MRAAConfig,
    models: MRAAModels,
    optimizer: torch.optim.Optimizer,
    schedule: PairsLRSchedule,
    *,
    task: Task,
    info: DistInfo,
    log_dir: Path,
) -> Callable[[int, LoopState], Path]:
    """``save(epoch, state)``: ``log_dir/{epoch:08d}-cpk-<mode>.pth`` in the official layout plus our state."""

    def save(epoch: int, state: LoopState) -> Path:
        extra = {
            f"optimizer_{task.mode}": optimizer.state_dict(),
            f"epoch_{task.mode}": epoch,
            STATE_KEY: state.to_checkpoint(task.mode, schedule, info.world_size, task.params.batch_size),
        }
        return save_checkpoint(
            checkpoint_path(log_dir, epoch, task.mode), models, cfg, include=task.save, **extra
        )

    return save


def resumed_from(run: RunSetup, mode: str) -> tuple[int, Path] | None:
    """(epoch, path) of the checkpoint a resumed run continues, when mraa wrote it in this run's folder."""
    saved = run.data.get(STATE_KEY)
    if not (run.resuming and run.start is not None and isinstance(saved, dict) and saved.get("mode") == mode):
        return None
    if run.start.resolve().parent != run.log_dir.resolve():
        return None
    return int(run.data[f"epoch_{mode}"]), run.start


def state_from_checkpoint(data: dict[str, Any], mode: str, loader: EpochLoader) -> LoopState:
    """Where to continue from a checkpoint; official files (no mraa state) continue after ``epoch_<mode>``."""
    saved = data.get(STATE_KEY)
    if isinstance(saved, dict) and saved.get("mode") == mode:
        return LoopState(
            next_epoch=int(saved["next_epoch"]),
            step=int(saved["step"]),
            pairs_seen=int(saved["pairs_seen"]),
            seed=int(saved["seed"]),
        )
    epoch = data.get(f"epoch_{mode}")
    if epoch is None:
        raise MRAAError(f"the checkpoint has no epoch_{mode} entry: it was not written by {mode} training")
    next_epoch = int(epoch) + 1
    log.info("official checkpoint: continuing after epoch %d", int(epoch))
    return LoopState(next_epoch, next_epoch * len(loader), next_epoch * loader.pairs_per_epoch, seed=-1)


def write_run_config(cfg: MRAAConfig, log_dir: Path, name: str = "config.yaml") -> Path:
    """``log_dir/<name>`` with the resolved config (atomically)."""
    with atomic_path(log_dir / name) as tmp:
        save_config(cfg, tmp)
    return log_dir / name


def choose_seed(seed: int | None, saved: dict[str, Any] | None, info: DistInfo) -> int:
    """The run seed: explicit, else the one saved with a resumed run, else a fresh one (same on all ranks)."""
    saved_seed = saved.get("seed") if isinstance(saved, dict) else None
    if seed is None:
        seed = int(saved_seed) if saved_seed is not None and int(saved_seed) >= 0 else new_run_seed()
    elif saved_seed is not None and int(saved_seed) != seed:
        log.warning(
            "resuming with seed %d instead of the run's %d: the data order will differ from an "
            "uninterrupted run",
            seed,
            int(saved_seed),
        )
    return broadcast_int(int(seed), info)


def _report_plan(task: Task, run: RunSetup, info: DistInfo) -> bool:
    """Log what the run will do; False when it has already trained for ``num_epochs``."""
    done, wanted = run.state.next_epoch, task.params.num_epochs
    if done >= wanted:
        log.info("%s: already trained for %d epochs (num_epochs %d): nothing to do", task.mode, done, wanted)
        return False
    log.info(
        "%s training: %d epochs of %d steps (%d pairs/epoch, global batch %d, %d process(es)) on %s",
        task.mode,
        wanted - done,
        len(run.loader),
        run.loader.pairs_per_epoch,
        task.params.batch_size,
        info.world_size,
        info.device,
    )
    return True


def _progress_bar(loader: EpochLoader, epoch: int, num_epochs: int, desc: str, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(
        loader.epoch(epoch),
        total=len(loader),
        desc=f"{desc} epoch {epoch} ({epoch + 1}/{num_epochs})",  # the index of logs and checkpoint names
        disable=not enabled,
        leave=False,
        dynamic_ncols=True,
    )


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Tensor]:
    non_blocking = device.type == "cuda"
    return {k: v.to(device, non_blocking=non_blocking) for k, v in batch.items() if isinstance(v, Tensor)}


def _loss_values(losses: dict[str, Tensor], total: Tensor, info: DistInfo) -> dict[str, float]:
    """Loss values as floats, averaged over processes, with one device synchronisation."""
    stacked = torch.stack([value.detach().float() for value in losses.values()] + [total.detach().float()])
    stacked = all_reduce_mean(stacked, info)
    return dict(zip([*losses, "loss"], stacked.tolist()))
