"""The browser export: the ONNX graphs of :mod:`mraa.export.onnx`, two more graphs, and a static page that
runs them with onnxruntime-web (docs/web.md).

The graph contract (every per-frame computation is a graph; the page's JavaScript only moves frames and
tensors between graphs). ``S`` = source, ``D`` = driving, ``K`` regions, frames (1, C, H, W) in [0, 1]:

- ``source_encoder.onnx``: ``source`` -> ``feature0..N``, ``source_small`` (once per source);
- ``background.onnx``: ``source`` -> ``bg_params`` (1, 3, 3), the still background the generator gets for
  every frame (the identity, or the background predictor's ``bg(S, S)`` when the config's
  ``animate_params.still_background`` is ``source``; once per source);
- ``region_predictor.onnx``: ``image`` -> ``shift`` (1, K, 2), ``covar``, ``affine`` (1, K, 2, 2; PCA signs as
  LAPACK's), ``heatmap`` (for the source once, then for every driving frame);
- ``relative.onnx``: ``source_shift``, ``source_affine``, ``initial_shift``, ``initial_affine`` (the first
  driving frame's), ``driving_shift``, ``driving_affine``, ``driving_covar`` -> ``shift``, ``affine``,
  ``covar``: :func:`mraa.inference.motion.animation_region_params` in mode ``relative``, with the movement scale (the
  ratio of the regions' convex hull areas) computed in the graph;
- ``avd_network.onnx``: ``source_shift``, ``source_affine``, ``driving_shift``, ``driving_affine`` ->
  ``shift``, ``affine``, ``covar`` (mode ``avd``);
- ``generator.onnx``: ``source``, ``source_small``, ``feature*``, ``source_shift/affine/covar``,
  ``driving_shift/affine/covar`` (the mode's params; mode ``standard`` passes the driving frame's own) and
  ``bg_params`` -> ``prediction`` (1, C, H, W). A graph takes only the inputs its session lists.

``manifest.json`` names the graphs, the frame size, the modes and the default mode, and the
onnxruntime-web version.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
from pathlib import Path

import torch
from torch import Tensor, nn

from mraa.atomic import OWNER_NAME, lock_temp, release_temp, remove_stale_temps, temp_dir
from mraa.errors import MRAAError
from mraa.export.onnx import GRAPHS, _export, export_onnx
from mraa.inference.motion import animation_region_params

log = logging.getLogger(__name__)

WEB_GRAPHS = (*GRAPHS, "relative", "background")
PAGE_DIR = Path(__file__).resolve().parent / "web_page"  # index.html, JavaScript modules, style sheet
# the onnxruntime-web files the page loads (WebGPU build and WASM build), from the npm package's dist/
RUNTIME_FILES = (
    "ort.min.mjs",
    "ort.wasm.min.mjs",
    "ort-wasm-simd-threaded.mjs",
    "ort-wasm-simd-threaded.wasm",
    "ort-wasm-simd-threaded.jsep.mjs",
    "ort-wasm-simd-threaded.jsep.wasm",
)
WEB_SETUP = "make venv (it runs npm ci --prefix web)"


def hull_area(points: Tensor) -> Tensor:
    """Area of the convex hull of points (K, 2) as a 0-d tensor, by gift wrapping unrolled over K steps
    (exportable: fixed shapes, no loops in the graph). Fewer than 3 distinct points give 0.

    >>> round(float(hull_area(torch.tensor([[0.0, 0.0], [2.0, 0.0], [2.0, 1.0], [0.0, 1.0], [1.0, 0.5]]))), 6)
    2.0
    """
    k = points.shape[0]
    index = torch.arange(k)
    x, y = points[:, 0], points[:, 1]
    start = torch.argmin(torch.where(x == x.min(), y, torch.inf))  # the lowest of the leftmost: a vertex
    current = points[start]
    area = points.new_zeros(())
    done = torch.zeros((), dtype=torch.bool)
    for _ in range(k):
        edge = points - current  # (K, 2) from the current vertex to each candidate
        # cross[j, m] > 0: point m lies right of current -> j, so j is not the next counterclockwise vertex
        cross = edge[:, None, 0] * edge[None, :, 1] - edge[:, None, 1] * edge[None, :, 0]
        right = (cross < 0).sum(1).to(points.dtype)  # (K,)
        length = (edge * edge).sum(1)
        # the next vertex: no point to its right; among collinear ones the farthest; never the current one
        score = right * 1e6 - length + (length == 0).to(points.dtype) * 1e12
        following = torch.argmin(score)
        nxt = (index == following).to(points.dtype) @ points
        step = current[0] * nxt[1] - nxt[0] * current[1]
        area = area + torch.where(done, torch.zeros_like(step), step)
        done = done | (following == start)
        current = torch.where(done, current, nxt)
    return area.abs() / 2


class _RelativeGraph(nn.Module):
    def forward(self, source_shift, source_affine, initial_shift, initial_affine, driving_shift, driving_affine,
                driving_covar):  # fmt: skip
        source_area, driving_area = hull_area(source_shift[0]), hull_area(initial_shift[0])
        valid = (source_area > 0) & (driving_area > 0)
        scale = torch.where(valid, source_area.sqrt() / driving_area.clamp(min=1e-30).sqrt(), 1.0)
        params = animation_region_params(
            {"shift": source_shift, "affine": source_affine},
            {"shift": driving_shift, "affine": driving_affine, "covar": driving_covar},
            {"shift": initial_shift, "affine": initial_affine},
            "relative",
            scale=scale,
        )
        return params["shift"], params["affine"], params["covar"]


class _BackgroundGraph(nn.Module):
    def __init__(self, bg_predictor: nn.Module | None) -> None:
        super().__init__()
        self.net = bg_predictor

    def forward(self, source: Tensor) -> Tensor:
        if self.net is None:
            return torch.eye(3, dtype=source.dtype)[None] + 0 * source.mean()
        return self.net(source, source)


def export_web_graphs(models, cfg, folder: str | os.PathLike, default_mode: str = "avd") -> dict:
    """Write the graphs of the contract above for ``models`` (an :class:`mraa.models.MRAAModels`) at the
    config's frame size into ``folder``; returns the manifest (``manifest.json``'s content). The page
    opens in ``default_mode`` (``avd`` for a trained AVD network, as :meth:`mraa.animate.Animator.default_mode`)."""
    folder = Path(folder)
    size = tuple(cfg.dataset_params.resolved_frame_shape[:2])
    export_onnx(models, size, folder)
    k = cfg.model_params.num_regions
    shift, affine = torch.rand(3, 1, k, 2) * 2 - 1, torch.randn(3, 1, k, 2, 2) * 0.1 + torch.eye(2)
    covar = affine[2] @ affine[2].transpose(-1, -2)
    names = ["source_shift", "source_affine", "initial_shift", "initial_affine", "driving_shift",
             "driving_affine", "driving_covar"]  # fmt: skip
    args = (shift[0], affine[0], shift[1], affine[1], shift[2], affine[2], covar)
    bg = models.bg_predictor if cfg.animate_params.still_background == "source" else None
    if bg is not None and getattr(bg, "fc", None) is None:
        bg = None
    source = torch.rand(1, models.generator.num_channels, *size)
    with torch.no_grad():
        _export(_RelativeGraph(), args, folder / "relative.onnx", names, ["shift", "affine", "covar"], None)
        bg_graph = _BackgroundGraph(copy.deepcopy(bg).cpu().eval() if bg is not None else None)
        _export(bg_graph, (source,), folder / "background.onnx", ["source"], ["bg_params"], None)
    manifest = {
        "format": "mraa-web/1",
        "size": list(size),
        "channels": models.generator.num_channels,
        "num_regions": k,
        "graphs": {g: f"models/{g}.onnx" for g in WEB_GRAPHS},
        "modes": ["relative", "standard", "avd"],
        "default_mode": default_mode,
        "onnxruntime_web": runtime_version(),
    }
    return manifest


def load_models(checkpoint: str | os.PathLike | None, config: str | os.PathLike | None):
    """(models, config, default mode) of a checkpoint as exported (plain float32 networks on the CPU;
    ``config`` may be omitted when the checkpoint carries one; no checkpoint: the shipped model)."""
    from mraa.checkpoint import load_model

    loaded = load_model(checkpoint, config)  # the file read once
    return loaded.models.eval(), loaded.config, "avd" if loaded.has_trained_avd else "relative"


def runtime_dir() -> Path:
    """The onnxruntime-web ``dist`` folder: ``$MRAA_ORT_WEB_DIR``, else the checkout's
    ``web/node_modules/onnxruntime-web/dist`` (installed by the README's set-up)."""
    env = os.environ.get("MRAA_ORT_WEB_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "web" / "node_modules" / "onnxruntime-web" / "dist"


def runtime_version() -> str | None:
    package = runtime_dir().parent / "package.json"
    try:
        return json.loads(package.read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None


def check_runtime() -> Path:
    """The runtime folder, or an MRAAError naming the set-up command when its files (or the onnx package the
    export needs) are missing."""
    try:
        import onnx  # noqa: F401  (torch.onnx.export needs it)
    except ImportError as err:
        raise MRAAError("the browser export needs the onnx package: pip install 'mraa[onnx]'") from err
    folder = runtime_dir()
    missing = [name for name in RUNTIME_FILES if not (folder / name).is_file()]
    if missing:
        raise MRAAError(f"the onnxruntime-web runtime files are missing from {folder}: run {WEB_SETUP}")
    return folder


def build_web(
    models,
    cfg,
    output: str | os.PathLike,
    samples: tuple[Path, Path] | None = None,
    default_mode: str = "avd",
) -> Path:
    """Write the self-contained page into ``output`` (created if missing): ``index.html``, the JavaScript
    modules, ``models/*.onnx``, ``ort/`` (the runtime), ``manifest.json`` and, with ``samples`` (a photo and
    a driving video), ``samples/`` (the page opens with them). Files are written in a scratch folder inside
    ``output`` and moved into place when all are there; other files in ``output`` stay."""
    runtime = check_runtime()
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    models.eval()
    remove_stale_temps(output, "export")  # what a killed export left
    scratch = temp_dir(output, "export")  # marked: only mraa's clean-up may remove it (mraa.atomic)
    lock = lock_temp(scratch)
    try:
        manifest = export_web_graphs(models, cfg, scratch / "models", default_mode)
        if samples is not None:
            (scratch / "samples").mkdir()
            names = [f"source{Path(samples[0]).suffix}", f"driving{Path(samples[1]).suffix}"]
            for path, name in zip(samples, names):
                shutil.copyfile(path, scratch / "samples" / name)
            manifest["samples"] = {"source": f"samples/{names[0]}", "driving": f"samples/{names[1]}"}
        (scratch / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        (scratch / "ort").mkdir()
        for name in RUNTIME_FILES:
            shutil.copyfile(runtime / name, scratch / "ort" / name)
        for path in PAGE_DIR.iterdir():
            if path.is_file():
                shutil.copyfile(path, scratch / path.name)
        for path in sorted(p for p in scratch.rglob("*") if p.is_file()):
            if path.name == OWNER_NAME:
                continue
            target = output / path.relative_to(scratch)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        release_temp(lock)
    log.debug("web page for %dx%d frames in %s", *manifest["size"], output)
    return output
