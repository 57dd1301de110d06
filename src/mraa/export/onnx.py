"""ONNX export of the animation graph and an onnxruntime backend for :class:`mraa.animate.Animator`.

Four graphs, no custom operators (2D ``GridSample``, opset 18; the 2x2 inverse and eigendecomposition are
written in closed form, :func:`mraa.geometry.inverse_2x2` / :func:`mraa.geometry.symmetric_eig_2x2`):

- ``region_predictor.onnx``: ``image`` (B, C, H, W) -> ``shift``, ``covar``, ``affine``, ``heatmap``;
- ``source_encoder.onnx``: ``source`` (1, C, H, W) -> the generator's encoder features ``feature0..N`` and
  the flow predictor's downscaled ``source_small`` (run once per source);
- ``generator.onnx``: the cached source inputs plus ``source_shift/affine/covar`` (1, K, ...),
  ``driving_shift/affine/covar`` (1, K, ...) and ``bg_params`` (1, 3, 3) -> ``prediction`` (1, C, H, W): one
  frame per call (a batch axis would copy every cached feature map into the batch on each call, and on the
  CPU batch 1 is the faster size anyway);
- ``avd_network.onnx``: source and driving ``shift`` / ``affine`` -> the AVD's ``shift``, ``affine``,
  ``covar``.

The graph's PCA ``affine`` uses the closed-form eigenvectors, whose signs equal LAPACK's for most matrices
and are negated for the rest. ``A_S A_D^-1`` after ``revert_axis_swap`` does not change, but the AVD sees the
signs, so :class:`OnnxBackend` recomputes ``affine`` from ``covar`` with the LAPACK SVD (as the torch path
and the official code do) to stay within float rounding of the torch backend.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from mraa.atomic import lock_temp, release_temp, remove_stale_temps, temp_dir
from mraa.config import MRAAConfig, save_config
from mraa.errors import MRAAError
from mraa.export.manifest import MANIFEST_NAME, make_manifest, weights_digest
from mraa.geometry import RegionParams, covar_to_affine, heatmap_to_moments
from mraa.modules.fusion import inference_form, phase_up_blocks

log = logging.getLogger(__name__)

OPSET = 18  # Col2Im (the upsampling interleave, mraa.modules.fusion.PhaseUpBlock2d)
GRAPHS = ("region_predictor", "source_encoder", "generator", "avd_network")


class _RegionGraph(nn.Module):
    def __init__(self, region_predictor: nn.Module) -> None:
        super().__init__()
        self.net = region_predictor

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        net = self.net
        heatmap, features = net.heatmaps(image)
        shift, covar = heatmap_to_moments(heatmap)
        if net.jacobian is not None:
            b, k, h, w = heatmap.shape
            jacobian_map = net.jacobian(features).reshape(b, 1, 4, h, w)
            affine = (heatmap.unsqueeze(2) * jacobian_map).reshape(b, k, 4, -1).sum(-1).reshape(b, k, 2, 2)
            covar = torch.matmul(affine, affine.transpose(-1, -2))
        else:
            affine = covar_to_affine(covar, closed_form=True)[0]
        return shift, covar, affine, heatmap


class _EncoderGraph(nn.Module):
    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.net = generator

    def forward(self, source: Tensor) -> tuple[Tensor, ...]:
        flow = self.net.pixelwise_flow_predictor
        small = flow.downscale(source) if flow is not None else source
        return (*self.net.encode(source), small)


class _GeneratorGraph(nn.Module):
    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.net = generator

    def forward(self, source: Tensor, source_small: Tensor, *inputs: Tensor) -> Tensor:
        *features, ss, sa, sc, ds, da, dc, bg = inputs
        b = ds.shape[0]
        source_params = {"shift": ss.expand(b, -1, -1), "affine": sa.expand(b, -1, -1, -1)}
        source_params["covar"] = sc.expand(b, -1, -1, -1)
        driving = {"shift": ds, "affine": da, "covar": dc}
        flow = self.net.pixelwise_flow_predictor
        motion = None
        if flow is not None:
            motion = flow(source, driving, source_params, bg_params=bg, source_small=source_small)
        out = self.net(source, driving, source_params, source_features=list(features), motion=motion)
        return out["prediction"]


class _AVDGraph(nn.Module):
    def __init__(self, avd: nn.Module) -> None:
        super().__init__()
        self.net = avd

    def forward(self, source_shift, source_affine, driving_shift, driving_affine):
        out = self.net(
            {"shift": source_shift, "affine": source_affine},
            {"shift": driving_shift, "affine": driving_affine},
        )
        return out["shift"], out["affine"], out["covar"]


def _export(module: nn.Module, args: tuple, path: Path, inputs: list[str], outputs: list[str], dynamic):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and deprecation warnings
        torch.onnx.export(
            module.eval(), args, str(path), input_names=inputs, output_names=outputs,
            dynamic_axes=dynamic, opset_version=OPSET, dynamo=False, do_constant_folding=True,
        )  # fmt: skip


def _export_form(module: nn.Module) -> nn.Module:
    """A CPU copy of ``module`` in its inference form (:func:`mraa.modules.fusion.inference_form`: BNs folded,
    narrow output convs factored) whose upsampling blocks are four phase convolutions
    (:func:`mraa.modules.fusion.phase_up_blocks`; in onnxruntime faster than stride-2 transposed convolutions
    or resize + conv: docs/benchmarks.md, "onnxruntime")."""
    return phase_up_blocks(inference_form(copy.deepcopy(module).cpu().eval()))


def graph_forms(models) -> dict[str, nn.Module]:
    """CPU copies of the exported networks in their export form (the caller's networks keep theirs)."""
    return {
        "generator": _export_form(models.generator),
        "region_predictor": _export_form(models.region_predictor),
        "avd_network": copy.deepcopy(models.avd_network).cpu().eval(),
    }


def graph_digest(models) -> str:
    """The weights digest an ONNX manifest records for ``models`` (see :mod:`mraa.export.manifest`)."""
    return weights_digest(graph_forms(models))


def export_onnx(
    models,
    size: tuple[int, int],
    folder: str | os.PathLike,
    config: MRAAConfig | None = None,
    checkpoint: str | os.PathLike | None = None,
) -> Path:
    """Write the four graphs for ``models`` (an :class:`mraa.models.MRAAModels`, fused or not, float32,
    any device; exported on the CPU) at frame ``size`` (H, W) into ``folder``, with their manifest
    (:mod:`mraa.export.manifest`; ``checkpoint``'s SHA-256 recorded when given) and ``config.yaml`` when
    ``config`` is given; returns the folder.

    The files are written into a marked temporary folder inside ``folder`` (removed on failure, or by the
    next export when the process was killed) and moved into place once all are written; a full disk is an
    :class:`MRAAError` naming it.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(folder, "export")  # what a killed export left
        scratch = temp_dir(folder, "export")
    except OSError as exc:
        raise MRAAError(f"cannot write the ONNX graphs to {folder}: {exc.strerror or exc}") from exc
    lock = lock_temp(scratch)
    try:
        forms = graph_forms(models)
        _write_graphs(forms, size, scratch)
        manifest = make_manifest(weights_digest(forms), size, checkpoint)
        (scratch / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        names = [f"{g}.onnx" for g in GRAPHS]
        if config is not None:
            save_config(config, scratch / "config.yaml")
            names.append("config.yaml")
        (folder / MANIFEST_NAME).unlink(missing_ok=True)  # graphs without a manifest are never reused
        for name in [*names, MANIFEST_NAME]:
            os.replace(scratch / name, folder / name)
    except OSError as exc:  # a full disk
        raise MRAAError(f"cannot write the ONNX graphs to {folder}: {exc.strerror or exc}") from exc
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        release_temp(lock)
    return folder


def _write_graphs(forms: dict[str, nn.Module], size: tuple[int, int], folder: Path) -> None:
    gen, rp, avd = forms["generator"], forms["region_predictor"], forms["avd_network"]
    channels = gen.num_channels
    image = torch.rand(2, channels, *size)
    source = image[:1].contiguous()
    batch = {0: "batch"}
    with torch.no_grad():
        _export(_RegionGraph(rp), (image,), folder / "region_predictor.onnx", ["image"],
                ["shift", "covar", "affine", "heatmap"], dict.fromkeys(("image", "shift", "covar", "affine", "heatmap"), batch))  # fmt: skip
        encoder_out = _EncoderGraph(gen)(source)
        names = [f"feature{i}" for i in range(len(encoder_out) - 1)] + ["source_small"]
        _export(_EncoderGraph(gen), (source,), folder / "source_encoder.onnx", ["source"], names, None)
        shift, covar, affine, _ = _RegionGraph(rp)(image)
        if rp.jacobian is None:  # LAPACK signs, as the backend feeds the generator and the AVD
            affine = covar_to_affine(covar)[0]
        bg = torch.eye(3)[None]
        params = (shift[:1], affine[:1], covar[:1], shift[1:], affine[1:], covar[1:], bg)
        param_names = ["source_shift", "source_affine", "source_covar"]
        param_names += ["driving_shift", "driving_affine", "driving_covar", "bg_params"]
        _export(_GeneratorGraph(gen), (source, encoder_out[-1], *encoder_out[:-1], *params),
                folder / "generator.onnx", ["source", "source_small", *names[:-1], *param_names], ["prediction"],
                None)  # fmt: skip
        avd_in = ["source_shift", "source_affine", "driving_shift", "driving_affine"]
        _export(_AVDGraph(avd), (shift, affine, shift.flip(0), affine.flip(0)), folder / "avd_network.onnx",
                avd_in, ["shift", "affine", "covar"], dict.fromkeys([*avd_in, "shift", "affine", "covar"], batch))  # fmt: skip


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
        if self.pca_based:  # LAPACK signs, as the torch path (see the module docstring)
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
    """The four onnxruntime sessions of a folder written by :func:`export_onnx`."""

    def __init__(self, folder: str | os.PathLike, pca_based: bool, threads: int | None = None) -> None:
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

    def render(self, state, region_params: RegionParams, bg_params: Tensor | None) -> Tensor:
        """``prediction`` (B, C, H, W) for the cached source ``state`` (a SourceState), one frame per call
        of the batch-1 generator graph."""
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
