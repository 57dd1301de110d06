"""ONNX export of the animation graph (run by :class:`mraa.inference.engines.OnnxEngine` and the web page).

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

The graph's PCA ``affine`` uses the closed-form eigenvectors with LAPACK's signs
(:func:`mraa.geometry.symmetric_eig_2x2`; the AVD sees the signs). The onnxruntime engine
(:class:`mraa.inference.engines.OnnxBackend`) still recomputes
``affine`` from ``covar`` with the LAPACK SVD, as the torch path and the official code do, so the two
backends agree where the closed form and LAPACK round differently (nearly equal eigenvalues).
The browser's graphs (:mod:`mraa.export.web`) use the graph's own ``affine``.
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
from mraa.geometry import covar_to_affine, heatmap_to_moments
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
