"""Choosing and checking the torch device, for inference and training alike."""

from __future__ import annotations

import torch

from mraa.errors import MRAAError


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None``/"auto" -> cuda when available, else cpu; a named device (cpu, cuda, cuda:N, mps) is checked.

    Raises:
        MRAAError: the name is not a device, or the device is not available on this machine.
    """
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = str(device)
    try:
        dev = torch.device(name)
    except RuntimeError as err:
        raise MRAAError(f"unknown device {name!r} (use cpu, cuda, cuda:N or mps)") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise MRAAError(f"device {name} requested but CUDA is not available on this machine")
    if dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise MRAAError("device mps requested but MPS is not available on this machine")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise MRAAError(f"unsupported device {name!r} (use cpu, cuda or mps)")
    return dev
