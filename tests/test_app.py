"""The web app: the checks and work behind the page (no browser needed), the ``mraa app`` command, and an
end-to-end run in headless Chromium driven by Playwright.

The browser test needs the ``app`` extra (gradio), the ``playwright`` package (used only as a driver: it
never downloads a browser) and Debian's ``chromium`` (``scripts/install_browser.sh``). Without them it is
skipped with the reason, except under ``CI=true`` where a missing piece fails the run: CI must really run it.
Set ``MRAA_CHROMIUM`` to use another Chromium binary, and ``MRAA_APP_SCREENSHOT=path.png`` to keep the
screenshot it takes.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from mraa.animate import Animator
from mraa.app import AnimationService, Limits, Samples, find_samples, has_segmentation
from mraa.errors import MRAAError

from .conftest import CHROMIUM_FLAGS as BASE_CHROMIUM_FLAGS

CHROMIUM_FLAGS = [*BASE_CHROMIUM_FLAGS, "--autoplay-policy=no-user-gesture-required"]
NUM_FRAMES, FPS = 8, 8.0
# Gradio 6.31's queue calls pandas APIs that pandas 3 deprecates: not ours to fix
pytestmark = [
    pytest.mark.filterwarnings("ignore:.*no_silent_downcasting"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]


# ----------------------------------------------------------------------------- inputs
def write_inputs(folder: Path) -> dict[str, Path]:
    """A sample source image and driving video (synthetic figures, 64x64) and bad uploads in ``folder``."""
    import imageio_ffmpeg

    from mraa.data.synthetic import SynthConfig, render_video
    from mraa.data.video_io import write_image, write_video

    folder.mkdir(parents=True, exist_ok=True)
    samples = folder / "samples"
    samples.mkdir(exist_ok=True)
    paths = {"source": samples / "source.png", "driving": samples / "driving.mp4"}
    write_image(paths["source"], render_video(0, 1, SynthConfig(size=64, num_frames=2))[0])
    write_video(paths["driving"], list(render_video(0, 0, SynthConfig(size=64, num_frames=NUM_FRAMES))), FPS)
    paths["not_image"] = folder / "holiday.png"
    paths["not_image"].write_text("this is a text file, not a picture\n" * 20)
    paths["no_frames"] = folder / "empty.mp4"  # a valid mp4 container with no video frames
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi", "-i",
           "color=c=red:s=64x64:r=8", "-frames:v", "0", "-c:v", "libx264", str(paths["no_frames"])]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True)
    paths["too_large"] = folder / "huge.mp4"
    paths["too_large"].write_bytes(np.random.default_rng(0).bytes(1_600_000))
    return paths


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    return write_inputs(tmp_path_factory.mktemp("app-inputs"))


@pytest.fixture
def service(tiny_cfg, tiny_models, inputs, tmp_path) -> AnimationService:
    animator = Animator(tiny_models, tiny_cfg.animate_params, config=tiny_cfg, has_trained_avd=False)
    samples = find_samples(inputs["source"].parent)
    return AnimationService(
        animator, tmp_path / "work", Limits(max_upload_mb=1, max_frames=6), samples, "tiny"
    )


# ----------------------------------------------------------------------------- service (no browser)
class TestService:
    def test_samples_found_by_name(self, inputs, tmp_path):
        samples = find_samples(inputs["source"].parent)
        assert (
            samples.available
            and samples.source.name == "source.png"
            and samples.driving.name == "driving.mp4"
        )
        assert not find_samples(tmp_path / "missing").available
        assert not find_samples(None).available

    def test_bad_uploads_give_clear_messages(self, service, inputs):
        with pytest.raises(MRAAError, match="holiday.png is not an image"):
            service.load_source(inputs["not_image"])
        with pytest.raises(MRAAError, match="empty.mp4 has no frames"):
            service.inspect_driving(inputs["no_frames"])
        with pytest.raises(MRAAError, match=r"huge.mp4 is too large: 1.5 MB \(the limit is 1 MB\)"):
            service.load_driving(inputs["too_large"])
        with pytest.raises(MRAAError, match="no source image given"):
            service.load_source(None)
        with pytest.raises(MRAAError, match="source driving.mp4 looks like a video"):
            service.load_source(inputs["driving"])
        with pytest.raises(MRAAError, match="not a video mraa can read"):
            service.load_driving(inputs["not_image"])

    def test_messages_name_the_file_not_the_server_path(self, service, inputs):
        with pytest.raises(MRAAError) as info:
            service.load_driving(inputs["not_image"])
        assert str(inputs["not_image"].parent) not in str(info.value)

    def test_auto_mode_is_the_commands_choice_for_a_photo(self, service, inputs, tmp_path):
        """The app's "auto" mode (its default) picks what `mraa animate` picks: relative for a photo that is
        not at the shipped model's size, the model's own mode (avd) for its sample-sized pictures."""
        from mraa.data.video_io import read_image, write_image

        service.animator.has_trained_avd = True  # a model whose own mode is avd, as the shipped one
        service.animator.shipped_model = True
        photo = tmp_path / "portrait.png"
        write_image(photo, np.repeat(np.repeat(read_image(inputs["source"]), 3, axis=0), 2, axis=1))
        assert service.animate(photo, inputs["driving"], mode="auto").mode == "relative"
        assert service.animate(inputs["source"], inputs["driving"], mode=None).mode == "avd"
        assert service.animate(photo, inputs["driving"], mode="standard").mode == "standard"

    def test_options_are_validated(self, service):
        assert service.check_options(None, None) == ("relative", "still")
        assert service.check_options("standard", " left:0.02 ") == ("standard", "left:0.02")
        with pytest.raises(MRAAError, match="unknown mode"):
            service.check_options("sideways", "still")
        with pytest.raises(MRAAError, match="unknown background"):
            service.check_options("relative", "wobble")
        with pytest.raises(MRAAError, match="not available in the app"):
            service.check_options("relative", "/etc/schedule.npy")

    def test_animate_writes_a_video_cut_to_the_frame_limit(self, service, inputs):
        from mraa.data.video_io import probe_video, read_video

        seen = []
        report = lambda done, total: seen.append((done, total))  # noqa: E731
        result = service.animate(inputs["source"], inputs["driving"], "avd", "left", progress=report)
        frames = read_video(result.video)
        assert frames.shape == (6, 64, 64, 3)  # limit 6 of 8 frames
        assert probe_video(result.video).fps == pytest.approx(FPS)
        assert seen[0] == (0, 6) and seen[-1] == (6, 6)
        assert any("cut to its first 6 frames" in note for note in result.notes)
        assert any("no trained AVD" in note for note in result.notes)

    def test_old_results_are_removed(self, service, monkeypatch):
        monkeypatch.setattr("mraa.app.service.KEEP_RESULTS", 3)
        folders = [service._new_result_dir() for _ in range(5)]
        assert [f.exists() for f in folders] == [False, False, True, True, True]

    @pytest.mark.skipif(not has_segmentation(), reason="this build has no mraa.segmentation")
    def test_segment(self, service, inputs):
        from mraa.data.video_io import read_video

        view = service.segment_source(inputs["source"], 1e-3)
        assert service.display_scale == 4 and view.labels.shape == (256, 256)
        assert view.overlay.shape[1] == 256 and view.overlay.shape[0] > 256  # legend strip below
        assert view.shares.sum() == pytest.approx(100.0)
        first, video = service.segment_driving(inputs["driving"], 1e-3)
        frames = read_video(video)  # overlays with their legend strip, cut to the 6-frame limit
        assert frames.shape[0] == 6 and frames.shape[2] == first.overlay.shape[1] == 256
        with pytest.raises(MRAAError, match="threshold must be a non-negative"):
            service.segment_source(inputs["source"], -1)
        with pytest.raises(MRAAError, match="enter a background threshold"):
            service.segment_driving(inputs["driving"], None)

    @pytest.mark.skipif(not has_segmentation(), reason="this build has no mraa.segmentation")
    def test_swap(self, service, inputs):
        from mraa.data.video_io import read_video

        result = service.swap(inputs["source"], inputs["driving"], ["2"], feather=1.0)
        assert read_video(result.video).shape == (6, 256, 256, 3)  # enlarged to a readable size
        assert result.mode == "standard" and "parts 2 swapped" in result.notes
        with pytest.raises(MRAAError, match="no parts chosen"):
            service.swap(inputs["source"], inputs["driving"], [])
        with pytest.raises(MRAAError, match="part 3 does not exist"):
            service.swap(inputs["source"], inputs["driving"], "3")

    def test_crop_preview_and_paste_back(self, service, inputs, tmp_path):
        """A real photo (the public-domain astronaut) in a portrait frame, framed on the face, pasted back."""
        from mraa.data.video_io import probe_video, read_image, read_video, write_image

        photo = read_image(Path(__file__).parent / "data" / "prepare" / "astronaut.jpg")
        portrait = np.full((301, 221, 3), 90, np.uint8)
        portrait[30:286, :] = photo[:, 20:241]
        write_image(tmp_path / "portrait.png", portrait)
        image, line = service.crop_preview(tmp_path / "portrait.png", inputs["driving"], "face")
        assert image.shape[0] == 256 and line.startswith("Crop: face (source box from face")
        # the synthetic driving figure has no face: the face crop is taken around its silhouette's head
        assert "no face found in driving frames" not in line
        result = service.animate(tmp_path / "portrait.png", inputs["driving"], "relative", crop="face",
                                 paste_back=True)  # fmt: skip
        frames = read_video(result.video)
        assert frames.shape == (6, 300, 220, 3) and probe_video(result.video).num_frames == 6
        far = np.abs(frames[:, 250:].astype(int) - portrait[250:300, :220].astype(int))
        assert far.mean() < 3  # away from the face the source shows through (up to H.264 rounding)
        sized = service.animate(tmp_path / "portrait.png", inputs["driving"], "relative", crop="center",
                                output_size="96x80")  # fmt: skip
        assert read_video(sized.video).shape == (6, 80, 96, 3)
        with pytest.raises(MRAAError, match="unknown crop"):
            service.animate(tmp_path / "portrait.png", inputs["driving"], crop="sideways")


# ----------------------------------------------------------------------------- command line
def test_cli_help_and_argument_errors(capsys):
    from mraa.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["app", "--help"])
    assert exit_info.value.code == 0
    assert "--max-upload-mb" in capsys.readouterr().out
    assert main(["app", "--port", "70000"]) == 2
    expected = "--port must be between" if importlib.util.find_spec("gradio") else "pip install -e '.[app]'"
    assert expected in capsys.readouterr().err


def test_batch_size_default_is_animates(tmp_path):
    """``mraa app`` and ``mraa animate`` leave --batch-size to the device's default (1 on CPU)."""
    from mraa.app import create_service
    from mraa.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["app"]).batch_size is None
    assert parser.parse_args(["animate"]).batch_size is None
    service = create_service(device="cpu", work_dir=tmp_path)
    assert service.animator.batch_size == 1


