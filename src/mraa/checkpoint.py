"""Checkpoints: the official ``.pth`` layout and our safetensors export.

Official file: ``torch.save`` of ``{"generator": sd, "region_predictor": sd, "bg_predictor": sd,
"avd_network": sd, "optimizer_reconstruction": ..., "epoch_reconstruction": int, ...}``.
Export: ``model.safetensors`` with flat keys ``generator.*``, ``region_predictor.*``, ...
plus ``config.yaml``.
The loader is chosen by the file suffix. Loading is always ``weights_only`` (no arbitrary unpickling).
"""

from __future__ import annotations

import logging
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import torch
from torch import nn

from mraa.atomic import atomic_path
from mraa.config import MRAAConfig, config_from_dict, load_config, save_config, to_dict
from mraa.errors import MRAAError
from mraa.models import MRAAModels, build_models

log = logging.getLogger(__name__)

MODEL_KEYS = ("generator", "region_predictor", "bg_predictor", "avd_network")
SAFETENSORS_NAME = "model.safetensors"
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "assets" / "default"


def default_checkpoint() -> Path:
    """The model shipped with mraa (a small model trained on synthetic articulated figures)."""
    path = DEFAULT_MODEL_DIR / SAFETENSORS_NAME
    if not path.is_file():
        raise MRAAError(
            f"no checkpoint given and the shipped default model is missing ({path}); "
            "pass a checkpoint (and its config)"
        )
    return path


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint file into ``{"generator": state_dict, ...}`` (plus any optimizer/epoch/config keys).

    ``path`` may be an official/training ``.pth``, a ``.safetensors`` file, or an export folder.
    """
    path = Path(path)
    if path.is_dir():
        path = path / SAFETENSORS_NAME
    if not path.is_file():
        raise MRAAError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        return _read_safetensors(path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "GLOBAL" not in str(exc):
            raise MRAAError(f"cannot read checkpoint {path} (corrupt or not a PyTorch file)") from exc
        first = str(exc).strip().splitlines()
        detail = next(
            (line for line in first if "GLOBAL" in line or "Unsupported" in line), first[0] if first else ""
        )
        raise MRAAError(
            f"refusing to load {path}: it needs unsafe unpickling ({detail.strip()}); only tensors, "
            "dicts and numbers are accepted"
        ) from exc
    except (RuntimeError, EOFError, ValueError, OSError) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise MRAAError(f"cannot read checkpoint {path} (corrupt or not a PyTorch file): {message}") from exc
    if not isinstance(data, dict) or not any(k in data for k in MODEL_KEYS):
        raise MRAAError(f"{path} is not an MRAA checkpoint (no generator/region_predictor state dicts)")
    return data


def _read_safetensors(path: Path) -> dict[str, Any]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        flat = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise MRAAError(f"cannot read {path}: {exc}") from exc
    data: dict[str, Any] = {}
    for key, value in flat.items():
        module, _, name = key.partition(".")
        if module not in MODEL_KEYS:
            raise MRAAError(f"{path}: unexpected key {key!r}")
        data.setdefault(module, {})[name] = value
    config_path = path.with_name("config.yaml")
    if config_path.is_file():
        data["config"] = config_path
    return data


def _suggest(module_name: str, missing: list[str], unexpected: list[str], mismatched: list[str]) -> str:
    keys = " ".join(missing + unexpected + mismatched)
    hints = []
    if "jacobian" in keys:
        hints.append("region_predictor_params.pca_based / estimate_affine differ from the checkpoint")
    if "regions.weight" in keys or "mask.weight" in keys or "decoder.9" in keys:
        hints.append("model_params.num_regions differs from the checkpoint")
    if module_name == "bg_predictor" and ("fc." in keys or "encoder." in keys):
        hints.append("bg_predictor_params.bg_type differs from the checkpoint")
    if "occlusion" in keys:
        hints.append("estimate_occlusion_map differs from the checkpoint")
    if "down.weight" in keys:
        hints.append("a scale_factor (1 vs < 1) differs from the checkpoint")
    if "bottleneck" in keys or "down_blocks" in keys or "up_blocks" in keys:
        hints.append("block counts or widths (num_blocks, block_expansion, max_features) differ")
    if "id_encoder" in keys or "pose_encoder" in keys:
        hints.append("avd_network_params (bottleneck sizes) or num_regions differ")
    return f" (likely cause: {'; '.join(dict.fromkeys(hints))})" if hints else ""


def load_state_dict_strict(
    module: nn.Module, state: dict, module_name: str, source: str = "checkpoint"
) -> None:
    """``load_state_dict(strict=True)`` with an actionable one-line error on mismatch."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")
        if unexpected:
            parts.append(f"unexpected {', '.join(unexpected[:3])}{' ...' if len(unexpected) > 3 else ''}")
        if mismatched:
            parts.append(f"shape mismatch (file vs config) {', '.join(mismatched[:2])}")
        hint = _suggest(module_name, missing, unexpected, mismatched)
        raise MRAAError(f"{source}: {module_name} does not match the config: {'; '.join(parts)}{hint}")
    module.load_state_dict(state, strict=True)


