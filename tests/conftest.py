"""Shared fixtures: two threads, fixed seeds, the tiny config and paths to the shared reference data."""

from __future__ import annotations

import contextlib
import os
import subprocess

# idle OpenMP threads sleep instead of spinning: on a loaded 2-core machine spinning made tests 3-4x slower
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# a fixed thread count (mraa.governor off), so results do not depend on what else the machine runs
os.environ.setdefault("MRAA_ADAPTIVE_THREADS", "0")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
CASE_A = SHARED / "reference" / "parity" / "caseA"
LAYOUTS = SHARED / "reference" / "checkpoint-layout"

torch.set_num_threads(2)

# headless Chromium as root on a machine with no network (Debian's chromium; tests/test_app.py, test_web.py)
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow")


def pytest_collection_modifyitems(config, items):
    skip_slow = pytest.mark.skip(reason="slow: use --runslow")
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "slow" in item.keywords and not config.getoption("--runslow"):
            item.add_marker(skip_slow)
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def tiny_cfg():
    from mraa.config import load_config

    return load_config(ROOT / "configs" / "tiny.yaml", strict=True)


@pytest.fixture
def tiny_models(tiny_cfg):
    from mraa.models import build_models

    torch.manual_seed(0)
    return build_models(tiny_cfg.model_params).eval()


def require_case_a():
    if not (CASE_A / "io.pt").is_file():
        pytest.skip(f"parity reference not found at {CASE_A}")
    return CASE_A


@contextlib.contextmanager
def tmpfs(folder, size: str):
    """A tmpfs of ``size`` (e.g. "8k") mounted on a new ``folder`` for a full-disk test (needs root and mount;
    the test is skipped otherwise); unmounted afterwards."""
    folder.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True
    )
    if result.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)
