"""Mixed precision for training: the ``--amp`` option checked against the device, and its autocast context."""

from __future__ import annotations

import contextlib
import logging

import torch

from mraa.errors import MRAAError

log = logging.getLogger(__name__)


def autocast(device: torch.device, amp: str | None) -> contextlib.AbstractContextManager:
    """bf16 autocast when ``amp == "bf16"``, else a no-op context."""
    if amp in (None, "", "none", "fp32"):
        return contextlib.nullcontext()
    if amp != "bf16":
        raise MRAAError(f"unsupported mixed precision {amp!r} (use bf16)")
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def check_amp(device: torch.device, amp: str | None) -> str | None:
    """Validate the mixed-precision option; bf16 is meant for CUDA and only warns on CPU."""
    if amp in (None, "", "none", "fp32"):
        return None
    if amp != "bf16":
        raise MRAAError(f"unsupported mixed precision {amp!r} (use bf16)")
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise MRAAError("bf16 autocast requested but this GPU does not support bfloat16")
    if device.type == "cpu":
        from mraa.modules.packed import cpu_bf16_supported

        if not cpu_bf16_supported():
            raise MRAAError(
                "bf16 autocast needs a CPU with native bfloat16 (AVX-512 or AVX-NE-CONVERT); on this one bf16 "
                "convolutions run ~100x slower than fp32: train in fp32"
            )
    if device.type != "cuda":
        log.warning("bf16 autocast on %s: supported, but usually only faster on CUDA", device.type)
    return amp
