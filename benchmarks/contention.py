#!/usr/bin/env python
"""The same animation idle, beside busy neighbour processes and under the app's concurrent requests, with
mraa's thread settings (mraa.runtime) against the previous default and hand-tuned settings. Prints JSON.

Every measurement runs in a fresh subprocess, because OpenMP reads its environment once, when torch loads.
The child times ``mraa.pipeline.animate_file`` (decode -> animate -> encode, as ``mraa animate`` does) after
a 2-frame warm-up run; model loading and interpreter start are not timed. Busy neighbours are
``python -c "while 1: pass"`` processes started and killed here. Rounds are interleaved (every setting once
per round) and the median over rounds is reported, with the load average before and after each run, since
the machine may be shared.

Settings:
- ``before``: torch imported before mraa and ``MRAA_ADAPTIVE_THREADS=0``, so OpenMP keeps its own defaults
  (the behaviour before mraa.runtime: spinning wait policy, torch's thread count, no governor);
- ``default``: what ``mraa animate`` does now (``mraa.runtime.prepare_process``: OpenMP's short spin and
  the thread governor, mraa.governor);
- hand-tuned: ``passive-1t`` (OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=1), ``passive-2t`` (mraa's default
  before the governor, on 2 CPUs),
  ``active-2t`` (OMP_WAIT_POLICY=ACTIVE OMP_NUM_THREADS=2), and ``spin-3k`` / ``spin-30k`` / ``spin-300k``
  (GOMP_SPINCOUNT=N with 2 threads: spin N times, then sleep; 300k is libgomp's own default).

Models: ``shipped`` (the shipped model, its sample source and a 100-frame clip made from its driving video,
played forward then backward), ``photo`` (the shipped model on the user's path: a real photo,
tests/data/photos/astronaut_portrait.jpg, framed with ``crop="auto"`` and pasted back into the full 384x512
photo, driven by a 100-frame 512x512 clip of another real photo under a slow hand-held camera; no real video
ships with mraa) and ``vox256`` (configs/vox256.yaml, random weights, 4 frames).

    python benchmarks/contention.py --rounds 3                         # idle, 1 and 2 neighbours, the app
    python benchmarks/contention.py --models shipped --neighbours 0,1 --settings before,default
    python benchmarks/contention.py --official OFFICIAL_DIR  # adds the idle side-by-side run
    python benchmarks/contention.py --train data/synth --rounds 2 --settings before,default  # training
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "src" / "mraa" / "assets" / "default"
PHOTOS = ROOT / "tests" / "data" / "photos"  # public-domain / CC0 photos (their README gives the sources)
OFFICIAL_BENCH = ROOT.parent / "shared" / "tools" / "official_bench.py"
THREAD_ENV = (
    "OMP_WAIT_POLICY",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "GOMP_SPINCOUNT",
    "MRAA_ADAPTIVE_THREADS",
)
SETTINGS = {  # name: environment (None: remove the variable)
    "before": {"MRAA_ADAPTIVE_THREADS": "0"},
    "default": {},
    "passive-1t": {"OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1"},
    "passive-2t": {"OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "2"},  # the default before the governor
    "active-2t": {"OMP_WAIT_POLICY": "ACTIVE", "OMP_NUM_THREADS": "2"},
    "spin-3k": {"GOMP_SPINCOUNT": "3000", "OMP_NUM_THREADS": "2"},
    "spin-30k": {"GOMP_SPINCOUNT": "30000", "OMP_NUM_THREADS": "2"},
    "spin-300k": {"GOMP_SPINCOUNT": "300000", "OMP_NUM_THREADS": "2"},
}
VOX_FRAMES = 4
PHOTO_OPTIONS = {"crop": "auto", "paste_back": "regions"}


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


# ----------------------------------------------------------------------------- child
def child(args) -> None:
    if args.setting == "before":
        import torch  # noqa: F401  (OpenMP starts with its own defaults; mraa then changes nothing)
    from mraa import runtime

    plan = runtime.prepare_process()
    import torch

    from mraa.pipeline import animate_file

    animator = load_animator(args.model, Path(args.work))
    run_once = make_app_run(animator, args) if args.app else None
    source, options = str(ASSETS / "source.png"), {"progress": False}
    if args.model == "photo":  # the user's path: frame the subject, animate, paste back at full size
        source, options = str(PHOTOS / "astronaut_portrait.jpg"), {**options, **PHOTO_OPTIONS}
    warm_up = Path(args.work) / f"warm-up-{os.getpid()}.mp4"
    animate_file(animator, source, args.warm_up, warm_up, **options)
    warm_up.unlink()
    times = []
    for i in range(args.repeats):
        output = Path(args.work) / f"out-{os.getpid()}-{i}.mp4"
        start = time.perf_counter()
        if run_once:
            run_once()
        else:
            animate_file(animator, source, args.driving, output, **options)
        times.append(time.perf_counter() - start)
        output.unlink(missing_ok=True)
    print(json.dumps({"seconds": min(times), "threads": torch.get_num_threads(), "plan": plan.describe()}))


def load_animator(model: str, work: Path):
    from mraa.animate import Animator

    if model in ("shipped", "photo"):
        return Animator.from_checkpoint()
    import torch

    from mraa.checkpoint import save_checkpoint
    from mraa.config import load_config
    from mraa.models import build_models

    cfg = load_config(ROOT / "configs" / "vox256.yaml")
    torch.manual_seed(0)
    checkpoint = work / "vox256-random.pth"
    if not checkpoint.is_file():
        save_checkpoint(checkpoint, build_models(cfg.model_params).eval(), cfg)
    return Animator.from_checkpoint(checkpoint, cfg)


def make_app_run(animator, args):
    """Two requests to the app's service layer at once, from two threads (the server's way)."""
    from concurrent.futures import ThreadPoolExecutor

    from mraa.app.service import AnimationService

    service = AnimationService(animator, work_dir=Path(args.work) / f"app-{os.getpid()}")

    def request(_):
        return service.animate(str(ASSETS / "source.png"), args.driving, mode="relative")

    def run():
        with ThreadPoolExecutor(args.app) as pool:
            list(pool.map(request, range(args.app)))

    return run


# ----------------------------------------------------------------------------- parent
def make_clips(work: Path) -> dict[str, str]:
    """The 100-frame clip (shipped driving video forward then backward), the short vox256 clip, and the
    100-frame 512x512 clip of a real photo under a moving camera (no real video ships with mraa)."""
    sys.path.insert(0, str(ROOT / "src"))
    from mraa.data.video_io import read_video, write_video

    frames = list(read_video(ASSETS / "driving.mp4"))
    clip = (frames + frames[::-1])[:100]
    write_video(work / "clip100.mp4", clip, fps=25)
    write_video(work / "clip-vox.mp4", clip[:VOX_FRAMES], fps=25)
    write_video(work / "warm-up.mp4", clip[:2], fps=25)
    write_video(work / "clip-photo.mp4", camera_clip(PHOTOS / "cameraman.jpg", 100), fps=25)
    return {"shipped": str(work / "clip100.mp4"), "vox256": str(work / "clip-vox.mp4"),
            "photo": str(work / "clip-photo.mp4")}  # fmt: skip


def camera_clip(photo: Path, count: int, size: int = 512) -> list:
    """``count`` frames (size x size) of ``photo`` under a slow hand-held camera: zoom, pan and roll."""
    import math

    import numpy as np
    from PIL import Image

    image = Image.open(photo).convert("RGB").resize((size, size), Image.Resampling.BICUBIC)
    frames = []
    for t in range(count):
        phase = 2 * math.pi * t / count
        zoom = 1.0 + 0.12 * (1 - math.cos(phase)) / 2
        angle = math.radians(3.0 * math.sin(phase))
        dx, dy = 18 * math.sin(phase), 10 * math.sin(2 * phase)
        cos, sin = math.cos(angle) / zoom, math.sin(angle) / zoom
        centre = size / 2
        # output pixel -> input pixel (PIL's inverse affine): rotate and scale about the centre, then pan
        a, b, d, e = cos, -sin, sin, cos
        c = centre + dx - a * centre - b * centre
        f = centre + dy - d * centre - e * centre
        warped = image.transform((size, size), Image.Transform.AFFINE, (a, b, c, d, e, f),
                                 Image.Resampling.BILINEAR)  # fmt: skip
        frames.append(np.asarray(warped))
    return frames


def child_env(setting: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in THREAD_ENV}
    env.update(SETTINGS[setting])
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run_child(
    setting: str, model: str, driving: str, work: Path, app: int, repeats: int, timeout: float
) -> dict:
    cmd = [sys.executable, __file__, "--child", "--setting", setting, "--model", model, "--driving", driving]
    cmd += ["--work", str(work), "--app", str(app), "--repeats", str(repeats)]
    cmd += ["--warm-up", str(work / "warm-up.mp4")]
    before = loadavg()
    try:
        result = subprocess.run(cmd, env=child_env(setting), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"over {timeout:g} s", "load_before": before, "load_after": loadavg()}
    if result.returncode != 0:
        return {"error": (result.stderr.strip().splitlines() or ["?"])[-1], "load_before": before}
    out = json.loads(result.stdout.strip().splitlines()[-1])
    return {**out, "load_before": before, "load_after": loadavg()}


def start_neighbours(count: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while 1: pass"]) for _ in range(count)]


def stop_neighbours(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.kill()
        process.wait()


def summarise(runs: list[dict]) -> dict:
    seconds = [r["seconds"] for r in runs if "seconds" in r]
    summary = {"median_s": statistics.median(seconds) if seconds else None, "runs_s": seconds}
    summary["load_before"] = [r["load_before"][0] for r in runs]
    summary["load_after"] = [r.get("load_after", [None])[0] for r in runs]
    errors = [r["error"] for r in runs if "error" in r]
    if errors:
        summary["errors"] = errors
    if runs and "plan" in runs[-1]:
        summary["plan"], summary["threads"] = runs[-1]["plan"], runs[-1]["threads"]
    return summary


def contention(args, work: Path, clips: dict[str, str]) -> dict:
    scenarios = [(f"{n}-neighbours", n, 0) for n in args.neighbours]
    if args.app:
        scenarios.append((f"app-{args.app}-requests", 0, args.app))
    runs: dict = {}
    for _ in range(args.rounds):
        for model in args.models:
            for name, neighbours, app in scenarios:
                busy = start_neighbours(neighbours)
                try:
                    time.sleep(0.5 if neighbours else 0)
                    for setting in args.settings:
                        key = (model, name, setting)
                        run = run_child(setting, model, clips[model], work, app, args.repeats, args.timeout)
                        runs.setdefault(key, []).append(run)
                        print(json.dumps({"run": key, **run}), file=sys.stderr, flush=True)  # progress
                finally:
                    stop_neighbours(busy)
    results: dict = {}
    for (model, name, setting), model_runs in runs.items():
        results.setdefault(model, {}).setdefault(name, {})[setting] = summarise(model_runs)
    return results


def ratios(results: dict) -> dict:
    """The issue's targets: default idle / best hand-tuned idle, default with a neighbour / default idle."""
    out = {}
    for model, scenarios in results.items():
        idle = scenarios.get("0-neighbours", {})
        default_idle = (idle.get("default") or {}).get("median_s")
        if not default_idle:
            continue
        tuned = [s["median_s"] for k, s in idle.items() if k != "default" and s.get("median_s")]
        entry = {"default_idle_over_best_other": default_idle / min(tuned) if tuned else None}
        for name, settings in scenarios.items():
            if name != "0-neighbours":
                for setting in ("default", "before"):
                    base = (idle.get(setting) or {}).get("median_s")
                    value = (settings.get(setting) or {}).get("median_s")
                    requests = int(name.split("-")[1]) if name.startswith("app-") else 1
                    if base and value:  # per request in the app case
                        entry[f"{setting}_{name}_over_idle"] = value / requests / base
        out[model] = entry
    return out