@pytest.mark.skipif(importlib.util.find_spec("gradio") is None, reason="needs the app extra (gradio)")
def test_cli_refuses_a_busy_port_before_loading_a_model(capsys, tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        from mraa.cli import main

        assert main(["app", "--port", str(port), "--checkpoint", str(tmp_path / "missing.pth")]) == 2
    assert f"cannot listen on 127.0.0.1 port {port}" in capsys.readouterr().err
    assert main(["app", "--samples", str(tmp_path / "nowhere")]) == 2
    assert "--samples folder not found" in capsys.readouterr().err


# ----------------------------------------------------------------------------- in a real browser
def _missing(reason: str) -> None:
    """Skip on a developer machine; fail under CI, where the browser test must run."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason}; CI=true, so the browser test may not be skipped", pytrace=False)
    pytest.skip(reason)


def _chromium() -> str:
    for candidate in (os.environ.get("MRAA_CHROMIUM"), "chromium", "chromium-browser"):
        path = candidate and shutil.which(candidate)
        if path:
            return path
    _missing("no Chromium found (install Debian's chromium: bash scripts/install_browser.sh)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def chromium() -> str:
    """The Chromium binary, once gradio and playwright are known to be there (else skip or, in CI, fail)."""
    if importlib.util.find_spec("gradio") is None:
        _missing("gradio is not installed (pip install -e '.[app]')")
    if importlib.util.find_spec("playwright") is None:
        _missing("playwright is not installed (pip install playwright; it needs no browser download)")
    return _chromium()


@pytest.fixture(scope="module")
def served_app(chromium, inputs, tmp_path_factory):
    """The app on a free localhost port with the tiny config's random model, and its service."""
    from mraa.app import launch_app
    from mraa.checkpoint import save_checkpoint
    from mraa.config import load_config
    from mraa.models import build_models

    root = Path(__file__).resolve().parents[1]
    cfg = load_config(root / "configs" / "tiny.yaml")
    torch.manual_seed(0)
    checkpoint = save_checkpoint(
        tmp_path_factory.mktemp("app-model") / "tiny.pth", build_models(cfg.model_params), cfg
    )
    animator = Animator.from_checkpoint(checkpoint)
    service = AnimationService(
        animator,
        tmp_path_factory.mktemp("app-work"),
        Limits(max_upload_mb=1, max_frames=100),
        Samples(inputs["source"], inputs["driving"]),
        "tiny",
    )
    blocks, url = launch_app(service, port=_free_port(), block=False)
    yield url, service
    blocks.close()


class Browser:
    """The Playwright page and the requests it made to anything but the app."""

    def __init__(self, page, external_requests: list[str]) -> None:
        self.page, self.external_requests = page, external_requests


@pytest.fixture(scope="module")
def browser(chromium, served_app):
    from playwright.sync_api import sync_playwright

    url, _ = served_app
    with sync_playwright() as driver:
        # Playwright starts Chromium with a fresh temporary profile (--user-data-dir) of its own
        browser = driver.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 960})
        page.set_default_timeout(30_000)
        external: list[str] = []
        page.on("request", lambda r: None if r.url.startswith(url) else external.append(r.url))
        page.goto(url)
        page.wait_for_selector("#run-button")
        yield Browser(page, external)
        browser.close()


