"""The training schedule: its values checked before a run writes anything, and the pairs-seen learning-rate decay."""

from __future__ import annotations

import logging
import math
from typing import Any

import torch

from mraa.errors import MRAAError

log = logging.getLogger(__name__)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_schedule(params: Any, section: str, betas: tuple[float, ...] | None = None) -> None:
    """Refuse schedule values that cannot train (``params``: ``TrainParams`` or ``TrainAVDParams``).

    Checked before a run writes anything: positive epochs, repeats, batch size and checkpoint frequency,
    workers and milestones >= 0, a finite learning rate >= 0, Adam betas in [0, 1), AVD weights >= 0.
    """
    problems = [
        f"{section}.{name} must be a positive integer, got {getattr(params, name)!r}"
        for name in ("num_epochs", "num_repeats", "batch_size", "checkpoint_freq", "checkpoint_keep_every")
        if not (_is_int(getattr(params, name)) and getattr(params, name) > 0)
    ]
    if not (_is_int(params.dataloader_workers) and params.dataloader_workers >= 0):
        problems.append(
            f"{section}.dataloader_workers must be an integer >= 0, got {params.dataloader_workers!r}"
        )
    if not all(_is_int(m) and m >= 0 for m in params.epoch_milestones):
        problems.append(
            f"{section}.epoch_milestones must be integers >= 0, got {list(params.epoch_milestones)}"
        )
    numbers = {"lr": params.lr}
    numbers.update(
        {
            n: getattr(params, n)
            for n in ("random_scale", "lambda_shift", "lambda_affine")
            if hasattr(params, n)
        }
    )
    for name, value in numbers.items():
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            problems.append(f"{section}.{name} must be a finite number >= 0, got {value!r}")
    if betas is not None and (
        len(betas) != 2 or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas)
    ):
        problems.append(f"train_params.betas must be two numbers in [0, 1), got {list(betas)}")
    if problems:
        raise MRAAError("; ".join(problems))


def check_training_values(cfg: Any, mode: str) -> None:
    """:func:`check_schedule` on the section of ``cfg`` (an ``MRAAConfig``) that ``mode`` trains with."""
    params = cfg.train_params if mode == "reconstruction" else getattr(cfg, f"train_{mode}_params")
    section = "train_params" if mode == "reconstruction" else f"train_{mode}_params"
    check_schedule(params, section, betas=cfg.train_params.betas)


class PairsLRSchedule:
    """Step learning-rate decay measured in training pairs seen (all processes together).

    The rate is ``base_lr * gamma ** n`` where ``n`` counts the milestones that ``pairs_seen`` has reached.
    With milestones ``epoch_milestones * pairs_per_epoch`` this equals the official per-epoch ``MultiStepLR``
    at epoch boundaries, and stays tied to the number of pairs when the batch size or world size changes.
    """

    def __init__(
        self, optimizer: torch.optim.Optimizer, base_lr: float, milestones: list[int], gamma: float = 0.1
    ) -> None:
        self.optimizer = optimizer
        self.base_lrs = [base_lr for _ in optimizer.param_groups]
        self.milestones = sorted(int(m) for m in milestones)
        self.gamma = gamma
        self.pairs_seen = 0
        self.update(0)

    def factor(self, pairs_seen: int) -> float:
        return self.gamma ** sum(pairs_seen >= m for m in self.milestones)

    def update(self, pairs_seen: int) -> None:
        """Set the optimizer's learning rates for a run that has seen ``pairs_seen`` pairs."""
        previous = self.factor(self.pairs_seen)
        self.pairs_seen = int(pairs_seen)
        factor = self.factor(self.pairs_seen)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * factor
        if factor != previous:
            log.info("learning rate x%g after %d pairs", factor, self.pairs_seen)

    def get_last_lr(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        return {
            "base_lrs": list(self.base_lrs),
            "milestones": list(self.milestones),
            "gamma": self.gamma,
            "pairs_seen": self.pairs_seen,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the pairs seen; the base rates and milestones come from the current config."""
        if list(state.get("milestones", self.milestones)) != self.milestones:
            log.info("lr milestones (pairs) changed from %s to %s", state.get("milestones"), self.milestones)
        self.pairs_seen = int(state["pairs_seen"])
        factor = self.factor(self.pairs_seen)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * factor
        if self.pairs_seen:
            log.info("learning rate x%g at %d pairs", factor, self.pairs_seen)
