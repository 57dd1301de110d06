"""The browser export (``mraa export --format web``, ``mraa web``): its graphs, its command errors, and the page in
headless Chromium (Playwright as a driver only, Debian's ``chromium``, as tests/test_app.py).

The browser tests need onnx/onnxruntime (the ``onnx`` extra), the onnxruntime-web files (``make venv`` runs
``npm ci --prefix web``), ``playwright`` and Chromium (``scripts/install_browser.sh``). Without them they are
skipped with the reason, except under ``CI=true`` where a missing piece fails the run.
"""

from __future__ import annotations

import base64
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from mraa.animate import DEFAULT_MODEL_DIR, animation_region_params, movement_scale
from mraa.geometry import convex_hull_area

from .conftest import CHROMIUM_FLAGS as BASE_CHROMIUM_FLAGS

CHROMIUM_FLAGS = [
    *BASE_CHROMIUM_FLAGS,
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
]
FRAMES = 3  # driving frames per mode in the comparison with Python's onnxruntime


def _missing(reason: str) -> None:
    """Skip on a developer machine; fail under CI, where the browser tests must run."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason}; CI=true, so the browser tests may not be skipped", pytrace=False)
    pytest.skip(reason)


# ----------------------------------------------------------------------------- no browser needed
@pytest.mark.parametrize(
    "case", ["random", "duplicates", "collinear", "one point", "a line", "a vertical left edge"]
)
def test_hull_area_matches_the_python_hull(case):
    from mraa.export.web import hull_area

    torch.manual_seed(1)
    points = torch.rand(10, 2) * 2 - 1
    if case == "duplicates":
        points[3:6] = points[1]
    elif case == "collinear":
        points[:4] = torch.tensor([[-0.9, 0.5], [-0.1, 0.5], [0.3, 0.5], [0.9, 0.5]])
    elif case == "one point":
        points[:] = points[0]
    elif case == "a line":
        points[:, 1] = 0.5 * points[:, 0]
    elif case == "a vertical left edge":
        points[:3] = torch.tensor([[-1.0, 0.2], [-1.0, -0.4], [-1.0, 0.9]])
    assert abs(float(hull_area(points)) - convex_hull_area(points)) < 1e-6


def test_export_web_names_the_setup_step_when_the_runtime_is_missing(tmp_path, monkeypatch, capsys):
    pytest.importorskip("onnx")
    from mraa.cli import main

    monkeypatch.setenv("MRAA_ORT_WEB_DIR", str(tmp_path / "nothing"))
    model = DEFAULT_MODEL_DIR
    args = ["export", "--format", "web", "--checkpoint", str(model / "model.safetensors")]
    code = main([*args, "--config", str(model / "config.yaml"), "--output", str(tmp_path / "page")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "onnxruntime-web runtime files are missing" in err and "make venv" in err
    assert not (tmp_path / "page").exists()


@pytest.fixture
def web_cache(tmp_path, monkeypatch):
    """Stand-in onnxruntime-web files and an empty ``mraa web`` cache; yields the cache's ``web`` folder
    (not yet made). The process's holds on the builds end with the test."""
    pytest.importorskip("onnx")
    from mraa.export.web import RUNTIME_FILES

    runtime = tmp_path / "dist"
    runtime.mkdir()
    for name in RUNTIME_FILES:
        (runtime / name).write_text("")
    monkeypatch.setenv("MRAA_ORT_WEB_DIR", str(runtime))
    monkeypatch.setenv("MRAA_CACHE_DIR", str(tmp_path / "cache"))
    yield tmp_path / "cache" / "web"
    _end_process_holds()


