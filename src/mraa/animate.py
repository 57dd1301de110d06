"""Animation: re-pose a source image with the motion of a driving video.

``Animator`` encodes the source once (its regions, the generator's encoder features, the flow predictor's
downscaled source and source Gaussians) and then animates driving frames in batches, streaming, so memory
does not grow with the video's length.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import logging
import math
import os
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from mraa.config import AnimateParams, MRAAConfig
from mraa.devices import resolve_device
from mraa.errors import MRAAError
from mraa.geometry import RegionParams, convex_hull_area, inverse_2x2
from mraa.inputs import DrivingInput, ImageInput, count_frames, driving_tensors, source_tensor
from mraa.models import MRAAModels
from mraa.modules import AVDNetwork
from mraa.modules.fusion import fuse_conv_bn, inference_form
from mraa.modules.packed import cpu_bf16_supported, pack_for_cpu_inference, packing_available
from mraa.smoothing import SmoothingSpec, make_smoother

if TYPE_CHECKING:
    from mraa.pipeline import AnimateResult

log = logging.getLogger(__name__)

MODES = ("standard", "relative", "avd")
STILL_BACKGROUNDS = ("identity", "source")
# frames per batch when none is given: on CPU batch 1 was faster per frame than 2-8 (docs/benchmarks.md)
DEFAULT_BATCH_SIZES = {"cpu": 1, "cuda": 8, "mps": 4}
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_MODEL_DIR = PACKAGE_DIR / "assets" / "default"


def movement_scale(source_shift: Tensor, driving_initial_shift: Tensor) -> float:
    """sqrt(area of the convex hull of source centres / that of the first driving frame's), in float64."""
    source_area = convex_hull_area(source_shift.reshape(-1, 2).double().cpu())
    driving_area = convex_hull_area(driving_initial_shift.reshape(-1, 2).double().cpu())
    if driving_area <= 0 or source_area <= 0:
        return 1.0
    return math.sqrt(source_area) / math.sqrt(driving_area)


def animation_region_params(
    source_region_params: RegionParams,
    driving_region_params: RegionParams,
    driving_region_params_initial: RegionParams,
    mode: str = "relative",
    avd_network: AVDNetwork | None = None,
    scale: float | None = None,
) -> RegionParams:
    """Region params to render for each driving frame.

    - ``standard``: the driving regions as they are.
    - ``relative``: the driving motion relative to the first driving frame applied to the source regions,
      shifts scaled by :func:`movement_scale` (only ``shift`` and ``affine`` change; ``covar`` stays the
      driving one, as in the official implementation).
    - ``avd``: the AVD network's regions with the source's shape and the driving pose.

    Source params may have batch 1 and are broadcast over the driving batch.
    """
    if mode not in MODES:
        raise ValueError(f"unknown animation mode {mode!r}; choose from {', '.join(MODES)}")
    new_params = dict(driving_region_params)
    if mode == "standard":
        return new_params
    if mode == "relative":
        if scale is None:
            scale = movement_scale(
                source_region_params["shift"][0], driving_region_params_initial["shift"][0]
            )
        shift_diff = (driving_region_params["shift"] - driving_region_params_initial["shift"]) * scale
        new_params["shift"] = shift_diff + source_region_params["shift"]
        affine_diff = torch.matmul(
            driving_region_params["affine"], inverse_2x2(driving_region_params_initial["affine"])
        )
        new_params["affine"] = torch.matmul(affine_diff, source_region_params["affine"])
        return new_params
    if avd_network is None:
        raise ValueError("mode 'avd' needs an AVD network")
    b = driving_region_params["shift"].shape[0]
    source = {
        k: source_region_params[k].expand(b, *source_region_params[k].shape[1:]) for k in ("shift", "affine")
    }
    return avd_network(source, driving_region_params)


# ----------------------------------------------------------------------------- background control
def background_schedule(spec: str | np.ndarray | Tensor | None) -> BackgroundMotion:
    """Parse a background option: ``still``, ``left[:SPEED]``, ``right[:SPEED]``, ``rotate[:DEG]``,
    ``driving``, six numbers ``a,b,c,d,e,f`` (a 2x3 affine applied to every frame), a path to a ``.npy`` /
    ``.txt`` file holding T 2x3 (or 3x3) matrices (a per-frame schedule), or an array of those.

    Speeds are per frame: ``left:0.01`` moves the background by 0.5% of the width (0.01 in [-1, 1]
    units) each frame; ``rotate:0.5`` turns it counter-clockwise by half a degree per frame.
    """
    if spec is None:
        return BackgroundMotion("still")
    if isinstance(spec, (np.ndarray, Tensor)):
        return BackgroundMotion("schedule", matrices=_as_matrices(spec, "array"))
    text = str(spec).strip()
    name, _, arg = text.partition(":")
    if name in ("still", "none", "identity"):
        return BackgroundMotion("still")
    if name == "driving":
        return BackgroundMotion("driving")
    if name in ("left", "right", "rotate"):
        default = 0.5 if name == "rotate" else 0.01
        try:
            speed = float(arg) if arg else default
        except ValueError:
            raise MRAAError(f"background {text!r}: {arg!r} is not a number") from None
        if not math.isfinite(speed):
            raise MRAAError(f"background {text!r}: the speed must be a finite number, got {arg}")
        return BackgroundMotion(name, speed=speed)
    if "," in text:
        try:
            values = [float(v) for v in text.split(",")]
        except ValueError:
            raise MRAAError(f"background {text!r}: expected six comma-separated numbers") from None
        if len(values) != 6:
            raise MRAAError(f"background {text!r}: an affine needs 6 numbers (2x3), got {len(values)}")
        return BackgroundMotion("affine", matrices=_as_matrices(np.reshape(values, (1, 2, 3)), text))
    path = Path(text)
    if path.suffix in (".npy", ".txt", ".csv") and path.is_file():
        return BackgroundMotion("schedule", matrices=_as_matrices(_load_schedule(path), str(path)))
    if path.suffix in (".npy", ".txt", ".csv"):
        raise MRAAError(f"background schedule not found: {path}")
    raise MRAAError(
        f"unknown background {text!r}: use still, left[:SPEED], right[:SPEED], rotate[:DEG], driving, "
        "six numbers a,b,c,d,e,f, or a .npy/.txt file of per-frame 2x3 matrices"
    )


def _load_schedule(path: Path) -> np.ndarray:
    """The matrices of a ``.npy`` (no pickled objects) or text schedule file."""
    try:
        if path.suffix == ".npy":
            return np.load(path, allow_pickle=False)
        text = path.read_text(encoding="utf-8-sig")
        return np.loadtxt(io.StringIO(text), delimiter="," if "," in text else None, ndmin=2)
    except (ValueError, OSError, UnicodeDecodeError, EOFError) as exc:
        detail = "it holds Python objects" if "allow_pickle" in str(exc) else str(exc).splitlines()[0]
        raise MRAAError(f"background {path}: not a file of numbers ({detail})") from None


def _as_matrices(values: np.ndarray | Tensor, name: str) -> Tensor:
    """Background matrices (T, 3, 3) from 2x3 / 3x3 / flat 6 or 9 numbers; refuses non-finite or singular ones."""
    if isinstance(values, Tensor):
        values = values.detach().cpu().numpy()
    values = np.asarray(values)
    if values.dtype.kind not in "biuf":
        raise MRAAError(f"background {name}: expected numbers, got an array of {values.dtype} values")
    array = torch.from_numpy(values.astype(np.float64))
    if array.ndim == 2 and array.shape[1] in (6, 9):
        array = array.view(array.shape[0], -1, 3)
    if array.ndim == 2:
        array = array.unsqueeze(0)
    if array.ndim != 3 or array.shape[1:] not in ((2, 3), (3, 3)):
        raise MRAAError(f"background {name}: expected 2x3 or 3x3 matrices, got shape {tuple(array.shape)}")
    if array.shape[1] == 2:
        bottom = torch.tensor([0.0, 0.0, 1.0], dtype=array.dtype).expand(array.shape[0], 1, 3)
        array = torch.cat([array, bottom], dim=1)
    if array.shape[0] == 0:
        raise MRAAError(f"background {name}: no matrices")
    if not torch.isfinite(array).all():
        raise MRAAError(f"background {name}: the matrices hold non-finite values (nan or inf)")
    det = torch.linalg.det(array[:, :2, :2]).abs()  # (T,) area scale of each frame's map
    if (det < 1e-6).any():
        frame = int(torch.nonzero(det < 1e-6)[0])
        raise MRAAError(
            f"background {name}: the matrix of frame {frame} is singular (it collapses the image)"
        )
    return array.float()


@dataclass
class BackgroundMotion:
    """How the background moves during animation (maps output coordinates to source coordinates)."""

    kind: str = "still"
    speed: float = 0.0
    matrices: Tensor | None = None  # (T or 1, 3, 3)

    def params(self, frame_indices: Tensor, device: torch.device, dtype: torch.dtype) -> Tensor | None:
        """bg_params (B, 3, 3) for the given frame indices, or None for a still background."""
        t = frame_indices.to(device=device, dtype=dtype)
        b = t.shape[0]
        eye = torch.eye(3, device=device, dtype=dtype).repeat(b, 1, 1)
        if self.kind == "still":
            return None
        if self.kind in ("left", "right"):
            eye[:, 0, 2] = t * self.speed * (1 if self.kind == "left" else -1)
            return eye
        if self.kind == "rotate":
            angle = t * math.radians(self.speed)
            # the background turns counter-clockwise on screen: sample the source clockwise
            eye[:, 0, 0] = torch.cos(angle)
            eye[:, 0, 1] = -torch.sin(angle)
            eye[:, 1, 0] = torch.sin(angle)
            eye[:, 1, 1] = torch.cos(angle)
            return eye
        if self.kind in ("affine", "schedule"):
            matrices = self.matrices.to(device=device, dtype=dtype)
            index = frame_indices.clamp(max=matrices.shape[0] - 1).to(device)
            return matrices[index] if matrices.shape[0] > 1 else matrices.expand(b, 3, 3).clone()
        raise ValueError(f"background kind {self.kind!r} needs the driving frames")


# ----------------------------------------------------------------------------- inference helpers
@dataclass
class SourceState:
    """Everything about the source image that does not depend on the driving frame."""

    image: Tensor  # (1, C, H, W)
    region_params: RegionParams  # batch 1
    features: list[Tensor]  # generator encoder features, finest first
    small: Tensor | None  # source at the flow predictor's scale
    gaussians: Tensor | None  # (1, K, h, w) source Gaussians of the flow predictor
    bg_reference: Tensor | None = None  # (1, 3, 3) what a still background is, None for the identity


@dataclass
class AnimatedBatch:
    """One batch of results: ``prediction`` (B, C, H, W), the driving frames at the model's size and their
    (smoothed) regions (for visualisation), and the regions rendered."""

    prediction: Tensor
    driving_region_params: RegionParams
    region_params: RegionParams
    frame_indices: Tensor
    driving: Tensor | None = None  # (B, C, H, W) on the device


def background_params(
    bg_predictor: nn.Module, state: SourceState, background: BackgroundMotion, frames: Tensor, indices: Tensor
) -> Tensor | None:
    """bg_params (B, 3, 3) for a batch of driving frames (B, C, H, W), or None for the identity."""
    b = frames.shape[0]
    if background.kind == "driving":
        return bg_predictor(state.image.expand(b, -1, -1, -1), frames)
    bg = background.params(indices, frames.device, frames.dtype)
    if state.bg_reference is not None:  # motions are relative to the model's still background
        ref = state.bg_reference.to(frames.dtype)
        bg = ref.expand(b, 3, 3) if bg is None else ref @ bg
    return bg


def check_animator_options(
    device: torch.device, precision: str, compile: bool, still_background: str
) -> None:
    """Refuse a precision, compile or still-background setting this device cannot honour."""
    if precision not in ("fp32", "bf16", "fp16"):
        raise MRAAError(f"precision must be fp32, bf16 or fp16, got {precision!r}")
    if precision == "fp16" and device.type != "cuda":
        raise MRAAError("fp16 autocast needs CUDA; use bf16 or fp32 on this device")
    if precision == "bf16" and device.type == "cpu" and not cpu_bf16_supported():
        raise MRAAError(
            "bf16 needs a CPU with native bfloat16 (AVX-512 or AVX-NE-CONVERT); on this one bf16 convolutions "
            "run ~100x slower than fp32: use fp32"
        )
    if compile and device.type != "cuda":
        # measured on 2 CPU cores: a 2-minute compile, then 0.65x the speed of eager (docs/benchmarks.md)
        raise MRAAError("compile is CUDA-only: on CPU torch.compile was measured slower than eager mode")
    if still_background not in STILL_BACKGROUNDS:
        raise MRAAError(
            f"still background must be {' or '.join(STILL_BACKGROUNDS)}, got {still_background!r}"
        )


def fuse_models(models: MRAAModels) -> None:
    """The inference networks in their inference form (:func:`mraa.modules.fusion.inference_form`: BatchNorms
    folded, narrow output convolutions factored), in place; the background predictor's BatchNorms folded."""
    inference_form(models.region_predictor)
    inference_form(models.generator)
    if models.bg_predictor.fc is not None:
        fuse_conv_bn(models.bg_predictor)


def prepack_models(models: MRAAModels, precision: str) -> bool:
    """Packed CPU convolutions (:func:`mraa.modules.packed.pack_for_cpu_inference`) in the BN-folded networks:
    the generator (with its flow predictor) in bfloat16 for ``precision="bf16"``, everything else float32 (the
    region predictor runs outside the autocast in every precision). False (nothing changed) when this PyTorch
    build cannot pack."""
    if not packing_available():
        return False
    generator_dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    pack_for_cpu_inference(models.region_predictor, torch.float32)
    pack_for_cpu_inference(models.generator, generator_dtype)
    if models.bg_predictor.fc is not None:
        pack_for_cpu_inference(models.bg_predictor, torch.float32)
    return True


def attach_onnx_backend(animator: Animator, backend: str, onnx_dir, size: tuple[int, int] | None = None):
    """Export the animator's (fused) torch networks to ONNX at ``size`` (default: the config's frame size)
    unless ``onnx_dir`` holds them, and swap the region predictor and AVD for their onnxruntime sessions."""
    import tempfile

    from mraa.export.manifest import check_onnx_dir
    from mraa.export.onnx import GRAPHS, OnnxBackend, export_onnx, graph_digest

    if backend != "onnxruntime":
        raise MRAAError(f"backend must be torch or onnxruntime, got {backend!r}")
    if animator.device.type != "cpu":
        raise MRAAError("the onnxruntime backend runs on the CPU: use device cpu or the torch backend")
    torch_models = animator._torch_models
    size = tuple(size or animator.image_size)
    if onnx_dir is None:  # in the system's temporary folder, removed with the animator
        animator._onnx_tmp = tempfile.TemporaryDirectory(prefix="mraa-onnx-")
        onnx_dir = animator._onnx_tmp.name
        export_onnx(torch_models, size, onnx_dir)
    # a folder of another model's (or another size's) graphs is refused, never mixed in (mraa.export.manifest)
    elif not check_onnx_dir(onnx_dir, GRAPHS, graph_digest(torch_models), size):
        export_onnx(torch_models, size, onnx_dir)
    onnx = OnnxBackend(onnx_dir, pca_based=torch_models.region_predictor.pca_based)
    animator.models.region_predictor = onnx.region_predictor
    animator.models.avd_network = onnx.avd_network
    return onnx


# About 335 lines: construction, source encoding, rendering and the streaming loop share the fused networks and
# the cached source; the ONNX backend, option checks and background motion are module functions above.
class Animator:
    """Animate a source image with driving frames.

    Args:
        models: the MRAA networks (moved to ``device`` and put in eval mode).
        animate_params: the config's ``animate_params`` (default mode).
        batch_size: driving frames processed together; None: the device's default
            (:data:`DEFAULT_BATCH_SIZES`: 1 on CPU, where batching was measured slower per frame).
        has_trained_avd: whether the AVD network holds trained weights (default mode ``avd``).
        fuse: fold BatchNorms into convs (faster, same results within float rounding).
        precision: ``fp32`` (default, exact), ``bf16`` (CPU or CUDA) or ``fp16`` (CUDA): autocast of the
            generator and flow predictor, while region moments, the 2x2 inverses / SVD, coordinates and
            warps stay float32 (faster, but outputs differ beyond the parity tolerance; see
            docs/benchmarks.md for the measured PSNR). An outer ``torch.autocast`` works too (on the
            packed CPU path its convolutions stay float32: use ``precision="bf16"`` there).
        prepack: on CPU (with ``fuse``, the torch backend and no compile), run the convolutions with
            oneDNN-prepacked weights, fused activations and sub-pixel upsampling
            (:mod:`mraa.modules.packed`; same results within float rounding; measured in docs/benchmarks.md).
        compile: wrap the generator in ``torch.compile`` (CUDA only: on CPU it was measured slower; the
            first batches are slow while compiling).
        backend: ``torch`` (default) or ``onnxruntime`` (CPU; the networks exported to ONNX by
            :func:`mraa.export.onnx.export_onnx` into ``onnx_dir``, or a temporary folder, and run by
            onnxruntime; needs the ``onnx`` extra). An ``onnx_dir`` that already holds the graphs is reused
            when its manifest names these weights and frame size; other graphs are refused
            (:mod:`mraa.export.manifest`).
        still_background: ``identity`` (official) or ``source`` (the background predictor's output for the
            source and itself; other background motions are applied on top of it). Default: the config's
            ``animate_params.still_background``.
    """

    def __init__(
        self,
        models: MRAAModels,
        animate_params: AnimateParams | None = None,
        device: str | torch.device = "cpu",
        batch_size: int | None = None,
        has_trained_avd: bool = True,
        fuse: bool = True,
        config: MRAAConfig | None = None,
        precision: str = "fp32",
        compile: bool = False,
        still_background: str | None = None,
        backend: str = "torch",
        onnx_dir: str | os.PathLike | None = None,
        prepack: bool = True,
    ) -> None:
        self.device = torch.device(device)
        self.models = copy.deepcopy(models) if fuse else models
        self.models.to(self.device).eval()
        if fuse:
            fuse_models(self.models)
        self.animate_params = animate_params or AnimateParams()
        if batch_size is None:
            batch_size = DEFAULT_BATCH_SIZES.get(self.device.type, 1)
        if batch_size < 1:
            raise MRAAError(f"batch size must be at least 1, got {batch_size}")
        self.batch_size = batch_size
        self.has_trained_avd = has_trained_avd
        self.shipped_model = False  # set by from_checkpoint for the synthetic-figure model shipped with mraa
        self.config = config
        self.precision = precision
        self.still_background = still_background or self.animate_params.still_background
        check_animator_options(self.device, precision, compile, self.still_background)
        # NHWC is faster for oneDNN convolutions on CPU; results are the same up to rounding
        self.memory_format = torch.channels_last if self.device.type == "cpu" else torch.contiguous_format
        for _, module in self.models.items():
            module.to(memory_format=self.memory_format)
        self.prepacked = prepack and fuse and backend == "torch" and not compile and self.device.type == "cpu"
        self.prepacked = self.prepacked and prepack_models(self.models, precision)
        self._generator = torch.compile(self.models.generator) if compile else self.models.generator
        self._onnx = None
        if backend != "torch":
            if onnx_dir is not None and Path(onnx_dir).exists() and not Path(onnx_dir).is_dir():
                raise MRAAError(f"the ONNX folder {onnx_dir} is a file: give a folder (made when missing)")
            self._torch_models = dataclasses.replace(self.models)  # the torch networks, to re-export
            self._onnx = attach_onnx_backend(self, backend, onnx_dir)

    def _onnx_at(self, size: tuple[int, int]):
        """The onnxruntime backend for frames of ``size`` (H, W): graphs have a fixed frame size, so a
        source of another size than the exported one is exported again (into a temporary folder)."""
        if tuple(self._onnx.size) != tuple(size):
            log.info("exporting the ONNX graphs again for %dx%d frames", *size)
            self._onnx = attach_onnx_backend(self, "onnxruntime", None, size)
        return self._onnx

    # --------------------------------------------------------------- construction
    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: str | os.PathLike | None = None,
        config: str | os.PathLike | MRAAConfig | None = None,
        device: str | torch.device = "cpu",
        **kwargs,
    ) -> Animator:
        """Build from an official ``.pth``, a training checkpoint, or a safetensors export.

        ``config`` may be omitted when the checkpoint carries one (training runs, exports). With neither,
        the model shipped with mraa is used.
        """
        from mraa.checkpoint import config_from_checkpoint, has_trained_avd, load_checkpoint, read_checkpoint
        from mraa.config import load_config
        from mraa.models import build_models

        if checkpoint is None:
            checkpoint = default_checkpoint()
        shipped = Path(checkpoint).resolve() == (DEFAULT_MODEL_DIR / "model.safetensors").resolve()
        device = resolve_device(device)
        data = read_checkpoint(checkpoint)
        if config is None:
            cfg = config_from_checkpoint(data)
            if cfg is None:
                raise MRAAError(f"{checkpoint} carries no config: pass the YAML config it was trained with")
        elif isinstance(config, MRAAConfig):
            cfg = config
        else:
            cfg = load_config(config)
        models = build_models(cfg.model_params)
        load_checkpoint(checkpoint, models)
        animator = cls(
            models,
            cfg.animate_params,
            device=device,
            has_trained_avd=has_trained_avd(data),
            config=cfg,
            **kwargs,
        )
        animator.shipped_model = shipped
        return animator

    @property
    def model_size(self) -> tuple[int, int] | None:
        """(H, W) of the config's frame shape, or None without a config or when the config leaves
        ``frame_shape`` null (all official YAMLs: ted384's models run at 384): source tensors then keep
        their size, as in the official code, and other source forms are read at :attr:`image_size`."""
        if self.config is None or not self.config.dataset_params.frame_shape:
            return None
        return tuple(self.config.dataset_params.frame_shape[:2])

    @property
    def image_size(self) -> tuple[int, int]:
        """(H, W) the model works at (the config's frame shape)."""
        if self.config is None:
            return (256, 256)
        return tuple(self.config.dataset_params.resolved_frame_shape[:2])

    def default_mode(self) -> str:
        """``avd`` when the AVD network is trained (as the official demo), else ``relative``."""
        return "avd" if self.has_trained_avd else "relative"

    # --------------------------------------------------------------- core
    @torch.no_grad()
    def encode_source(self, source: ImageInput, crop: bool = False) -> SourceState:
        """Run everything that depends only on the source once. ``source``: a (1, C, H, W) / (C, H, W)
        tensor in [0, 1], a uint8 (H, W, 3) array, a PIL image or a path, resized to the model's size."""
        size = self.model_size
        if size is None and not isinstance(source, Tensor):  # a file or array: the config's default size
            size = self.image_size if self.config is not None else None
        source = source_tensor(source, size, crop)
        source = source.to(self.device).contiguous(memory_format=self.memory_format)
        if self._onnx is not None:
            self._onnx_at(source.shape[2:])
        params = self.models.region_predictor(source)
        params = {k: v for k, v in params.items() if k not in ("u", "d")}
        reference = None
        if self.still_background == "source" and self.models.bg_predictor.fc is not None:
            reference = self.models.bg_predictor(source, source)
        if self._onnx is not None:
            features, small = self._onnx.encode(source)
            return SourceState(source, params, features, small, None, reference)
        generator = self.models.generator
        flow = generator.pixelwise_flow_predictor
        small = gaussians = None
        if flow is not None:
            small = flow.downscale(source)
            gaussians = flow._gaussians(params, small.shape[2:])
        features = [f.float() for f in generator.encode(source)]  # float32: warped every frame
        return SourceState(source, params, features, small, gaussians, reference)

    @torch.no_grad()
    def region_params(self, frames: Tensor) -> RegionParams:
        """Region params of a batch of frames (B, C, H, W)."""
        params = self.models.region_predictor(
            frames.to(self.device).contiguous(memory_format=self.memory_format)
        )
        return {k: v for k, v in params.items() if k not in ("u", "d")}

    @torch.no_grad()
    def render(
        self, state: SourceState, region_params: RegionParams, bg_params: Tensor | None = None
    ) -> dict[str, Tensor]:
        """Generator output for target region params (B frames) using the cached source."""
        if self._onnx is not None:
            return {"prediction": self._onnx.render(state, region_params, bg_params)}
        b = region_params["shift"].shape[0]
        source_params = {k: v.expand(b, *v.shape[1:]) for k, v in state.region_params.items()}
        flow = self.models.generator.pixelwise_flow_predictor
        dtype = AUTOCAST_DTYPES.get(self.precision)
        # fp32 enters no autocast context, so an outer torch.autocast (if any) applies unchanged
        autocast = torch.autocast(self.device.type, dtype=dtype) if dtype is not None else nullcontext()
        with autocast:
            motion = None
            if flow is not None:
                motion = flow(
                    state.image,
                    region_params,
                    source_params,
                    bg_params=bg_params,
                    source_small=state.small,
                    source_gaussians=state.gaussians.expand(b, -1, -1, -1),
                )
            out = self._generator(
                state.image, region_params, source_params, source_features=state.features, motion=motion
            )
        return {k: v.float() for k, v in out.items()}

    @torch.no_grad()
    def driving_region_stream(
        self,
        driving: DrivingInput,
        size: tuple[int, int],
        smooth: str | SmoothingSpec | None = None,
        crop: bool = False,
    ) -> Iterator[tuple[Tensor, RegionParams]]:
        """Driving batches (B, C, H, W) at ``size`` on the device with their region params, smoothed.

        A look-ahead smoother (savgol) holds frames back until their params are ready (a delay buffer),
        so batches may come in other sizes than ``batch_size``; all frames come out, in order.
        """
        smoother = make_smoother(smooth)
        held: list[Tensor] = []  # frames waiting for their smoothed params
        for batch in iter_batches(driving_tensors(driving, size, crop), self.batch_size):
            batch = batch.to(self.device)
            params = self.region_params(batch)
            if smoother is None:
                yield batch, params
                continue
            held.extend(batch.unbind(0))
            ready = smoother.push(params)
            if ready is not None:
                n = ready["shift"].shape[0]
                yield torch.stack(held[:n]), ready
                del held[:n]
        rest = smoother.flush() if smoother is not None else None
        if rest is not None:
            yield torch.stack(held), rest

    @torch.no_grad()
    def animate_iter(
        self,
        source: ImageInput | SourceState,
        driving: DrivingInput,
        mode: str | None = None,
        background: str | BackgroundMotion | None = None,
        progress: bool = False,
        total: int | None = None,
        smooth: str | SmoothingSpec | None = None,
        crop: bool = False,
    ) -> Iterator[AnimatedBatch]:
        """Yield animated batches, consuming the driving frames lazily.

        Args:
            source: an image (tensor, uint8 array, PIL image or path; see :mod:`mraa.inputs`) or a
                :class:`SourceState` from :meth:`encode_source` (to reuse it across driving videos).
            driving: a tensor (T, C, H, W), an array (T, H, W, 3), a video path or folder of frames, or an
                iterable of frames / batches in any image form. Other sizes are resized (with ``crop``,
                centre-cropped to the model's aspect ratio first).
            mode, background: see :meth:`animate`.
            progress, total: show a progress bar (with ``total`` frames and an ETA when known).
            smooth: temporal smoothing of the driving regions (see :mod:`mraa.smoothing`).
        """
        mode = self.resolve_mode(mode)
        if not isinstance(background, BackgroundMotion):
            background = background_schedule(background)
        state = source if isinstance(source, SourceState) else self.encode_source(source, crop=crop)
        size = tuple(state.image.shape[2:])
        stream = self.driving_region_stream(driving, size, smooth, crop)
        initial: RegionParams | None = None
        scale, count = 1.0, 0
        with progress_bar(progress, total, f"animating ({mode})") as bar:
            for frames, driving_params in stream:
                if initial is None:
                    initial = {k: v[:1] for k, v in driving_params.items()}
                    scale = movement_scale(state.region_params["shift"][0], initial["shift"][0])
                params = animation_region_params(
                    state.region_params, driving_params, initial, mode, self.models.avd_network, scale=scale
                )
                indices = torch.arange(count, count + frames.shape[0])
                out = self.render(
                    state,
                    params,
                    background_params(self.models.bg_predictor, state, background, frames, indices),
                )
                count += frames.shape[0]
                bar.update(frames.shape[0])
                yield AnimatedBatch(out["prediction"], driving_params, params, indices, frames)
        if count == 0:
            raise MRAAError("the driving video has no frames")

    def resolve_mode(self, mode: str | None) -> str:
        """``mode``, or :meth:`default_mode` when None; an unknown mode raises MRAAError."""
        mode = mode or self.default_mode()
        if mode not in MODES:
            raise MRAAError(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
        return mode

    def animate(
        self,
        source: ImageInput | SourceState,
        driving: DrivingInput,
        mode: str | None = None,
        background: str | BackgroundMotion | None = None,
        progress: bool = False,
        smooth: str | SmoothingSpec | None = None,
        crop: bool = False,
    ) -> Tensor:
        """Animate and return all frames (T, C, H, W) in [0, 1] on the CPU. See :meth:`animate_iter` for
        streaming and :meth:`animate_file` for files.

        Args:
            source: (1, C, H, W) / (C, H, W) tensor in [0, 1], uint8 (H, W, 3) array, PIL image or path;
                resized to the model's size when needed.
            driving: (T, C, H, W) tensor in [0, 1], (T, H, W, 3) array, video path, or an iterable of frames.
            mode: ``standard``, ``relative`` or ``avd`` (default: :meth:`default_mode`).
            background: see :func:`background_schedule` (default: still).
            smooth: ``none``, ``ema:ALPHA``, ``one-euro[:MIN_CUTOFF,BETA]`` or ``savgol:WINDOW``.
            crop: centre-crop inputs to the model's aspect ratio before resizing.
        """
        total = count_frames(driving) if progress else None
        batches = self.animate_iter(
            source, driving, mode, background, progress=progress, total=total, smooth=smooth, crop=crop
        )
        return torch.cat([batch.prediction.cpu() for batch in batches])

    def animate_file(
        self,
        source: ImageInput | SourceState,
        driving: DrivingInput,
        output: str | os.PathLike,
        **kwargs,
    ) -> AnimateResult:
        """Animate files into a video file; see :func:`mraa.pipeline.animate_file` for the options."""
        from mraa.pipeline import animate_file

        return animate_file(self, source, driving, output, **kwargs)


@contextlib.contextmanager
def progress_bar(enabled: bool, total: int | None, desc: str) -> Iterator[Any]:
    """A tqdm frame bar (total and ETA when ``total`` is known), or a no-op when disabled."""
    if not enabled:
        yield _NoBar()
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=total, unit="frame", desc=desc)
    try:
        yield bar
    finally:
        bar.close()


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass


