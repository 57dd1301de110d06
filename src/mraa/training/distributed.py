"""Multi-process training helpers for ``torchrun`` (DistributedDataParallel).

``torchrun`` sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; :func:`init_distributed` reads them, starts
the process group (NCCL on CUDA, gloo on CPU) and picks this process's device. Without those variables
everything runs in one process and the helpers are no-ops.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn

from mraa.devices import resolve_device
from mraa.errors import MRAAError

log = logging.getLogger(__name__)


@dataclass
class DistInfo:
    """Where this process stands in a (possibly single-process) run."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    initialized_here: bool = False  # this module started the process group (and should end it)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str | torch.device | None = None) -> DistInfo:
    """Start the process group when launched by ``torchrun`` (``WORLD_SIZE`` > 1), else a single process.

    On CUDA each process uses ``cuda:LOCAL_RANK``; on CPU the gloo backend is used.
    """
    base = resolve_device(device)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo(device=base)
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if base.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise MRAAError(
                f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} CUDA devices are visible"
            )
        base = torch.device("cuda", local_rank)
        torch.cuda.set_device(base)
        backend = "nccl"
    else:
        backend = "gloo"
    initialized_here = False
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
        initialized_here = True
    log.info(
        "distributed: rank %d/%d (local %d), backend %s, device %s",
        rank,
        world_size,
        local_rank,
        dist.get_backend(),
        base,
    )
    return DistInfo(rank, local_rank, world_size, base, initialized_here)


def cleanup_distributed(info: DistInfo) -> None:
    """End the process group if :func:`init_distributed` started it."""
    if info.initialized_here and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def all_reduce_mean(values: Tensor, info: DistInfo) -> Tensor:
    """Average a tensor over all processes (for logging); unchanged in a single process."""
    if not info.distributed:
        return values
    on_device = dist.get_backend() == "nccl"
    reduced = values.to(info.device if on_device else "cpu", dtype=torch.float64).clone()
    dist.all_reduce(reduced)
    return reduced / info.world_size


def broadcast_int(value: int, info: DistInfo) -> int:
    """Rank 0's value on every process."""
    if not info.distributed:
        return value
    device = info.device if dist.get_backend() == "nccl" else torch.device("cpu")
    tensor = torch.tensor([value], dtype=torch.int64, device=device)
    dist.broadcast(tensor, src=0)
    return int(tensor.item())


def maybe_sync_batchnorm(module: nn.Module, use_sync_bn: bool, info: DistInfo) -> nn.Module:
    """Convert BatchNorm layers to SyncBatchNorm (in place for children) when asked and supported.

    Parameter and buffer names are unchanged, so checkpoints keep the official keys. SyncBatchNorm needs
    CUDA; on CPU the option is ignored with a warning.
    """
    if not use_sync_bn or not info.distributed:
        return module
    if info.device.type != "cuda":
        log.warning("use_sync_bn ignored: SyncBatchNorm needs CUDA devices (running on %s)", info.device)
        return module
    return nn.SyncBatchNorm.convert_sync_batchnorm(module)


def wrap_ddp(module: nn.Module, info: DistInfo, find_unused_parameters: bool = False) -> nn.Module:
    """Wrap in DistributedDataParallel when running distributed (rank 0's weights are broadcast)."""
    if not info.distributed:
        return module
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [info.device.index] if info.device.type == "cuda" else None
    return DistributedDataParallel(
        module, device_ids=device_ids, find_unused_parameters=find_unused_parameters
    )
