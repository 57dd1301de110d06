"""Compute engines: what runs the networks for the :class:`~mraa.inference.animator.Animator`.

An engine encodes a source once (:class:`SourceState`), predicts the regions of driving frames and renders
frames for target regions; it also runs the background predictor and the AVD network. Two engines:

- :class:`TorchEngine`: the PyTorch networks with BatchNorms folded, prepacked oneDNN convolutions on the CPU,
  an autocast precision and ``torch.compile`` (CUDA);
- :class:`OnnxEngine`: the graphs of :func:`mraa.export.onnx.export_onnx` run by onnxruntime on the CPU (the
  background predictor stays a torch network).

:func:`make_engine` builds either from the ``Animator``'s options.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
import tempfile
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
from torch import Tensor, nn

from mraa.errors import MRAAError
from mraa.geometry import RegionParams, covar_to_affine
from mraa.governor import computes
from mraa.models import MRAAModels
from mraa.modules.fusion import fuse_conv_bn, inference_form
from mraa.modules.packed import cpu_bf16_supported, pack_for_cpu_inference, packing_available

log = logging.getLogger(__name__)

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
BACKENDS = ("torch", "onnxruntime")


@dataclass
class SourceState:
    """Everything about the source image that does not depend on the driving frame."""

    image: Tensor  # (1, C, H, W)
    region_params: RegionParams  # batch 1
    features: list[Tensor]  # generator encoder features, finest first
    small: Tensor | None  # source at the flow predictor's scale
    gaussians: Tensor | None  # (1, K, h, w) source Gaussians of the flow predictor
    bg_reference: Tensor | None = None  # (1, 3, 3) what a still background is, None for the identity


class Engine(Protocol):
    """What the Animator needs from a compute engine (all methods run under ``torch.no_grad``)."""

    device: torch.device
    models: MRAAModels  # the networks as this engine runs them
    precision: str
    prepacked: bool

    def encode_source(self, source: Tensor) -> SourceState:
        """The cached source (without ``bg_reference``) for a source (1, C, H, W) in [0, 1]."""

    def regions(self, frames: Tensor) -> RegionParams:
        """Region params (``shift``, ``covar``, ``affine``, ``heatmap``) of frames (B, C, H, W)."""

    def render(self, state: SourceState, region_params: RegionParams, bg_params: Tensor | None) -> dict:
        """Generator outputs (``prediction`` (B, C, H, W), float32) for B target region params."""

    def background(self, source: Tensor, driving: Tensor) -> Tensor | None:
        """bg_params (B, 3, 3) mapping the driving frames' background to the source's; None without a
        background predictor."""

    def avd(self, source: RegionParams, driving: RegionParams) -> RegionParams:
        """The AVD network: regions with the source's shape and the driving pose."""

    @property
    def moves_background(self) -> bool:
        """Whether the background predictor has weights (``bg_type`` not ``zero``)."""


def check_engine_options(device: torch.device, precision: str, compile: bool) -> None:
    """Refuse a precision or compile setting this device cannot honour."""
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


def _without_moments(params: RegionParams) -> RegionParams:
    return {k: v for k, v in params.items() if k not in ("u", "d")}