def test_export_web_refuses_existing_page_files_without_overwrite(tmp_path, web_cache, capsys):
    """A folder holding the user's own index.html: refused (nothing replaced) unless --overwrite; a missing
    parent folder is a typo, not a folder to create."""
    from mraa.cli import main

    page = tmp_path / "page"
    page.mkdir()
    (page / "index.html").write_text("mine")
    model = DEFAULT_MODEL_DIR
    args = ["export", "--format", "web", "--checkpoint", str(model / "model.safetensors")]
    args += ["--config", str(model / "config.yaml"), "--output"]
    assert main([*args, str(page)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "index.html" in err and "--overwrite" in err
    assert (page / "index.html").read_text() == "mine" and sorted(os.listdir(page)) == ["index.html"]
    assert main([*args, str(tmp_path / "typo" / "page")]) == 2
    assert "output directory does not exist" in capsys.readouterr().err
    assert not (tmp_path / "typo").exists()


def test_page_and_docs_name_only_real_mraa_options():
    """The page's notes and docs/web.md name ``mraa COMMAND --option``s that exist (the page once pointed at
    a nonexistent ``mraa animate --framing``)."""
    import re

    from mraa.cli import build_parser
    from mraa.export.web import PAGE_DIR

    commands = {
        name: parser
        for action in build_parser()._subparsers._group_actions
        for name, parser in action.choices.items()
    }
    text = (PAGE_DIR / "index.html").read_text() + (Path(__file__).parents[1] / "docs" / "web.md").read_text()
    named = re.findall(r"mraa (\w[\w-]*) ((?:--[\w-]+[^-`<\n]*)+)", text)
    assert named
    for command, rest in named:
        options = {o for a in commands[command]._actions for o in a.option_strings}
        for option in re.findall(r"--[\w-]+", rest):
            assert option in options, f"mraa {command} {option}"


def test_mraa_web_refuses_a_busy_or_bad_port(capsys, tmp_path, web_cache):
    from mraa.cli import main

    assert main(["web", "--port", "70000"]) == 2
    assert "--port must be between" in capsys.readouterr().err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert main(["web", "--port", str(busy.getsockname()[1])]) == 2
    assert "choose another --port" in capsys.readouterr().err
    for option, value, message in [
        ("--checkpoint", tmp_path / "nope.pth", "--checkpoint not found"),
        ("--checkpoint", tmp_path, "--checkpoint is a folder, not a file"),
        ("--config", tmp_path / "nope.yaml", "--config not found"),
    ]:
        assert main(["web", option, str(value), "--port", "0"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err and "Errno" not in err
    assert not (tmp_path / "cache").exists()  # refused before building anything


def test_cached_build_reuses_finished_builds_and_leaves_nothing_of_failed_ones(web_cache):
    from mraa.export.web_serve import MARKER, cached_build

    calls = []

    def build(folder):
        calls.append(folder)
        (folder / "index.html").write_text("page")

    def broken(folder):
        (folder / "half.onnx").write_text("")
        raise RuntimeError("export failed")

    first = cached_build("k1", build)
    assert cached_build("k1", build) == first and len(calls) == 1
    assert (first / MARKER).is_file() and (first / "index.html").read_text() == "page"
    with pytest.raises(RuntimeError):
        cached_build("k2", broken)
    assert sorted(p.name for p in web_cache.iterdir()) == ["k1"]


def _end_process_holds():
    """Release this process's holds on its builds, as if each build had been served by another process."""
    from mraa.export import web_serve

    for fd in web_serve._held.values():
        os.close(fd)
    web_serve._held.clear()


def test_the_cache_keeps_recent_builds_and_never_removes_one_in_use_or_not_its_own(web_cache):
    from mraa.atomic import OWNER_NAME, temp_dir
    from mraa.export.web_serve import KEEP_BUILDS, MARKER, cached_build

    root = web_cache
    root.mkdir(parents=True)
    (root / "my-notes").mkdir()  # the user's own folder, and one with a marker mraa did not write
    (root / "my-notes" / "a.txt").write_text("mine")
    (root / "fake").mkdir()
    (root / "fake" / MARKER).write_text("not mraa's text")
    killed = temp_dir(root, "build")  # a build killed half-way in an earlier process
    (killed / "half.onnx").write_text("")
    os.utime(killed, (0, 0))

    def build(folder):
        (folder / "index.html").write_text("page")

    served = cached_build("k0", build)
    holder = subprocess.Popen(  # another `mraa web` serving k0: a shared lock on its marker
        [sys.executable, "-c", "import fcntl, sys; f = open(sys.argv[1]); fcntl.flock(f, fcntl.LOCK_SH); "
         "print('held', flush=True); sys.stdin.read()", str(served / MARKER)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        _end_process_holds()
        for age, key in enumerate(["k1", "k2", "k3", "k4", "k5"], start=1):
            os.utime(served / MARKER, (0, 0))  # k0 is the oldest build
            folder = cached_build(key, build)
            os.utime(folder / MARKER, (age * 100, age * 100))
            _end_process_holds()
        names = sorted(p.name for p in root.iterdir())
        # the newest KEEP_BUILDS, the one in use, and everything that is not a finished mraa build
        assert names == sorted(["k3", "k4", "k5", "k0", "fake", "my-notes"]) and KEEP_BUILDS == 3
        assert (root / "my-notes" / "a.txt").read_text() == "mine" and not (killed / OWNER_NAME).exists()
    finally:
        holder.stdin.close()
        holder.wait()
    cached_build("k6", build)  # k0 is free now: pruned with the other old ones
    assert sorted(p.name for p in root.iterdir()) == sorted(["k4", "k5", "k6", "fake", "my-notes"])


# ----------------------------------------------------------------------------- the built page
@pytest.fixture(scope="module")
def page_dir(tmp_path_factory) -> Path:
    """The page for the shipped model, with the test's PNG frames in ``frames/``."""
    for module in ("onnx", "onnxruntime"):
        if importlib.util.find_spec(module) is None:
            _missing(f"{module} is not installed (pip install -e '.[onnx]')")
    from mraa.errors import MRAAError
    from mraa.export.web import build_web, check_runtime, load_models

    try:
        check_runtime()
    except MRAAError as err:
        _missing(str(err))
    from mraa.data.video_io import read_image, read_video, write_image

    folder = tmp_path_factory.mktemp("web")
    (folder / "unrelated.txt").write_text("kept")
    (folder / ".export-notes").mkdir()  # the user's: not mraa's marked scratch, so it stays
    from mraa.atomic import PROCESS_START, temp_dir

    stale = temp_dir(folder, "export")  # what an export killed outright left: removed by the next build
    os.utime(stale, (PROCESS_START - 3600, PROCESS_START - 3600))
    models, cfg, mode = load_models(
        DEFAULT_MODEL_DIR / "model.safetensors", DEFAULT_MODEL_DIR / "config.yaml"
    )
    samples = (DEFAULT_MODEL_DIR / "source.png", DEFAULT_MODEL_DIR / "driving.mp4")
    build_web(models, cfg, folder, samples, default_mode=mode)
    frames = folder / "frames"
    frames.mkdir()
    write_image(frames / "source.png", read_image(DEFAULT_MODEL_DIR / "source.png"))
    video = read_video(DEFAULT_MODEL_DIR / "driving.mp4")
    for i in range(FRAMES):
        write_image(frames / f"driving{i}.png", video[10 + 12 * i])
    return folder


def test_the_build_holds_the_contract_and_keeps_other_files(page_dir):
    import json

    import onnxruntime as ort

    manifest = json.loads((page_dir / "manifest.json").read_text())
    assert manifest["size"] == [64, 64] and manifest["default_mode"] == "avd"
    assert all((page_dir / path).is_file() for path in manifest["graphs"].values())
    assert (page_dir / "unrelated.txt").read_text() == "kept"
    assert not list(page_dir.glob(".mraa-tmp-*")) and (page_dir / ".export-notes").is_dir()
    # the relative graph: animation_region_params with the movement scale computed in the graph
    session = ort.InferenceSession(str(page_dir / "models" / "relative.onnx"))
    torch.manual_seed(2)
    shift, affine = torch.rand(3, 1, 10, 2) * 2 - 1, torch.randn(3, 1, 10, 2, 2) * 0.2
    covar = affine[2] @ affine[2].transpose(-1, -2)
    names = [
        "source_shift",
        "source_affine",
        "initial_shift",
        "initial_affine",
        "driving_shift",
        "driving_affine",
    ]
    feed = dict(zip(names, [shift[0], affine[0], shift[1], affine[1], shift[2], affine[2]]))
    out = session.run(None, {k: v.numpy() for k, v in {**feed, "driving_covar": covar}.items()})
    scale = movement_scale(shift[0, 0], shift[1, 0])
    assert abs(scale - 1.0) > 0.05  # the scale matters in this case
    expected = animation_region_params(
        {"shift": shift[0], "affine": affine[0]},
        {"shift": shift[2], "affine": affine[2], "covar": covar},
        {"shift": shift[1], "affine": affine[1]},
        "relative",
        scale=scale,
    )
    for got, key in zip(out, ("shift", "affine", "covar")):
        np.testing.assert_allclose(got, expected[key].numpy(), atol=1e-5)


def test_mraa_web_serves_its_cached_build_with_isolation_headers(page_dir, tmp_path):
    import subprocess
    import sys
    import urllib.request

    from mraa.export.web_serve import MARKER, cache_key

    cache = tmp_path / "cache"
    key = cache_key(DEFAULT_MODEL_DIR / "model.safetensors")  # what `mraa web` computes for the shipped model
    shutil.copytree(page_dir, cache / "web" / key)  # a finished build: served without exporting again
    (cache / "web" / key / MARKER).write_text("")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **os.environ,
        "MRAA_CACHE_DIR": str(cache),
        "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src"),
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "mraa", "web", "--port", str(port)], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        lines = [server.stdout.readline() for _ in range(2)]
        assert lines[0].startswith(f"serving {cache / 'web' / key}") and f"127.0.0.1:{port}" in lines[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
            assert response.headers["Cross-Origin-Opener-Policy"] == "same-origin"
            assert response.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
            assert b'src="app.js"' in response.read()
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/ort/ort-wasm-simd-threaded.wasm", timeout=10
        ) as response:
            assert response.headers["Content-Type"] == "application/wasm"
    finally:
        server.terminate()
        server.wait(timeout=10)


def _y4m(path: Path, frames: np.ndarray, fps: int = 25) -> Path:
    """A YUV4MPEG2 (4:2:0) clip of RGB frames (T, H, W, 3), for Chromium's fake webcam."""
    rgb = frames.astype(np.float32)
    y = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    u = (rgb[..., 2] - y) * 0.564 + 128
    v = (rgb[..., 0] - y) * 0.713 + 128
    t, h, w = y.shape
    with open(path, "wb") as out:
        out.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for i in range(t):
            out.write(b"FRAME\n")
            for plane, step in ((y, 1), (u, 2), (v, 2)):
                small = (
                    plane[i].reshape(h // step, step, w // step, step).mean((1, 3)) if step > 1 else plane[i]
                )
                out.write(np.clip(np.rint(small), 0, 255).astype(np.uint8).tobytes())
    return path


@pytest.fixture(scope="module")
def browser_page(page_dir, tmp_path_factory):
    """The page served by mraa's server, open in headless Chromium with a fake webcam; the requests it made
    to anything but the server are collected in ``page.external``."""
    if importlib.util.find_spec("playwright") is None:
        _missing("playwright is not installed (pip install playwright; it needs no browser download)")
    chromium = next(
        (
            shutil.which(c)
            for c in (os.environ.get("MRAA_CHROMIUM"), "chromium", "chromium-browser")
            if c and shutil.which(c)
        ),
        None,
    )
    if chromium is None:
        _missing("no Chromium found (install Debian's chromium: bash scripts/install_browser.sh)")
    from playwright.sync_api import sync_playwright

    from mraa.data.video_io import read_video
    from mraa.export.web_serve import serve_in_thread

    clip = _y4m(tmp_path_factory.mktemp("webcam") / "clip.y4m", read_video(DEFAULT_MODEL_DIR / "driving.mp4"))
    server, url = serve_in_thread(page_dir)
    with sync_playwright() as driver:
        browser = driver.chromium.launch(
            executable_path=chromium,
            headless=True,
            args=[*CHROMIUM_FLAGS, f"--use-file-for-fake-video-capture={clip}"],
        )
        page = browser.new_page()
        page.set_default_timeout(60_000)
        external: list[str] = []
        page.on("request", lambda r: None if r.url.startswith(url) else external.append(r.url))
        page.goto(url)
        page.evaluate("() => window.mraa.ready")
        yield SimpleNamespace(page=page, url=url, external=external)
        browser.close()
    server.shutdown()
    server.server_close()


def test_page_loads_offline_with_wasm_threads(browser_page):
    page = browser_page.page
    assert browser_page.external == []  # nothing but 127.0.0.1
    assert page.evaluate("() => crossOriginIsolated")  # the server's COOP/COEP headers: threads allowed
    assert page.inner_text("#backend").startswith("WASM")  # headless Chromium without a GPU
    assert "ready: 64x64" in page.inner_text("#status")


ANIMATE_JS = """async ([source, frames, mode]) => {
  const r = await window.mraa.animateFrames(source, frames, {mode});
  const b64 = r.frames.map((f) => btoa(Array.from(f, (c) => String.fromCharCode(c)).join('')));
  return {width: r.width, height: r.height, frames: b64};
}"""


def _animate_in_browser(browser_page, mode: str) -> np.ndarray:
    root = browser_page.url + "frames/"
    urls = [f"{root}driving{i}.png" for i in range(FRAMES)]
    result = browser_page.page.evaluate(ANIMATE_JS, [root + "source.png", urls, mode])
    shape = (result["height"], result["width"], 4)
    frames = [np.frombuffer(base64.b64decode(f), np.uint8).reshape(shape) for f in result["frames"]]
    assert all((f[..., 3] == 255).all() for f in frames)
    return np.stack(frames)[..., :3]


@pytest.mark.parametrize("mode", ["relative", "standard", "avd"])
def test_frames_match_python_onnxruntime(browser_page, page_dir, mode):
    from mraa.animate import Animator
    from mraa.data.video_io import read_image

    frames = page_dir / "frames"
    animator = Animator.from_checkpoint(
        DEFAULT_MODEL_DIR / "model.safetensors", backend="onnxruntime", onnx_dir=page_dir / "models"
    )
    driving = np.stack([read_image(frames / f"driving{i}.png") for i in range(FRAMES)])
    expected = animator.animate(frames / "source.png", driving, mode=mode).permute(0, 2, 3, 1).numpy()
    got = _animate_in_browser(browser_page, mode) / 255.0
    assert got.shape == expected.shape == (FRAMES, 64, 64, 3)
    assert np.abs(got - expected).mean() < 1 / 255
    assert np.abs(got - expected).max() < 8 / 255
    assert np.abs(got[1:] - got[:1]).mean() > 2 / 255  # the frames move


def test_fake_webcam_drives_live_mode(browser_page):
    page = browser_page.page
    page.click("#live")
    page.wait_for_function("() => window.mraa.live && window.mraa.live.frames >= 2")
    assert page.evaluate("() => window.mraa.live.references") == 1
    assert page.is_enabled("#reset")
    page.click("#reset")  # the next frame becomes the reference
    page.wait_for_function("() => window.mraa.live.references === 2 && window.mraa.live.initial !== null")
    result = page.evaluate(
        "() => Array.from(document.getElementById('result-view').getContext('2d').getImageData(0, 0, 64, 64).data)"
    )
    assert np.asarray(result, np.uint8).reshape(64, 64, 4)[..., :3].std() > 10  # a picture, not a blank
    assert "fps" in page.inner_text("#fps") and page.inner_text("#fps") != "– fps"
    page.click("#live")  # stops
    assert page.evaluate("() => window.mraa.live.running") is False
    assert browser_page.external == []


def test_zip_download_holds_the_png_frames(browser_page):
    import io
    import zipfile

    from PIL import Image

    data = browser_page.page.evaluate(
        """async () => {
          const frames = Array.from({length: 3}, (_, i) => new Uint8ClampedArray(64 * 64 * 4).fill(60 * i + 20));
          const bytes = new Uint8Array(await (await window.mraa.encodeZip(frames, 64, 64)).arrayBuffer());
          return btoa(Array.from(bytes, (c) => String.fromCharCode(c)).join(''));
        }"""
    )
    with zipfile.ZipFile(io.BytesIO(base64.b64decode(data))) as archive:
        assert archive.testzip() is None  # the CRCs hold
        names = archive.namelist()
        assert names == ["frame_00000.png", "frame_00001.png", "frame_00002.png"]
        image = np.asarray(Image.open(io.BytesIO(archive.read(names[2]))).convert("RGBA"))
    assert image.shape == (64, 64, 4) and (image == 140).all()


def test_webm_download_decodes(browser_page, tmp_path):
    import av

    data = browser_page.page.evaluate(
        """async () => {
          const frames = Array.from({length: 6}, (_, i) => new Uint8ClampedArray(64 * 64 * 4).fill(40 * i));
          const blob = await window.mraa.encodeWebM(frames, 64, 64, 25);
          const bytes = new Uint8Array(await blob.arrayBuffer());
          return btoa(Array.from(bytes, (c) => String.fromCharCode(c)).join(''));
        }"""
    )
    path = tmp_path / "mraa.webm"
    path.write_bytes(base64.b64decode(data))
    with av.open(str(path)) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == 6 and decoded[0].shape == (64, 64, 3)
    assert decoded[5].mean() > decoded[1].mean() + 100  # the frames in order
