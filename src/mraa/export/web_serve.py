"""``mraa web``: build the browser page (:func:`mraa.export.web.build_web`) into a cache folder and serve it
on 127.0.0.1 with the headers multi-threaded WebAssembly needs (cross-origin isolation)."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from mraa.errors import MRAAError
from mraa.export.web import PAGE_DIR, check_runtime, runtime_version

log = logging.getLogger(__name__)

MARKER = ".mraa-web-cache"  # written last into every cache folder mraa builds; clean-up removes only these
HEADERS = {
    "Cross-Origin-Opener-Policy": "same-origin",  # with COEP: crossOriginIsolated, so WASM may use threads
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-cache",
}


def cache_root() -> Path:
    """``$MRAA_CACHE_DIR/web``, else ``$XDG_CACHE_HOME/mraa/web`` (default ``~/.cache/mraa/web``)."""
    if os.environ.get("MRAA_CACHE_DIR"):
        return Path(os.environ["MRAA_CACHE_DIR"]) / "web"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mraa" / "web"


def cache_key(*files: str | os.PathLike) -> str:
    """A hash of the model files, the page's files and the runtime version: a new key rebuilds."""
    digest = hashlib.sha256(str(runtime_version()).encode())
    for path in [*map(Path, files), *sorted(PAGE_DIR.iterdir())]:
        digest.update(path.name.encode())
        with open(path, "rb") as handle:
            for block in iter(partial(handle.read, 1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def cached_build(key: str, build) -> Path:
    """The cache folder for ``key``, built by ``build(folder)`` when missing; finished folders hold MARKER
    and are renamed into place whole (a failed build leaves nothing behind)."""
    check_runtime()
    root = cache_root()
    folder = root / key
    if (folder / MARKER).is_file():
        return folder
    root.mkdir(parents=True, exist_ok=True)
    if folder.exists():
        raise MRAAError(f"{folder} exists but is not a finished mraa build: remove it and run again")
    scratch = Path(tempfile.mkdtemp(dir=root, prefix=".build-"))
    try:
        build(scratch)
        (scratch / MARKER).write_text("built by mraa web; safe to delete\n")
        os.replace(scratch, folder)
    finally:
        if scratch.exists():
            shutil.rmtree(scratch)
    return folder


class _Handler(SimpleHTTPRequestHandler):
    extensions_map = {
        **SimpleHTTPRequestHandler.extensions_map,
        ".mjs": "text/javascript",
        ".js": "text/javascript",
        ".wasm": "application/wasm",
        ".onnx": "application/octet-stream",
    }

    def end_headers(self) -> None:
        for name, value in HEADERS.items():
            self.send_header(name, value)
        super().end_headers()

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the base class's name)
        log.debug("%s %s", self.address_string(), format % args)


def make_server(folder: str | os.PathLike, port: int = 8000, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """An HTTP server for ``folder`` on ``host:port`` (port 0: a free one); call ``serve_forever``."""
    try:
        return ThreadingHTTPServer((host, port), partial(_Handler, directory=str(folder)))
    except OSError as exc:
        raise MRAAError(
            f"cannot listen on {host} port {port} ({exc.strerror or exc}): choose another --port"
        ) from None


def serve_in_thread(folder: str | os.PathLike, port: int = 0) -> tuple[ThreadingHTTPServer, str]:
    """Serve ``folder`` from a daemon thread (tests, benchmarks); returns the server and its URL."""
    server = make_server(folder, port)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"