def official(args) -> list[dict]:
    """The idle side-by-side against the official loop: OpenMP's defaults, PASSIVE, and mraa's default."""
    rows = []
    for setting in ("before", "passive-2t", "default"):
        cmd = [sys.executable, str(OFFICIAL_BENCH), "--official", args.official, "--config", "vox256"]
        cmd += ["--frames", str(args.official_frames), "--repeats", "3", "--mode", "avd"]
        before = loadavg()
        result = subprocess.run(cmd, env=child_env(setting), capture_output=True, text=True, check=False)
        row = {"setting": setting, "load_before": before, "load_after": loadavg()}
        if result.returncode == 0:
            row.update(json.loads(result.stdout.strip().splitlines()[-1]))
        else:
            row["error"] = (result.stderr.strip().splitlines() or ["?"])[-1]
        rows.append(row)
    return rows


def train_workers(args, work: Path) -> dict:
    """Wall time of ``mraa train`` (synth64 config, one short epoch) with 0, 1 and 2 data-loader workers,
    idle and beside ``--neighbours`` busy processes, for each of ``--settings`` (e.g. before,default)."""
    runs: dict = {}
    for round_index in range(args.rounds):
        for neighbours in args.neighbours:
            busy = start_neighbours(neighbours)
            try:
                for workers in (0, 1, 2):
                    for setting in args.settings:
                        log_dir = work / f"train-{round_index}-{neighbours}-{workers}-{setting}"
                        run = train_once(args, log_dir, workers, setting)
                        key = f"{workers}-workers {setting}"
                        runs.setdefault(f"{neighbours}-neighbours", {}).setdefault(key, []).append(run)
                        print(json.dumps({"run": [neighbours, key], **run}), file=sys.stderr, flush=True)
            finally:
                stop_neighbours(busy)
    return {name: {k: summarise(v) for k, v in by.items()} for name, by in runs.items()}