def _upload(page, elem_id: str, path: Path) -> None:
    component = page.locator(f"#{elem_id}")
    clear = component.get_by_role("button", name="Clear")
    if clear.count():  # a file is already there: remove it first, as a user would
        clear.click()
    component.locator("input[type=file]").set_input_files(str(path))


def _wait_text(page, elem_id: str, text: str) -> str:
    locator = page.locator(f"#{elem_id}")
    locator.filter(has_text=text).wait_for()
    return locator.inner_text()


def _wait_video(page, elem_id: str) -> dict:
    """Wait until the video in ``elem_id`` has decoded data, play it until its clock moves, and report
    what the browser sees."""
    video = f"document.querySelector('#{elem_id} video')"
    page.wait_for_function(f"() => {video} !== null && {video}.readyState >= 2")
    page.evaluate(f"async () => {{ const v = {video}; v.muted = true; v.currentTime = 0; await v.play(); }}")
    page.wait_for_function(f"() => {video}.currentTime > 0")  # it really plays
    return page.evaluate(
        f"""() => {{ const v = {video};
            return {{src: v.currentSrc, width: v.videoWidth, height: v.videoHeight, duration: v.duration,
                     error: v.error && v.error.code}}; }}"""
    )


def _use_samples(page) -> None:
    page.click("#samples-button")
    _wait_text(page, "source-status", "source.png is ready")
    _wait_text(page, "driving-status", f"{NUM_FRAMES} frames, {FPS:g} fps is ready")


