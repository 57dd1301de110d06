"""``mraa web``: build the browser page for a model (cached) and serve it on 127.0.0.1."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "web",
        help="animate in the browser: the model's graphs run in the page (onnxruntime-web), nothing uploaded",
        description="Build the page of `mraa export --format web` for a model into a cache folder "
        "($XDG_CACHE_HOME/mraa/web, rebuilt when the model or page changes) and serve it on 127.0.0.1 "
        "with the cross-origin isolation headers multi-threaded WebAssembly needs. Needs the onnx extra "
        "and the onnxruntime-web files (make venv).",
    )
    parser.add_argument(
        "--checkpoint",
        help="official .pth, mraa training checkpoint or safetensors export (default: the model shipped with mraa)",
    )
    parser.add_argument(
        "--config", help="YAML config in the official schema (default: the one stored with the checkpoint)"
    )
    parser.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (default 8000)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mraa.animate import DEFAULT_MODEL_DIR, default_checkpoint
    from mraa.cli.app import check_port
    from mraa.errors import MRAAError
    from mraa.export.web import build_web, check_runtime, load_models
    from mraa.export.web_serve import cache_key, cached_build, make_server

    if not 0 <= args.port < 65536:
        raise MRAAError(f"--port must be between 0 and 65535, got {args.port}")
    check_runtime()
    check_port("127.0.0.1", args.port)  # fail before the export's seconds
    checkpoint = Path(args.checkpoint) if args.checkpoint else default_checkpoint()
    for label, path in (("--checkpoint", checkpoint), ("--config", args.config)):
        if path is not None and not Path(path).is_file():  # a typo: one line, not an OSError's errno
            what = "is a folder, not a file" if Path(path).is_dir() else "not found"
            raise MRAAError(f"{label} {what}: {path}")
    samples = None
    if checkpoint.resolve() == default_checkpoint().resolve():
        samples = (DEFAULT_MODEL_DIR / "source.png", DEFAULT_MODEL_DIR / "driving.mp4")
    key = cache_key(checkpoint, *([args.config] if args.config else []))

    def build(folder: Path) -> None:
        print("exporting the model's graphs for the browser...", flush=True)
        models, cfg, mode = load_models(checkpoint, args.config)
        build_web(models, cfg, folder, samples, mode)

    folder = cached_build(key, build)
    server = make_server(folder, args.port)
    print(f"serving {folder}")
    print(
        f"mraa web: open http://127.0.0.1:{server.server_address[1]}/ in a browser (Ctrl+C to stop)",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
