"""``mraa export``: convert a training/official checkpoint to safetensors + config.yaml."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="convert a checkpoint to model.safetensors + config.yaml (or ONNX graphs)",
        description="Write OUTPUT/model.safetensors (flat generator.*, region_predictor.*, ... keys) and "
        "OUTPUT/config.yaml from an official .pth, an mraa training checkpoint or an mraa safetensors "
        "export (default: the model shipped with mraa).",
    )
    parser.add_argument(
        "--checkpoint",
        help="official .pth, mraa training checkpoint or mraa safetensors export (model.safetensors or its "
        "folder) (default: the model shipped with mraa)",
    )
    parser.add_argument(
        "--config",
        help="YAML config in the official schema (default: the one stored with the checkpoint; official .pth "
        "files store none)",
    )
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

    from mraa.checkpoint import (
        MODEL_KEYS,
        config_from_checkpoint,
        default_checkpoint,
        export_safetensors,
        load_weights,
        read_checkpoint,
    )
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
    checkpoint = args.checkpoint or default_checkpoint()
    check_outputs(
        inputs={"--checkpoint": checkpoint, "--config": args.config},
        outputs=export_outputs(output, getattr(args, "format", "safetensors")),
        overwrite=args.overwrite,
    )
    if args.checkpoint is None:
        print(f"using the model shipped with mraa ({checkpoint.parent.name}: trained on synthetic figures)")
    cfg = load_config(args.config) if args.config else None
    data = read_checkpoint(checkpoint)  # read once: its config (when no --config) and its weights
    cfg = cfg or config_from_checkpoint(data)
    if cfg is None:
        raise MRAAError(f"{checkpoint} stores no config: pass --config (the YAML it was trained with)")
    models = build_models(cfg.model_params)
    load_weights(data, models, source=str(checkpoint))
    if getattr(args, "format", "safetensors") == "onnx":
        return _run_onnx(args, cfg, models, checkpoint)
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


def _run_onnx(args: argparse.Namespace, cfg, models, checkpoint) -> int:
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
    folder = export_onnx(models, size, args.output, config=cfg, checkpoint=checkpoint)
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
