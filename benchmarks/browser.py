#!/usr/bin/env python
"""Frames per second of the browser page (``mraa export --format web``) in headless Chromium (WASM backend)
beside Python's onnxruntime backend running the same graphs on the same machine. Prints one JSON object.

Two models: the shipped one (64x64) and vox256-sized random weights (256x256, BatchNorm statistics
calibrated on the inputs as in benchmarks/animate.py). Both sides animate the same image-like random frames
in the same mode after one warm-up frame; the browser runs with each WASM thread count of ``--threads``
(default 1 and 2; the page is cross-origin isolated by mraa's server), onnxruntime with as many threads as
torch. Needs what tests/test_web.py needs (chromium, playwright, the onnx extra, the onnxruntime-web files
from ``make venv``).

    python benchmarks/browser.py --frames 16 --vox-frames 4 --mode relative
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from animate import calibrate_batchnorm, load_average, smooth_images  # noqa: E402

from mraa.animate import DEFAULT_MODEL_DIR, Animator  # noqa: E402
from mraa.config import load_config  # noqa: E402
from mraa.export.web import build_web, load_models, runtime_version  # noqa: E402
from mraa.export.web_serve import serve_in_thread  # noqa: E402
from mraa.models import build_models  # noqa: E402

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
BROWSER_JS = """async ([frames, size, mode]) => {
  await window.mraa.ready;
  const engine = window.mraa.state.engine;
  const rgba = frames.map((b64) => Uint8ClampedArray.from(atob(b64), (c) => c.charCodeAt(0)));
  const state = await engine.encodeSource(rgba[0]);
  let { initial } = await engine.animate(state, rgba[1], null, mode);  // warm-up and the reference frame
  const start = performance.now();
  for (const frame of rgba.slice(1)) ({ initial } = await engine.animate(state, frame, initial, mode));
  const seconds = (performance.now() - start) / 1000;
  return { fps: (rgba.length - 1) / seconds, backend: engine.backend, threads: engine.threads };
}"""


def vox256_models():
    cfg = load_config(ROOT / "configs" / "vox256.yaml")
    torch.manual_seed(0)
    models = build_models(cfg.model_params).eval()
    with torch.no_grad():  # a moderate heatmap spread, as benchmarks/animate.py
        models.region_predictor.regions.weight.mul_(0.2)
    calibrate_batchnorm(models, smooth_images(1, 256, 1), smooth_images(4, 256, 2))
    return models, cfg


def rgba_b64(frames: torch.Tensor) -> list[str]:
    """(T, 3, H, W) in [0, 1] -> base64 RGBA bytes per frame."""
    u8 = (frames.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1)
    rgba = torch.cat([u8, torch.full_like(u8[..., :1], 255)], -1)
    return [base64.b64encode(f.contiguous().numpy().tobytes()).decode() for f in rgba]


def python_fps(models, cfg, folder: Path, frames: torch.Tensor, mode: str) -> float:
    animator = Animator(
        models, cfg.animate_params, backend="onnxruntime", onnx_dir=folder / "models", config=cfg
    )
    source = frames[:1]
    animator.animate(source, frames[1:2], mode=mode)  # warm-up
    start = time.perf_counter()
    animator.animate(source, frames[1:], mode=mode)
    return (len(frames) - 1) / (time.perf_counter() - start)


def browser_fps(chromium: str, folder: Path, frames: torch.Tensor, mode: str, threads: int) -> dict:
    from playwright.sync_api import sync_playwright

    server, url = serve_in_thread(folder)
    try:
        with sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_FLAGS)
            page = browser.new_page()
            page.set_default_timeout(600_000)
            page.goto(url + f"?backend=wasm&threads={threads}")
            result = page.evaluate(BROWSER_JS, [rgba_b64(frames), list(frames.shape[2:]), mode])
            result["chromium"] = browser.version
            browser.close()
    finally:
        server.shutdown()
        server.server_close()
    return result


def measure(
    name: str, models, cfg, frames: torch.Tensor, mode: str, chromium: str, threads: list[int]
) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="mraa-web-bench-"))
    try:
        build_web(models, cfg, folder)
        # quantize as the browser sees the frames (RGBA bytes)
        frames = (frames.clamp(0, 1) * 255).round() / 255
        before = load_average()
        browser = {n: browser_fps(chromium, folder, frames, mode, n) for n in threads}
        python = python_fps(models, cfg, folder, frames, mode)
        best = max(b["fps"] for b in browser.values())
        return {
            "model": name,
            "size": list(frames.shape[2:]),
            "mode": mode,
            "frames": len(frames) - 1,
            "browser_wasm_fps_by_threads": {b["threads"]: round(b["fps"], 3) for b in browser.values()},
            "python_onnxruntime_fps": round(python, 3),
            "python_threads": torch.get_num_threads(),
            "best browser / python": round(best / python, 3),
            "chromium": next(iter(browser.values()))["chromium"],
            "load_average_before_after": [before, load_average()],
        }
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=16, help="timed frames for the shipped model")
    parser.add_argument("--vox-frames", type=int, default=4, help="timed frames for vox256 (0: skip it)")
    parser.add_argument("--mode", default="relative", choices=("relative", "standard", "avd"))
    parser.add_argument(
        "--threads", default="1,2", help="WASM thread counts to run the page with (default 1,2)"
    )
    parser.add_argument("--chromium", default=os.environ.get("MRAA_CHROMIUM") or shutil.which("chromium"))
    args = parser.parse_args()
    if not args.chromium:
        sys.exit("error: no Chromium found (bash scripts/install_browser.sh, or --chromium PATH)")
    import onnxruntime

    results = []
    models, cfg, _ = load_models(DEFAULT_MODEL_DIR / "model.safetensors", DEFAULT_MODEL_DIR / "config.yaml")
    frames = smooth_images(args.frames + 1, 64, 3)
    threads = [int(n) for n in args.threads.split(",")]
    results.append(measure("shipped (64x64)", models, cfg, frames, args.mode, args.chromium, threads))
    if args.vox_frames:
        models, cfg = vox256_models()
        frames = smooth_images(args.vox_frames + 1, 256, 3)
        results.append(
            measure("vox256 random weights", models, cfg, frames, args.mode, args.chromium, threads)
        )
    cpu = subprocess.run(["sh", "-c", "lscpu | grep 'Model name'"], capture_output=True, text=True).stdout
    report = {
        "machine": {"cpu": cpu.split(":", 1)[-1].strip() or platform.processor(), "cores": os.cpu_count()},
        "onnxruntime": onnxruntime.__version__,
        "onnxruntime_web": runtime_version(),
        "results": results,
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
