"""``mraa export``: convert a training/official checkpoint to safetensors + config.yaml."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="convert a .pth checkpoint to model.safetensors + config.yaml",
        description="Write OUTPUT/model.safetensors (flat generator.*, region_predictor.*, ... keys) and "
        "OUTPUT/config.yaml from an official or mraa training checkpoint.",
    )
    parser.add_argument("--checkpoint", required=True, help="official .pth or mraa training checkpoint")
    parser.add_argument("--config", required=True, help="YAML config in the official schema")
    parser.add_argument("--output", required=True, help="output folder (created if missing)")
    parser.add_argument(
        "--format",
        choices=("safetensors", "onnx", "web"),
        default="safetensors",
        help="safetensors (default) or onnx: the animation graphs (region predictor, source encoder, "
        "per-frame generator, AVD) for onnxruntime, plus config.yaml (needs the onnx extra); or web: "
        "a static page that animates in the browser with onnxruntime-web (docs/web.md)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the files a previous export wrote in OUTPUT"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mraa.checkpoint import MODEL_KEYS, export_safetensors, load_checkpoint
    from mraa.config import load_config
    from mraa.errors import MRAAError
    from mraa.models import build_models
    from mraa.safety import check_outputs

    output = Path(args.output)
    if output.exists() and not output.is_dir():
        raise MRAAError(f"--output {output} is a file, not a folder")
    if not output.parent.exists():  # a typo'd path, not a tree of folders to create
        raise MRAAError(f"output directory does not exist: {output.parent}")
    if getattr(args, "format", "safetensors") == "web":
        return _run_web(args, output)
    check_outputs(
        inputs={"--checkpoint": args.checkpoint, "--config": args.config},
        outputs=export_outputs(output, getattr(args, "format", "safetensors")),
        overwrite=args.overwrite,
    )
    cfg = load_config(args.config)
    models = build_models(cfg.model_params)
    data = load_checkpoint(args.checkpoint, models)
    if getattr(args, "format", "safetensors") == "onnx":
        return _run_onnx(args, cfg, models)
    include = tuple(name for name in MODEL_KEYS if data.get(name))
    path = export_safetensors(models, cfg, args.output, include=include)
    print(f"wrote {path} ({', '.join(include)}) and {path.with_name('config.yaml')}")
    return 0


def export_outputs(output, fmt: str) -> dict:
    """The files an export writes into ``output``, labelled for messages."""
    from mraa.checkpoint import SAFETENSORS_NAME
    from mraa.export.manifest import MANIFEST_NAME
    from mraa.export.onnx import GRAPHS

    names = [*(f"{g}.onnx" for g in GRAPHS), MANIFEST_NAME] if fmt == "onnx" else [SAFETENSORS_NAME]
    return {f"--output {name}": output / name for name in [*names, "config.yaml"]}


def _run_onnx(args: argparse.Namespace, cfg, models) -> int:
    """Write the ONNX graphs of the fused inference networks (see mraa.export.onnx) and config.yaml."""
    from mraa.errors import MRAAError
    from mraa.export.onnx import GRAPHS, export_onnx

    try:
        import onnx  # noqa: F401  (torch.onnx.export needs it)
    except ImportError as err:
        raise MRAAError("--format onnx needs the onnx package: pip install 'mraa[onnx]'") from err
    models.eval()  # export_onnx folds and rewrites copies of the networks
    size = tuple(cfg.dataset_params.resolved_frame_shape[:2])
    # written into a marked scratch folder inside the output and moved in when complete (mraa.export.onnx)
    folder = export_onnx(models, size, args.output, config=cfg, checkpoint=args.checkpoint)
    print(f"wrote {', '.join(g + '.onnx' for g in GRAPHS)} and config.yaml to {folder} ({size[0]}x{size[1]})")
    return 0


def _run_web(args: argparse.Namespace, output) -> int:
    """Write the browser page (see mraa.export.web): the page, the graphs, the onnxruntime-web files."""
    from mraa.export.web import PAGE_DIR, RUNTIME_FILES, WEB_GRAPHS, build_web, check_runtime, load_models
    from mraa.safety import check_outputs

    check_runtime()  # before the export's seconds: the set-up step most likely missing
    names = [
        "manifest.json",
        *(p.name for p in PAGE_DIR.iterdir() if p.is_file()),
        *(f"models/{g}.onnx" for g in WEB_GRAPHS),
        *(f"ort/{name}" for name in RUNTIME_FILES),
    ]
    check_outputs(  # the page's files (index.html, app.js, ...) exist only with --overwrite
        inputs={"--checkpoint": args.checkpoint, "--config": args.config},
        outputs={f"--output {name}": output / name for name in names},
        overwrite=args.overwrite,
    )
    models, cfg, mode = load_models(args.checkpoint, args.config)
    build_web(models, cfg, output, default_mode=mode)
    h, w = cfg.dataset_params.resolved_frame_shape[:2]
    print(
        f"wrote the web page ({h}x{w} model) to {output}: serve it with any static file server "
        "(WASM threads need the COOP/COEP headers of docs/web.md)"
    )
    return 0