def as_batch(image: Tensor) -> Tensor:
    """(C, H, W) -> (1, C, H, W); batches pass through."""
    return image.unsqueeze(0) if image.ndim == 3 else image


def iter_batches(frames: Iterable[Tensor] | Tensor, batch_size: int) -> Iterator[Tensor]:
    """Regroup frames given as a tensor (T, C, H, W) or an iterable of frames / batches into batches
    of ``batch_size`` (the last may be smaller), consuming the iterable lazily."""
    if batch_size < 1:
        raise MRAAError(f"batch size must be at least 1, got {batch_size}")
    if isinstance(frames, Tensor):
        frames = as_batch(frames)
        for start in range(0, frames.shape[0], batch_size):
            yield frames[start : start + batch_size]
        return
    pending: list[Tensor] = []
    for item in frames:
        pending.extend(as_batch(item).unbind(0))
        while len(pending) >= batch_size:
            yield torch.stack(pending[:batch_size])
            pending = pending[batch_size:]
    if pending:
        yield torch.stack(pending)


def default_checkpoint() -> Path:
    """The model shipped with mraa (a small model trained on synthetic articulated figures)."""
    path = DEFAULT_MODEL_DIR / "model.safetensors"
    if not path.is_file():
        raise MRAAError(
            f"no checkpoint given and the shipped default model is missing ({path}); "
            "pass a checkpoint (and its config)"
        )
    return path
