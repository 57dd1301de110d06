"""``mraa app``: a local web page to animate, segment and swap parts in the browser (Gradio)."""

from __future__ import annotations

import argparse
import logging
import socket
from pathlib import Path

from mraa.cli._common import add_model_arguments

log = logging.getLogger(__name__)

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "app",
        help="local web app: animate, segment and swap parts in the browser (needs the 'app' extra)",
        description="Serve a web page to upload a source image and a driving video (or use the samples), "
        "animate it, view segmentation overlays and swap parts. Needs the optional extra: "
        "pip install -e '.[app]'. Listens on localhost only unless --host says otherwise.",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 exposes the app "
        "to the network, without any authentication)",
    )
    parser.add_argument("--port", type=int, default=7860, help="port to listen on (default 7860)")
    add_model_arguments(parser)
    parser.add_argument(
        "--batch-size",
        type=int,
        help="driving frames per batch (default, as mraa animate: 1 on CPU, where larger batches measured "
        "slower; 8 on CUDA, 4 on MPS)",
    )
    parser.add_argument(
        "--max-upload-mb",
        type=float,
        default=200.0,
        help="largest accepted upload in MB (default 200); larger files are refused with a message",
    )
    parser.add_argument(
        "--max-frames",
        type=int,
        default=600,
        help="driving videos are cut to this many frames (default 600, 24 s at 25 fps)",
    )
    parser.add_argument(
        "--samples",
        metavar="DIR",
        help="folder with a sample source image and driving video for the 'use the samples' button "
        "(default: the samples shipped with mraa, next to the default model)",
    )
    parser.add_argument(
        "--work-dir", metavar="DIR", help="results go to DIR/.mraa-app/ (default: a new temporary folder)"
    )
    parser.set_defaults(func=run)


def check_port(host: str, port: int) -> None:
    """Fail before loading a model when ``host:port`` cannot be listened on (in use, unknown host)."""
    from mraa.errors import MRAAError

    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as sock:
            sock.bind(address)
    except OSError as exc:
        raise MRAAError(
            f"cannot listen on {host} port {port} ({exc.strerror or exc}): choose another --port"
        ) from None


def run(args: argparse.Namespace) -> int:
    from mraa.animate import resolve_device
    from mraa.app import Limits, create_service, launch_app, require_gradio
    from mraa.errors import MRAAError

    require_gradio()  # before loading a model: the most likely problem first
    if not 0 < args.port < 65536:
        raise MRAAError(f"--port must be between 1 and 65535, got {args.port}")
    if args.batch_size is not None and args.batch_size < 1:
        raise MRAAError(f"--batch-size must be at least 1, got {args.batch_size}")
    limits = Limits(max_upload_mb=args.max_upload_mb, max_frames=args.max_frames)
    check_port(args.host, args.port)
    resolve_device(args.device)
    if args.samples and not Path(args.samples).is_dir():
        raise MRAAError(f"--samples folder not found: {args.samples}")
    if args.host not in LOCAL_HOSTS:
        log.warning("listening on %s: anyone who can reach this machine can use the app", args.host)
    print("loading the model...")
    service = create_service(
        args.checkpoint,
        args.config,
        device=args.device,
        batch_size=args.batch_size,
        limits=limits,
        samples_dir=args.samples,
        work_dir=args.work_dir,
    )
    print(service.describe().replace("**", ""))
    if not service.samples.available:
        print("no sample image and video found: the page's sample button is disabled")
    for noisy in ("httpx", "httpcore"):  # Gradio's own health checks would log a line per request
        logging.getLogger(noisy).setLevel(logging.WARNING)
    blocks, _ = launch_app(service, host=args.host, port=args.port, block=False)
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"mraa app: open http://{host}:{args.port} in a browser (Ctrl+C to stop)", flush=True)
    try:
        blocks.block_thread()  # returns on Ctrl+C, after closing the server
    finally:
        blocks.close()
        service.cleanup()
    return 0
