"""Typed configuration mirroring the official MRAA YAML schema.

Field names equal the YAML keys, so the official config files load unchanged. Keys that only some official
files contain get the defaults the official constructors use (``region_predictor_params.pad`` is 3 when
absent, as in vox256). Unknown keys warn (or raise with ``strict=True``); values of the wrong type raise an
:class:`~mraa.errors.MRAAError` naming the key.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mraa.errors import MRAAError

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- dataset_params
@dataclass
class FlipParams:
    horizontal_flip: bool = False
    time_flip: bool = False


@dataclass
class JitterParams:
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    hue: float = 0.0


@dataclass
class CropParams:
    size: tuple[int, int] = (256, 256)


@dataclass
class ResizeParams:
    ratio: tuple[float, float] = (0.9, 1.1)


@dataclass
class AugmentationParams:
    flip_param: FlipParams | None = None
    jitter_param: JitterParams | None = None
    crop_param: CropParams | None = None
    resize_param: ResizeParams | None = None


@dataclass
class DatasetParams:
    root_dir: str = "data"
    frame_shape: tuple[int, int, int] | None = None  # None means (256, 256, 3), as in the official loader
    id_sampling: bool = False
    pairs_list: str | None = None
    augmentation_params: AugmentationParams = field(default_factory=AugmentationParams)

    @property
    def resolved_frame_shape(self) -> tuple[int, int, int]:
        return tuple(self.frame_shape) if self.frame_shape else (256, 256, 3)


# ----------------------------------------------------------------------------- model_params
@dataclass
class RegionPredictorParams:
    temperature: float = 0.1
    block_expansion: int = 32
    max_features: int = 1024
    scale_factor: float = 0.25
    num_blocks: int = 5
    pca_based: bool = True
    pad: int = 3  # the official constructor default: vox256 omits the key and relies on it
    fast_svd: bool = False


@dataclass
class BGPredictorParams:
    block_expansion: int = 32
    max_features: int = 1024
    num_blocks: int = 5
    bg_type: str = "affine"


@dataclass
class PixelwiseFlowPredictorParams:
    block_expansion: int = 64
    max_features: int = 1024
    num_blocks: int = 5
    scale_factor: float = 0.25
    use_deformed_source: bool = True
    use_covar_heatmap: bool = True
    estimate_occlusion_map: bool = True
    region_var: float = 0.01


@dataclass
class GeneratorParams:
    block_expansion: int = 64
    max_features: int = 512
    num_down_blocks: int = 2
    num_bottleneck_blocks: int = 6
    skips: bool = True
    pixelwise_flow_predictor_params: PixelwiseFlowPredictorParams | None = field(
        default_factory=PixelwiseFlowPredictorParams
    )


@dataclass
class AVDNetworkParams:
    id_bottle_size: int = 64
    pose_bottle_size: int = 64


@dataclass
class ModelParams:
    num_regions: int = 10
    num_channels: int = 3
    estimate_affine: bool = True
    revert_axis_swap: bool = True
    bg_predictor_params: BGPredictorParams = field(default_factory=BGPredictorParams)
    region_predictor_params: RegionPredictorParams = field(default_factory=RegionPredictorParams)
    generator_params: GeneratorParams = field(default_factory=GeneratorParams)
    avd_network_params: AVDNetworkParams = field(default_factory=AVDNetworkParams)


# ----------------------------------------------------------------------------- training
@dataclass
class TransformParams:
    sigma_affine: float = 0.05
    sigma_tps: float = 0.005
    points_tps: int = 5


@dataclass
class LossWeights:
    perceptual: tuple[float, ...] = (10.0, 10.0, 10.0, 10.0, 10.0)
    equivariance_shift: float = 10.0
    equivariance_affine: float = 10.0
    l1: float = 0.0  # mraa extension: multi-scale L1 reconstruction loss (for training without VGG weights)
    separation: float = 0.0  # mraa extension: keeps region centres apart (see mraa.losses.separation_loss)
    separation_sigma: float = 0.1  # mraa extension: its length scale, in normalised [-1, 1] coordinates


# checkpoint_keep_every (mraa extension, train_params and train_avd_params): when checkpoints are written more
# often than every N epochs (checkpoint_freq < N), a run keeps its newest checkpoint and those of every N-th
# epoch (epoch index + 1 divisible by N) and deletes the others it wrote once a newer one is saved. 1 keeps
# all; the official checkpoint_freq of 50 keeps all at the default N of 10.


@dataclass
class TrainParams:
    num_epochs: int = 100
    num_repeats: int = 1
    epoch_milestones: tuple[int, ...] = (60, 90)
    lr: float = 2.0e-4
    betas: tuple[float, float] = (0.5, 0.999)  # mraa extension; the official code hard-codes these
    batch_size: int = 14
    use_sync_bn: bool = False
    dataloader_workers: int = 6
    checkpoint_freq: int = 50
    checkpoint_keep_every: int = 10  # mraa extension, see the note above TrainParams
    scales: tuple[float, ...] = (1.0, 0.5, 0.25, 0.125)
    transform_params: TransformParams = field(default_factory=TransformParams)
    loss_weights: LossWeights = field(default_factory=LossWeights)


@dataclass
class TrainAVDParams:
    num_epochs: int = 30
    num_repeats: int = 1
    batch_size: int = 256
    dataloader_workers: int = 12
    checkpoint_freq: int = 50
    checkpoint_keep_every: int = 10  # mraa extension, see the note above TrainParams
    epoch_milestones: tuple[int, ...] = (20, 25)
    lr: float = 1.0e-3
    random_scale: float = 0.25
    lambda_shift: float = 1.0
    lambda_affine: float = 1.0


@dataclass
class ReconstructionParams:
    num_videos: int = 1000
    format: str = ".mp4"


@dataclass
class AnimateParams:
    num_pairs: int = 50
    format: str = ".mp4"
    mode: str = "avd"
    # mraa extension: what a still background is. ``identity`` (the official behaviour) or ``source``: the
    # background predictor's estimate between the source and itself, for models whose predictor learned a
    # constant bias in training (e.g. a slight zoom that keeps the zero-padded border out of the frame)
    still_background: str = "identity"
    # mraa extension: how the model's training data was framed, for ``mraa animate --crop auto`` (face,
    # upper_body, full_body or none; see docs/framing.md)
    framing: str = "none"


@dataclass
class VisualizerParams:
    kp_size: int = 5
    draw_border: bool = True
    colormap: str = "gist_rainbow"
    region_bg_color: tuple[float, float, float] = (1.0, 1.0, 1.0)


@dataclass
class MRAAConfig:
    """The whole configuration file."""

    dataset_params: DatasetParams = field(default_factory=DatasetParams)
    model_params: ModelParams = field(default_factory=ModelParams)
    train_params: TrainParams = field(default_factory=TrainParams)
    train_avd_params: TrainAVDParams = field(default_factory=TrainAVDParams)
    reconstruction_params: ReconstructionParams = field(default_factory=ReconstructionParams)
    animate_params: AnimateParams = field(default_factory=AnimateParams)
    visualizer_params: VisualizerParams = field(default_factory=VisualizerParams)


# ----------------------------------------------------------------------------- conversion
def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, key: str, strict: bool) -> Any:
    """Convert a YAML value to the annotated type ``tp`` or raise an MRAAError naming ``key``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(value, option, key, strict)
            except MRAAError as exc:
                errors.append(str(exc))
        raise MRAAError(errors[0] if errors else f"config key {key!r}: invalid value {value!r}")
    if dataclasses.is_dataclass(tp):
        if value is None:
            return tp()
        if not isinstance(value, dict):
            raise MRAAError(f"config key {key!r}: expected a mapping, got {type(value).__name__} {value!r}")
        return from_dict(tp, value, strict=strict, prefix=key)
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise MRAAError(f"config key {key!r}: expected a list, got {type(value).__name__} {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{key}[{i}]", strict) for i, v in enumerate(value))
        if len(value) != len(args):
            raise MRAAError(f"config key {key!r}: expected {len(args)} values, got {len(value)}: {value!r}")
        return tuple(_convert(v, a, f"{key}[{i}]", strict) for i, (v, a) in enumerate(zip(value, args)))
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise MRAAError(f"config key {key!r}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise MRAAError(f"config key {key!r}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "2e-4" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise MRAAError(f"config key {key!r}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise MRAAError(f"config key {key!r}: expected a string, got {value!r}")
    raise MRAAError(f"config key {key!r}: unsupported type {_type_name(tp)}")


def from_dict(cls: type, data: dict, strict: bool = False, prefix: str = "") -> Any:
    """Build dataclass ``cls`` from a nested dict, converting nested dicts and lists recursively."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if key not in names:
            message = f"unknown config key {path!r}"
            if strict:
                raise MRAAError(message)
            log.warning("%s (ignored)", message)
            continue
        kwargs[key] = _convert(value, hints[key], path, strict)
    return cls(**kwargs)


def to_dict(obj: Any) -> dict:
    """A plain nested dict (tuples become lists) suitable for YAML or checkpoints."""

    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value

    return clean(dataclasses.asdict(obj))


def config_from_dict(data: dict, strict: bool = False) -> MRAAConfig:
    """Validate a dict in the official schema into an :class:`MRAAConfig`."""
    if not isinstance(data, dict):
        raise MRAAError("a config must be a YAML mapping at the top level")
    cfg = from_dict(MRAAConfig, data, strict=strict)
    validate(cfg)
    return cfg


def load_config(path: str | os.PathLike, strict: bool = False) -> MRAAConfig:
    """Read a YAML config in the official MRAA schema (``yaml.safe_load``)."""
    path = Path(path)
    if not path.is_file():
        raise MRAAError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise MRAAError(f"cannot parse config {path}: {str(exc).splitlines()[0]}") from None
    if data is None:  # an empty file (or only comments) would silently mean "all defaults"
        raise MRAAError(f"config {path} is empty")
    try:
        return config_from_dict(data, strict=strict)
    except MRAAError as exc:
        raise MRAAError(f"{path}: {exc}") from None


def save_config(cfg: MRAAConfig, path: str | os.PathLike) -> Path:
    """Write the resolved config as YAML."""
    path = Path(path)
    path.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    return path


def apply_overrides(cfg: MRAAConfig, overrides: list[str], strict: bool = True) -> MRAAConfig:
    """Return a copy of ``cfg`` with ``"a.b.c=value"`` overrides applied (values parsed as YAML)."""
    data = to_dict(cfg)
    for item in overrides:
        if "=" not in item:
            raise MRAAError(f"override {item!r} must look like section.key=value")
        dotted, raw = item.split("=", 1)
        keys = dotted.strip().split(".")
        node = data
        for key in keys[:-1]:
            if not isinstance(node.get(key), dict):
                node[key] = {} if node.get(key) is None else node[key]
                if not isinstance(node[key], dict):
                    raise MRAAError(f"override {item!r}: {key!r} is not a section")
            node = node[key]
        node[keys[-1]] = yaml.safe_load(raw)
    return config_from_dict(data, strict=strict)


def validate(cfg: MRAAConfig) -> None:
    """Check cross-key constraints that would otherwise fail deep inside a network."""
    mp = cfg.model_params
    if mp.num_regions < 1:
        raise MRAAError("model_params.num_regions must be at least 1")
    if mp.bg_predictor_params.bg_type not in ("zero", "shift", "affine", "perspective"):
        raise MRAAError(
            f"model_params.bg_predictor_params.bg_type must be zero, shift, affine or perspective, "
            f"got {mp.bg_predictor_params.bg_type!r}"
        )
    for name in ("region_predictor_params", "generator_params"):
        params = getattr(mp, name)
        if name == "generator_params":
            params = params.pixelwise_flow_predictor_params
            if params is None:
                continue
        if not 0 < params.scale_factor <= 1:
            raise MRAAError(f"model_params.{name}.scale_factor must be in (0, 1], got {params.scale_factor}")
    if cfg.animate_params.mode not in ("standard", "relative", "avd"):
        raise MRAAError(
            f"animate_params.mode must be standard, relative or avd, got {cfg.animate_params.mode!r}"
        )
    if cfg.animate_params.framing not in ("face", "upper_body", "full_body", "none"):
        raise MRAAError(
            "animate_params.framing must be face, upper_body, full_body or none, "
            f"got {cfg.animate_params.framing!r}"
        )
    weights = cfg.train_params.loss_weights
    if weights.separation < 0 or weights.separation_sigma <= 0:
        raise MRAAError(
            "train_params.loss_weights.separation must be >= 0 and separation_sigma > 0, "
            f"got {weights.separation} and {weights.separation_sigma}"
        )
    if cfg.animate_params.still_background not in ("identity", "source"):
        raise MRAAError(
            "animate_params.still_background must be identity or source, "
            f"got {cfg.animate_params.still_background!r}"
        )
    _validate_sizes_and_schedules(cfg)


MAX_FRAME_SIDE = 4096  # a frame_shape beyond this would need tens of GB per batch: refused, not attempted


def _validate_sizes_and_schedules(cfg: MRAAConfig) -> None:
    """frame_shape within bounds, pyramid scales given, learning-rate milestones in increasing order."""
    shape = cfg.dataset_params.frame_shape
    if shape is not None and not (
        len(shape) == 3 and all(8 <= side <= MAX_FRAME_SIDE for side in shape[:2]) and shape[2] in (1, 3)
    ):
        raise MRAAError(
            f"dataset_params.frame_shape must be [H, W, 3] with H and W between 8 and {MAX_FRAME_SIDE}, "
            f"got {list(shape)}"
        )
    scales = cfg.train_params.scales
    if not scales or not all(0 < scale <= 1 for scale in scales):
        raise MRAAError(f"train_params.scales must list at least one scale in (0, 1], got {list(scales)}")
    for section in ("train_params", "train_avd_params"):
        milestones = list(getattr(cfg, section).epoch_milestones)
        if any(m < 0 for m in milestones) or milestones != sorted(milestones):
            raise MRAAError(
                f"{section}.epoch_milestones must be non-negative epochs in increasing order, got {milestones}"
            )