class TorchEngine:
    """The PyTorch networks, in eval mode on ``device``.

    Args:
        models: the MRAA networks (copied when ``fuse``, else used and moved as they are).
        fuse: fold BatchNorms into convolutions (same results within float rounding).
        precision: ``fp32``, ``bf16`` (CPU with native bfloat16, or CUDA) or ``fp16`` (CUDA): autocast of the
            generator and flow predictor.
        compile: ``torch.compile`` the generator (CUDA only).
        prepack: on CPU (with ``fuse`` and no compile), oneDNN-prepacked convolutions (:mod:`mraa.modules.packed`).
    """

    def __init__(
        self,
        models: MRAAModels,
        device: str | torch.device = "cpu",
        fuse: bool = True,
        precision: str = "fp32",
        compile: bool = False,
        prepack: bool = True,
    ) -> None:
        self.device = torch.device(device)
        self.models = copy.deepcopy(models) if fuse else models
        self.models.to(self.device).eval()
        if fuse:
            fuse_models(self.models)
        check_engine_options(self.device, precision, compile)
        self.precision = precision
        # NHWC is faster for oneDNN convolutions on CPU; results are the same up to rounding
        self.memory_format = torch.channels_last if self.device.type == "cpu" else torch.contiguous_format
        for _, module in self.models.items():
            module.to(memory_format=self.memory_format)
        self.prepacked = prepack and fuse and not compile and self.device.type == "cpu"
        self.prepacked = self.prepacked and prepack_models(self.models, precision)
        self._generator = torch.compile(self.models.generator) if compile else self.models.generator

    def _on_device(self, frames: Tensor) -> Tensor:
        return frames.to(self.device).contiguous(memory_format=self.memory_format)

    @torch.no_grad()
    @computes  # fewer compute threads while other processes use the CPUs (mraa.governor)
    def encode_source(self, source: Tensor) -> SourceState:
        source = self._on_device(source)
        params = self.regions(source)
        generator = self.models.generator
        flow = generator.pixelwise_flow_predictor
        small = gaussians = None
        if flow is not None:
            small = flow.downscale(source)
            gaussians = flow._gaussians(params, small.shape[2:])
        features = [f.float() for f in generator.encode(source)]  # float32: warped every frame
        return SourceState(source, params, features, small, gaussians)

    @torch.no_grad()
    @computes
    def regions(self, frames: Tensor) -> RegionParams:
        return _without_moments(self.models.region_predictor(self._on_device(frames)))

    @torch.no_grad()
    @computes
    def render(self, state: SourceState, region_params: RegionParams, bg_params: Tensor | None) -> dict:
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
    @computes
    def background(self, source: Tensor, driving: Tensor) -> Tensor | None:
        return self.models.bg_predictor(source, driving)

    @property
    def moves_background(self) -> bool:
        """Whether the background predictor has weights (``bg_type`` not ``zero``)."""
        return self.models.bg_predictor.fc is not None

    @torch.no_grad()
    @computes
    def avd(self, source: RegionParams, driving: RegionParams) -> RegionParams:
        return self.models.avd_network(source, driving)