def train_once(args, log_dir: Path, workers: int, setting: str) -> dict:
    cmd = [sys.executable, "-m", "mraa", "train", "--config", str(ROOT / "configs" / "synth64.yaml")]
    cmd += ["--data", args.train, "--log-dir", str(log_dir), "--no-progress", "--seed", "0"]
    cmd += ["--workers", str(workers), "--set", "train_params.num_epochs=1"]
    cmd += ["--set", f"train_params.num_repeats={args.train_repeats}"]
    before = loadavg()
    start = time.perf_counter()
    result = subprocess.run(cmd, env=child_env(setting), capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        return {"error": (result.stderr.strip().splitlines() or ["?"])[-1], "load_before": before}
    return {"seconds": seconds, "load_before": before, "load_after": loadavg()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default="shipped,photo,vox256", type=lambda s: s.split(","))
    parser.add_argument(
        "--settings", default="before,default,passive-1t,active-2t", type=lambda s: s.split(",")
    )
    parser.add_argument("--neighbours", default="0,1,2", type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--app", type=int, default=2, help="concurrent app requests (0: skip)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per child (the fastest is kept)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per child before it is stopped")
    parser.add_argument("--official", help="the official code's scratch folder: adds the idle side-by-side")
    parser.add_argument("--official-frames", type=int, default=8)
    parser.add_argument(
        "--train", help="a dataset folder (mraa synth): time training with 0/1/2 workers only"
    )
    parser.add_argument("--train-repeats", type=int, default=1, help="train_params.num_repeats of that run")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--setting", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--driving", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--warm-up", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    unknown = set(args.settings) - set(SETTINGS)
    if unknown:
        parser.error(f"unknown settings {sorted(unknown)}; choose from {', '.join(SETTINGS)}")
    report: dict = {"cpus": os.cpu_count(), "load_start": loadavg(), "rounds": args.rounds}
    with tempfile.TemporaryDirectory(prefix="mraa-contention-") as folder:
        work = Path(folder)
        if args.train:
            report["train"] = train_workers(args, work)
            report["load_end"] = loadavg()
            print(json.dumps(report, indent=1))
            return
        clips = make_clips(work)
        report["results"] = contention(args, work, clips)
    report["ratios"] = ratios(report["results"])
    if args.official:
        report["official_idle"] = official(args)
    report["load_end"] = loadavg()
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
