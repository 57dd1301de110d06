"""`mraa animate --pairs` under torchrun: 2 CPU processes (gloo) share the pairs, each written exactly once."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch.distributed as dist

from mraa.animate import DEFAULT_MODEL_DIR
from mraa.data.video_io import probe_video, read_image, read_video, write_image, write_video

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.mark.skipif(
    not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed gloo"
)
def test_pairs_under_torchrun_are_shared_written_once_and_resumed(tmp_path):
    source = read_image(DEFAULT_MODEL_DIR / "source.png")
    write_image(tmp_path / "a.png", source)
    write_image(tmp_path / "b.png", np.ascontiguousarray(source[:, ::-1]))
    write_video(tmp_path / "d.mp4", read_video(DEFAULT_MODEL_DIR / "driving.mp4")[:3], fps=10)
    names = ["a", "b", "a2", "b2"]  # pair k goes to rank k % 2
    rows = [f"{'a' if n.startswith('a') else 'b'}.png,d.mp4,out/{n}.mp4" for n in names]
    (tmp_path / "jobs.csv").write_text("source,driving,output\n" + "\n".join(rows) + "\n")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "b2.mp4").write_bytes(b"finished earlier")  # a restarted batch skips it
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    args = ["-m", "mraa", "animate", "--pairs", "jobs.csv", "--output", "out/", "--quiet", "--device", "cpu"]
    proc = subprocess.run(
        [*command, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    written = re.findall(r": wrote (\S+) \(", proc.stdout)
    assert sorted(Path(p).name for p in written) == ["a.mp4", "a2.mp4", "b.mp4"]  # each pair once
    assert proc.stdout.count("summary:") == 1
    assert "summary: 3 done, 1 skipped, 0 failed (4 pairs" in proc.stdout
    assert "on 2 processes" in proc.stdout
    for name in ("a", "a2", "b"):
        assert probe_video(tmp_path / "out" / f"{name}.mp4").num_frames == 3
    assert (tmp_path / "out" / "b2.mp4").read_bytes() == b"finished earlier"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.mp4", "a2.mp4", "b.mp4", "b2.mp4"]