class OnnxEngine:
    """The ONNX graphs of a :class:`TorchEngine`'s networks, run by onnxruntime on the CPU.

    The graphs are exported at ``size`` (H, W) into ``onnx_dir`` unless it already holds them for these
    weights and size (:mod:`mraa.export.manifest`; other graphs are refused, never mixed in); without a
    folder, into a temporary one removed with the engine. A source of another size is exported again.
    """

    def __init__(self, torch_engine: TorchEngine, size: tuple[int, int], onnx_dir=None) -> None:
        if torch_engine.device.type != "cpu":
            raise MRAAError("the onnxruntime backend runs on the CPU: use device cpu or the torch backend")
        if onnx_dir is not None and Path(onnx_dir).exists() and not Path(onnx_dir).is_dir():
            raise MRAAError(f"the ONNX folder {onnx_dir} is a file: give a folder (made when missing)")
        self.torch = torch_engine  # the torch networks: the background predictor, and what is exported
        self.device, self.precision, self.prepacked = torch_engine.device, torch_engine.precision, False
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._load(tuple(size), onnx_dir)

    def _load(self, size: tuple[int, int], onnx_dir) -> None:
        from mraa.export.manifest import check_onnx_dir
        from mraa.export.onnx import GRAPHS, export_onnx, graph_digest

        torch_models = self.torch.models
        if onnx_dir is None:  # in the system's temporary folder, removed with the engine
            self._tmp = tempfile.TemporaryDirectory(prefix="mraa-onnx-")
            onnx_dir = self._tmp.name
            export_onnx(torch_models, size, onnx_dir)
        elif not check_onnx_dir(onnx_dir, GRAPHS, graph_digest(torch_models), size):
            export_onnx(torch_models, size, onnx_dir)
        self.backend = OnnxBackend(onnx_dir, pca_based=torch_models.region_predictor.pca_based)
        # the networks as this engine runs them (segmentation reads the region predictor from here)
        self.models = dataclasses.replace(
            torch_models, region_predictor=self.backend.region_predictor, avd_network=self.backend.avd_network
        )

    @torch.no_grad()
    def encode_source(self, source: Tensor) -> SourceState:
        source = self.torch._on_device(source)
        if tuple(self.backend.size) != tuple(source.shape[2:]):  # graphs have a fixed frame size
            log.info("exporting the ONNX graphs again for %dx%d frames", *source.shape[2:])
            self._load(tuple(source.shape[2:]), None)
        params = self.regions(source)
        features, small = self.backend.encode(source)
        return SourceState(source, params, features, small, None)

    @torch.no_grad()
    def regions(self, frames: Tensor) -> RegionParams:
        return _without_moments(self.backend.region_predictor(self.torch._on_device(frames)))

    @torch.no_grad()
    def render(self, state: SourceState, region_params: RegionParams, bg_params: Tensor | None) -> dict:
        return {"prediction": self.backend.render(state, region_params, bg_params)}

    def background(self, source: Tensor, driving: Tensor) -> Tensor | None:
        return self.torch.background(source, driving)

    @property
    def moves_background(self) -> bool:
        return self.torch.moves_background

    @torch.no_grad()
    def avd(self, source: RegionParams, driving: RegionParams) -> RegionParams:
        return self.backend.avd_network(source, driving)


def make_engine(
    models: MRAAModels,
    device: str | torch.device = "cpu",
    fuse: bool = True,
    precision: str = "fp32",
    compile: bool = False,
    prepack: bool = True,
    backend: str = "torch",
    onnx_dir: str | os.PathLike | None = None,
    size: tuple[int, int] = (256, 256),
) -> TorchEngine | OnnxEngine:
    """The engine for the Animator's options: ``backend`` ``torch`` or ``onnxruntime`` (graphs at ``size``)."""
    if backend not in BACKENDS:
        raise MRAAError(f"backend must be torch or onnxruntime, got {backend!r}")
    torch_engine = TorchEngine(
        models,
        device,
        fuse=fuse,
        precision=precision,
        compile=compile,
        prepack=prepack and backend == "torch",
    )
    return torch_engine if backend == "torch" else OnnxEngine(torch_engine, size, onnx_dir)


# ----------------------------------------------------------------------------- onnxruntime sessions
def _session(path: Path, threads: int | None):
    try:
        import onnxruntime as ort
    except ImportError as err:
        raise MRAAError("the onnxruntime backend needs onnxruntime: pip install 'mraa[onnx]'") from err
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # the backend's sessions and torch take turns on the same cores: a pool that spins after its run steals
    # them from the next session (vox256 avd, 2 cores: onnxruntime / torch fp32 time 1.04-1.29 -> 0.86-1.13; docs/benchmarks.md)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _input_names(session) -> frozenset[str]:
    """The inputs a session takes (the exporter drops inputs a config leaves unused)."""
    return frozenset(i.name for i in session.get_inputs())


def _np(t: Tensor):
    return t.detach().float().cpu().contiguous().numpy()


class OnnxRegionPredictor(nn.Module):
    """Drop-in for :class:`mraa.modules.RegionPredictor` at inference, running ``region_predictor.onnx``."""

    def __init__(self, session, pca_based: bool) -> None:
        super().__init__()
        self.session, self.pca_based = session, pca_based

    def forward(self, image: Tensor) -> RegionParams:
        shift, covar, affine, heatmap = self.session.run(None, {"image": _np(image)})
        params = {"shift": shift, "covar": covar, "affine": affine, "heatmap": heatmap}
        params = {k: torch.from_numpy(v).to(image.device) for k, v in params.items()}
        if self.pca_based:  # LAPACK signs, as the torch path (see mraa.export.onnx's docstring)
            params["affine"] = covar_to_affine(params["covar"])[0]
        return params