def _fetch_video(page, src: str, tmp_path: Path) -> np.ndarray:
    from mraa.data.video_io import read_video

    response = page.request.get(src)
    assert response.ok, response.status
    path = tmp_path / "downloaded.mp4"
    path.write_bytes(response.body())
    return read_video(path)


def test_browser_bad_uploads_show_messages(browser, inputs):
    page = browser.page
    _upload(page, "source-upload", inputs["not_image"])
    text = _wait_text(page, "source-status", "Error")
    assert "holiday.png is not an image mraa can read" in text
    _upload(page, "driving-upload", inputs["no_frames"])
    assert "empty.mp4 has no frames" in _wait_text(page, "driving-status", "Error")
    _upload(page, "driving-upload", inputs["too_large"])  # refused by the upload limit (1 MB here)
    toast = page.locator(".toast-body").filter(has_text="huge.mp4")
    toast.wait_for()
    assert "exceed the maximum allowed size" in toast.inner_text()


def test_browser_animation_plays(browser, served_app, tmp_path):
    url, page = served_app[0], browser.page
    _use_samples(page)
    page.locator("#mode").get_by_label("relative", exact=True).check()
    page.click("#crop-preview-button")  # the boxes are shown before animating
    assert "Crop: none" in _wait_text(page, "animate-status", "Crop:")
    page.locator("#crop-preview img").wait_for()
    start = time.perf_counter()
    page.click("#run-button")
    status = _wait_text(page, "animate-status", "Done")
    assert f"mode relative, {NUM_FRAMES} frames at {FPS:g} fps" in status
    video = _wait_video(page, "result-video")
    assert video["error"] is None and (video["width"], video["height"]) == (64, 64)
    assert video["duration"] == pytest.approx(NUM_FRAMES / FPS, abs=0.15)
    assert _fetch_video(page, video["src"], tmp_path).shape == (NUM_FRAMES, 64, 64, 3)
    seconds = time.perf_counter() - start
    shot = tmp_path / "app.png"
    page.screenshot(path=str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("MRAA_APP_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["MRAA_APP_SCREENSHOT"])
    assert seconds < 30
    with urllib.request.urlopen(url, timeout=10) as response:  # the server survived the bad uploads
        assert response.status == 200
    assert browser.external_requests == []  # everything comes from the local server


@pytest.mark.skipif(not has_segmentation(), reason="this build has no mraa.segmentation")
def test_browser_segment_and_swap_by_click(browser, served_app):
    service, page = served_app[1], browser.page
    _use_samples(page)
    page.get_by_role("tab", name="Segmentation").click()
    page.click("#segment-button")
    assert "source part" in _wait_text(page, "segment-status", "Segmented")
    page.locator("#segment-source img").wait_for()
    _wait_video(page, "segment-driving")

    page.get_by_role("tab", name="Part swap").click()
    page.click("#swap-show-button")
    _wait_text(page, "swap-status", "Click on a part")
    # click on the pixel deepest inside part 1 of the first driving frame, as the server draws it
    view, _ = service.segment_driving(service.samples.driving, 1e-3, first_only=True)
    part = int(np.bincount(view.labels.ravel(), minlength=2)[1:].argmax()) + 1
    ys, xs = np.nonzero(view.labels == part)
    y, x = int(np.median(ys)), int(np.median(xs[ys == int(np.median(ys))]))
    image = page.locator("#swap-driving img")
    size = image.evaluate("i => [i.naturalWidth, i.naturalHeight, i.clientWidth, i.clientHeight]")
    scale = min(size[2] / size[0], size[3] / size[1], 1.0)
    offset = ((size[2] - size[0] * scale) / 2, (size[3] - size[1] * scale) / 2)
    image.click(position={"x": offset[0] + (x + 0.5) * scale, "y": offset[1] + (y + 0.5) * scale})
    assert f"Added part {part}" in _wait_text(page, "swap-status", "Added part")
    assert page.locator("#swap-parts input[type=checkbox]").nth(part - 1).is_checked()
    page.click("#swap-button")
    assert f"parts {part} swapped" in _wait_text(page, "swap-status", "Done")
    video = _wait_video(page, "swap-video")
    assert (video["width"], video["height"]) == (256, 256) and video["error"] is None


def main(argv: list[str] | None = None) -> int:
    """Screenshot of the page after an animation, with the shipped model and samples unless told otherwise
    (for the docs): ``python tests/test_app.py docs/images/app.png [--checkpoint P --config C --samples D]``."""
    import argparse

    from playwright.sync_api import sync_playwright

    from mraa.app import create_service, launch_app

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("output", help="PNG to write")
    parser.add_argument("--checkpoint", help="default: the shipped model")
    parser.add_argument("--config")
    parser.add_argument(
        "--samples", help="folder with the sample image and video (default: the shipped ones)"
    )
    args = parser.parse_args(argv)
    service = create_service(args.checkpoint, args.config, samples_dir=args.samples)
    if not service.samples.available:
        raise SystemExit("no sample image and video found: pass --samples DIR")
    executable = os.environ.get("MRAA_CHROMIUM") or shutil.which("chromium")
    blocks, url = launch_app(service, port=_free_port(), block=False)
    try:
        with sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 1280, "height": 960})
            page.set_default_timeout(120_000)
            page.goto(url)
            page.click("#samples-button")
            _wait_text(page, "source-status", "is ready")
            _wait_text(page, "driving-status", "is ready")
            page.click("#crop-preview-button")
            _wait_text(page, "animate-status", "Crop:")
            page.click("#run-button")
            _wait_text(page, "animate-status", "Done")
            _wait_video(page, "result-video")
            page.wait_for_timeout(500)  # a frame from the middle of the result
            page.screenshot(path=args.output)
            browser.close()
    finally:
        blocks.close()
        service.cleanup()
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
