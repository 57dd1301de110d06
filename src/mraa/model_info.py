"""What a checkpoint holds, read from its state dicts alone (``mraa info``): regions, background motion
type, whether the AVD network is trained, parameter counts, the matching config and the file's sha256."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mraa.checkpoint import (
    MODEL_KEYS,
    SAFETENSORS_NAME,
    config_from_checkpoint,
    has_trained_avd,
    read_checkpoint,
)
from mraa.config import MRAAConfig, load_config
from mraa.errors import MRAAError

BG_TYPES = {2: "shift", 6: "affine", 8: "perspective"}  # bg_predictor.fc outputs -> bg_type
BUFFER_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")


@dataclass
class CheckpointInfo:
    """A summary of one checkpoint file."""

    path: Path
    sha256: str
    num_regions: int | None
    bg_type: str
    avd_trained: bool
    parameters: dict[str, int]
    epochs: dict[str, int] = field(default_factory=dict)
    stored_config: bool = False
    matching_configs: list[str] = field(default_factory=list)
    config_matches: bool | None = None  # the --config given, checked against the weights

    def as_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["path"] = str(self.path)
        return data


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _is_buffer(key: str) -> bool:
    return key.endswith(BUFFER_SUFFIXES) or key == "down.weight" or key.endswith(".down.weight")


def count_parameters(state: dict[str, Any]) -> int:
    """Learnable parameters in a state dict (BatchNorm statistics and anti-aliasing kernels left out)."""
    return int(sum(v.numel() for k, v in state.items() if not _is_buffer(k) and hasattr(v, "numel")))


def shapes(state: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state.items() if hasattr(v, "shape")}


def config_shapes(cfg: MRAAConfig) -> dict[str, dict[str, tuple[int, ...]]]:
    """State-dict shapes of the networks a config builds (on the meta device: no memory, no time)."""
    import torch

    from mraa.models import build_models

    with torch.device("meta"):
        models = build_models(cfg.model_params)
    return {name: shapes(module.state_dict()) for name, module in models.items()}


def matches(data: dict[str, Any], cfg: MRAAConfig) -> bool:
    """True when every network in the checkpoint has exactly the keys and shapes the config builds."""
    expected = config_shapes(cfg)
    return all(shapes(data[name]) == expected[name] for name in MODEL_KEYS if data.get(name))


def default_config_dirs() -> list[Path]:
    """Where ``configs/*.yaml`` may be: ./configs and the source checkout's configs folder."""
    here = Path(__file__).resolve().parents[2] / "configs"
    return list(dict.fromkeys(p for p in (Path("configs").resolve(), here) if p.is_dir()))


def read_info(
    path: str | os.PathLike, config: str | os.PathLike | None = None, config_dirs: list[Path] | None = None
) -> CheckpointInfo:
    """Summarise a checkpoint; ``config`` is checked against it, and ``config_dirs`` searched for matches."""
    path = Path(path)
    data = read_checkpoint(path)
    file = path / SAFETENSORS_NAME if path.is_dir() else path
    region = data.get("region_predictor") or {}
    weight = region.get("regions.weight")
    bg_fc = (data.get("bg_predictor") or {}).get("fc.weight")
    info = CheckpointInfo(
        path=path,
        sha256=sha256_of(file),
        num_regions=int(weight.shape[0]) if weight is not None else None,
        bg_type="zero" if bg_fc is None else BG_TYPES.get(int(bg_fc.shape[0]), f"{bg_fc.shape[0]} outputs"),
        avd_trained=has_trained_avd(data),
        parameters={name: count_parameters(data[name]) for name in MODEL_KEYS if data.get(name)},
        epochs={k: int(v) for k, v in data.items() if k.startswith("epoch_") and isinstance(v, int)},
        stored_config=data.get("config") is not None,
    )
    if config is not None:
        info.config_matches = matches(data, load_config(config))
    elif info.stored_config:
        cfg = config_from_checkpoint(data)
        info.config_matches = matches(data, cfg) if cfg is not None else None
    for folder in default_config_dirs() if config_dirs is None else config_dirs:
        for candidate in sorted(Path(folder).glob("*.yaml")):
            try:
                if matches(data, load_config(candidate)):
                    info.matching_configs.append(str(candidate))
            except (MRAAError, KeyError, ValueError):
                continue
    return info
