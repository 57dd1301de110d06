"""``mraa web``: build the browser page (:func:`mraa.export.web.build_web`) into a cache folder and serve it
on 127.0.0.1 with the headers multi-threaded WebAssembly needs (cross-origin isolation)."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from mraa.atomic import lock_temp, release_temp, remove_stale_temps, temp_dir, unmark_dir
from mraa.errors import MRAAError
from mraa.export.web import PAGE_DIR, check_runtime, runtime_version

log = logging.getLogger(__name__)

MARKER = ".mraa-web-cache"  # written last into every cache folder mraa builds; clean-up removes only these
MARKER_TEXT = "built by mraa web; safe to delete\n"
KEEP_BUILDS = 3  # finished builds kept in the cache (the most recently used); builds in use are never removed
_held: dict[Path, int] = {}  # builds this process uses: a shared flock on their marker, held until exit
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
    and are renamed into place whole (a failed build leaves nothing behind).

    The folder stays in use by this process until it exits (a shared lock on its marker). The cache then
    keeps the :data:`KEEP_BUILDS` most recently used builds and removes older ones that no ``mraa web``
    holds, and the scratch folders of builds that were killed; nothing without mraa's marks is touched.
    """
    check_runtime()
    root = cache_root()
    folder = root / key
    for _ in range(3):  # a build removed by another process between the check and the lock: look again
        if (folder / MARKER).is_file():
            if _hold(folder):
                prune_builds(root, keep=KEEP_BUILDS)
                return folder
            continue
        root.mkdir(parents=True, exist_ok=True)
        if folder.exists():
            raise MRAAError(f"{folder} exists but is not a finished mraa build: remove it and run again")
        remove_stale_temps(root, "build")
        scratch = temp_dir(root, "build")
        lock = lock_temp(scratch)  # another process's clean-up leaves a build in progress alone
        try:
            build(scratch)
            (scratch / MARKER).write_text(MARKER_TEXT)
            unmark_dir(scratch)
            os.replace(scratch, folder)
        finally:
            release_temp(lock)
            if scratch.exists():
                shutil.rmtree(scratch)
    raise MRAAError(f"{folder} keeps disappearing: is another program cleaning {root}?")


def _hold(folder: Path) -> bool:
    """Take a shared lock on ``folder``'s marker for this process's lifetime and mark it as just used;
    False when the build was removed meanwhile."""
    if folder in _held:
        return True
    try:
        fd = os.open(folder / MARKER, os.O_RDONLY)
    except OSError:
        return False
    try:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_SH)
    except ImportError:  # Windows: no flock; pruning there goes by last use alone
        pass
    if not (folder / MARKER).is_file():  # removed while we waited for the lock
        os.close(fd)
        return False
    with contextlib.suppress(OSError):
        os.utime(folder / MARKER)  # last use: pruning keeps the most recent
    _held[folder] = fd
    return True


def prune_builds(root: Path, keep: int = KEEP_BUILDS) -> list[Path]:
    """Remove finished builds in ``root`` beyond the ``keep`` most recently used, skipping any that a
    running ``mraa web`` holds; returns what was removed. Only folders holding mraa's marker are candidates."""
    builds = []
    for entry in root.iterdir() if root.is_dir() else ():
        marker = entry / MARKER
        if entry.is_symlink() or not entry.is_dir() or marker.is_symlink() or not marker.is_file():
            continue
        with contextlib.suppress(OSError):
            if marker.read_text() == MARKER_TEXT:
                builds.append((marker.stat().st_mtime, entry))
    builds.sort(reverse=True)
    removed = []
    for _, entry in builds[keep:]:
        if entry in _held:
            continue
        fd = lock_temp(entry / MARKER)  # fails while any process holds it (a build being served)
        if fd is None:
            continue
        try:
            shutil.rmtree(entry)
            removed.append(entry)
        except OSError as exc:
            log.debug("could not remove %s: %s", entry, exc)
        finally:
            release_temp(fd)
    if removed:
        log.info("removed %d older build(s) from the web cache %s", len(removed), root)
    return removed


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