def load_checkpoint(
    path: str | os.PathLike, models: MRAAModels, require: tuple[str, ...] = ("generator", "region_predictor")
) -> dict[str, Any]:
    """Load weights into ``models`` (strict) and return the raw checkpoint dict.

    Networks absent from the file (e.g. ``avd_network`` before AVD training) keep their initial weights,
    unless listed in ``require``. Returns the checkpoint so callers can read optimizer/epoch entries.
    """
    data = read_checkpoint(path)
    load_weights(data, models, require, source=str(path))
    return data


def load_weights(
    data: dict[str, Any],
    models: MRAAModels,
    require: tuple[str, ...] = ("generator", "region_predictor"),
    source: str = "checkpoint",
) -> None:
    """Load the state dicts of a checkpoint already read (:func:`read_checkpoint`) into ``models`` (strict);
    ``source`` names the file in errors."""
    for name in require:
        if name not in data:
            raise MRAAError(f"{source}: checkpoint has no {name!r} weights")
    for name, module in models.items():
        if name in data:
            load_state_dict_strict(module, data[name], name, source=source)


@dataclass
class LoadedModel:
    """A checkpoint read once: its networks (float32, CPU, weights loaded), config and what it holds."""

    models: MRAAModels
    config: MRAAConfig
    path: Path
    data: dict[str, Any]  # the raw checkpoint (state dicts, optimizer/epoch entries, config)

    @property
    def has_trained_avd(self) -> bool:
        return has_trained_avd(self.data)

    @property
    def shipped(self) -> bool:
        """Whether this is the model shipped with mraa."""
        return self.path.resolve() == (DEFAULT_MODEL_DIR / SAFETENSORS_NAME).resolve()


def load_model(
    checkpoint: str | os.PathLike | None = None, config: str | os.PathLike | MRAAConfig | None = None
) -> LoadedModel:
    """Read ``checkpoint`` (default: the shipped model) once, build the networks from ``config`` (a YAML path,
    a config, or None for the one the checkpoint carries) and load the weights into them."""
    path = Path(checkpoint) if checkpoint is not None else default_checkpoint()
    data = read_checkpoint(path)
    if config is None:
        cfg = config_from_checkpoint(data)
        if cfg is None:
            raise MRAAError(f"{path} carries no config: pass the YAML config it was trained with")
    else:
        cfg = config if isinstance(config, MRAAConfig) else load_config(config)
    models = build_models(cfg.model_params)
    load_weights(data, models, source=str(path))
    return LoadedModel(models, cfg, path, data)


def has_trained_avd(checkpoint: dict[str, Any]) -> bool:
    """True when the checkpoint holds AVD weights (official files have them only after ``train_avd``)."""
    return bool(checkpoint.get("avd_network"))


def config_from_checkpoint(checkpoint: dict[str, Any]) -> MRAAConfig | None:
    """The config saved with a checkpoint (training runs and exports store one), if any."""
    cfg = checkpoint.get("config")
    if cfg is None:
        return None
    if isinstance(cfg, (str, os.PathLike)):
        return load_config(cfg)
    return config_from_dict(cfg)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file in the same folder, then rename (a full disk: :class:`MRAAError`)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        writer = _WriteErrors(handle)
        try:
            torch.save(obj, writer)
        except RuntimeError as exc:  # torch reports a failed write as "unexpected pos ..."
            if writer.error is None:
                raise
            raise writer.error from exc  # the OSError ("No space left on device"): atomic_path words it
    return Path(path)


class _WriteErrors:
    """A binary file wrapper that keeps the ``OSError`` a write raised (torch.save hides it)."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle, self.error = handle, None

    def write(self, data: bytes) -> int:
        try:
            return self.handle.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        self.handle.flush()


def save_checkpoint(
    path: str | os.PathLike,
    models: MRAAModels,
    cfg: MRAAConfig | None = None,
    include: tuple[str, ...] = MODEL_KEYS,
    **extra: Any,
) -> Path:
    """Write a checkpoint in the official key layout (plus ``config`` and any extra entries), atomically."""
    data: dict[str, Any] = {name: getattr(models, name).state_dict() for name in include}
    data.update(extra)
    if cfg is not None:
        data["config"] = to_dict(cfg)
    return atomic_torch_save(data, path)


def export_safetensors(
    models: MRAAModels, cfg: MRAAConfig, out_dir: str | os.PathLike, include: tuple[str, ...] = MODEL_KEYS
) -> Path:
    """Write ``out_dir/model.safetensors`` (flat ``module.key`` names) and ``out_dir/config.yaml``."""
    from safetensors.torch import save

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    flat = {
        f"{name}.{key}": value.detach().contiguous().cpu()
        for name in include
        for key, value in getattr(models, name).state_dict().items()
    }
    with atomic_path(out_dir / SAFETENSORS_NAME) as tmp:  # bytes written by Python: ENOSPC is an OSError
        tmp.write_bytes(save(flat, metadata={"format": "mraa", "modules": ",".join(include)}))
        with atomic_path(out_dir / "config.yaml") as tmp_config:
            save_config(cfg, tmp_config)
    return out_dir / SAFETENSORS_NAME