class OnnxAVD(nn.Module):
    """Drop-in for :class:`mraa.modules.AVDNetwork` at inference, running ``avd_network.onnx``."""

    def __init__(self, session) -> None:
        super().__init__()
        self.session = session
        self.inputs = _input_names(session)

    def forward(self, x_id: RegionParams, x_pose: RegionParams) -> RegionParams:
        feed = {"source_shift": x_id["shift"], "source_affine": x_id["affine"]}
        feed.update(driving_shift=x_pose["shift"], driving_affine=x_pose["affine"])
        outs = self.session.run(None, {k: _np(v) for k, v in feed.items() if k in self.inputs})
        device = x_pose["shift"].device
        return {k: torch.from_numpy(v).to(device) for k, v in zip(("shift", "affine", "covar"), outs)}


class OnnxBackend:
    """The four onnxruntime sessions of a folder written by :func:`mraa.export.onnx.export_onnx`."""

    def __init__(self, folder: str | os.PathLike, pca_based: bool, threads: int | None = None) -> None:
        from mraa.export.onnx import GRAPHS

        folder = Path(folder)
        missing = [g for g in GRAPHS if not (folder / f"{g}.onnx").is_file()]
        if missing:
            raise MRAAError(f"{folder}: missing {', '.join(m + '.onnx' for m in missing)}")
        self.sessions = {g: _session(folder / f"{g}.onnx", threads) for g in GRAPHS}
        self.region_predictor = OnnxRegionPredictor(self.sessions["region_predictor"], pca_based)
        self.avd_network = OnnxAVD(self.sessions["avd_network"])
        self.feature_names = [i.name for i in self.sessions["source_encoder"].get_outputs()][:-1]
        self.generator_inputs = _input_names(self.sessions["generator"])
        self.size = tuple(self.sessions["region_predictor"].get_inputs()[0].shape[2:])  # (H, W) of the graphs

    def encode(self, source: Tensor) -> tuple[list[Tensor], Tensor]:
        """Encoder features (finest first) and the downscaled source, for one source (1, C, H, W)."""
        outs = [
            torch.from_numpy(o) for o in self.sessions["source_encoder"].run(None, {"source": _np(source)})
        ]
        return outs[:-1], outs[-1]

    def render(self, state: SourceState, region_params: RegionParams, bg_params: Tensor | None) -> Tensor:
        """``prediction`` (B, C, H, W) for the cached source ``state``, one frame per call of the batch-1
        generator graph."""
        b = region_params["shift"].shape[0]
        if bg_params is None:
            bg_params = torch.eye(3).expand(b, 3, 3)
        src = state.region_params
        fixed = {"source": state.image, "source_small": state.small}
        fixed.update(zip(self.feature_names, state.features))
        fixed.update(source_shift=src["shift"], source_affine=src["affine"], source_covar=src["covar"])
        fixed = {k: _np(v) for k, v in fixed.items() if k in self.generator_inputs}
        frames = []
        for i in range(b):
            feed = {"driving_shift": region_params["shift"][i : i + 1], "bg_params": bg_params[i : i + 1]}
            feed.update(driving_affine=region_params["affine"][i : i + 1])
            feed.update(driving_covar=region_params["covar"][i : i + 1])
            feed = {k: _np(v) for k, v in feed.items() if k in self.generator_inputs}
            (prediction,) = self.sessions["generator"].run(None, {**fixed, **feed})
            frames.append(torch.from_numpy(prediction))
        return torch.cat(frames) if b > 1 else frames[0]
