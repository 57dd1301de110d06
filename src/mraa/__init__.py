"""mraa: Motion Representations for Articulated Animation (Siarohin et al., CVPR 2021).

Public API (imported lazily so that ``mraa --help`` stays fast)::

    from mraa import load_config, build_models, load_checkpoint, Animator
"""

from __future__ import annotations

import importlib
from typing import Any

from mraa import runtime as _runtime

# compute threads from the CPU budget, and the load-following governor allowed, unless the user chose
# (OMP_NUM_THREADS, MRAA_ADAPTIVE_THREADS=0: then OMP_WAIT_POLICY=PASSIVE); nothing is written once torch loaded
_runtime.prepare_environment()

__version__ = "0.1.0"

_LAZY = {
    "load_config": "mraa.config",
    "save_config": "mraa.config",
    "MRAAConfig": "mraa.config",
    "build_models": "mraa.models",
    "MRAAModels": "mraa.models",
    "load_checkpoint": "mraa.checkpoint",
    "save_checkpoint": "mraa.checkpoint",
    "Animator": "mraa.animate",
    "MRAAError": "mraa.errors",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mraa' has no attribute {name!r}")
