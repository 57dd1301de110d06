#!/usr/bin/env python
"""Time from ``mraa animate --pairs`` with many rows to its first written output, and of its planning alone.

Prints one JSON object. Makes (in a temporary folder) 3 tiny source images, 3 tiny driving videos and a CSV of
``--rows`` rows (default 10,000) cycling over their pairs, each with its own output name; then

- ``planning_s``: reading the CSV and checking every output against every input (``plan_jobs`` +
  ``check_jobs``, what runs before the model loads), in this process;
- ``first_output_s``: ``python -m mraa animate --pairs CSV`` with the shipped model in a child process, from
  its start until it prints its first ``wrote`` line (the child is then stopped);
- ``first_output_1_row_s``: the same for a CSV of one row: the fixed cost (imports, model load, one pair).

    python benchmarks/pairs_planning.py --rows 10000
    python benchmarks/pairs_planning.py --rows 2000 --no-run     # planning only
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_inputs(folder: Path, rows: int) -> Path:
    """3 sources, 3 driving videos and a CSV of ``rows`` pairs (output column set) in ``folder``."""
    from mraa.data.video_io import write_image, write_video

    rng = np.random.default_rng(0)
    for i in range(3):
        write_image(folder / f"s{i}.png", rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
        write_video(folder / f"d{i}.mp4", [np.full((64, 64, 3), 60 * t, np.uint8) for t in range(2)], fps=10)
    lines = ["source,driving,output"] + [
        f"s{n % 3}.png,d{n // 3 % 3}.mp4,out/r{n:05d}.mp4" for n in range(rows)
    ]
    (folder / "out").mkdir()
    csv_path = folder / "pairs.csv"
    csv_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return csv_path


def time_planning(csv_path: Path) -> tuple[float, int]:
    import mraa.inference.pipeline  # noqa: F401  (imported by check_jobs: torch's import is not planning)
    from mraa.cli import build_parser
    from mraa.cli.animate import check_jobs, plan_jobs

    args = build_parser().parse_args(["animate", "--pairs", str(csv_path)])
    start = time.perf_counter()
    jobs, batch = plan_jobs(args)
    check_jobs(jobs, batch, args.visualize)
    return time.perf_counter() - start, len(jobs)


def time_first_output(csv_path: Path, timeout: float) -> float | None:
    env = dict(os.environ, OMP_NUM_THREADS="2")
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "mraa", "animate", "--pairs", str(csv_path), "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
    )  # fmt: skip
    try:
        for line in process.stdout:
            if ": wrote " in line:
                return time.perf_counter() - start
            if time.perf_counter() - start > timeout:
                return None
        return None
    finally:
        process.kill()
        process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=10000)
    parser.add_argument("--no-run", action="store_true", help="time the planning only")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = make_inputs(Path(tmp), args.rows)
        planning, jobs = time_planning(csv_path)
        first = None if args.no_run else time_first_output(csv_path, args.timeout)
        one_row = Path(tmp) / "one.csv"
        one_row.write_text("source,driving,output\ns0.png,d0.mp4,out/single.mp4\n", encoding="utf-8")
        single = None if args.no_run else time_first_output(one_row, args.timeout)
    result = {
        "rows": args.rows,
        "jobs": jobs,
        "planning_s": round(planning, 3),
        "first_output_s": None if first is None else round(first, 2),
        "first_output_1_row_s": None if single is None else round(single, 2),
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
