"""Threads and the OpenMP wait policy of a process that computes (README "Threads and busy machines").

torch's CPU kernels run on an OpenMP pool (libgomp), which reads ``OMP_WAIT_POLICY`` and
``OMP_NUM_THREADS`` once, when the library is loaded by ``import torch``. Its idle threads spin for a few
milliseconds after each parallel region: the fast choice on an idle machine, the slow one beside a busy
process (the spinning threads take the cores the others need: an animation took 3.5x its idle time
beside one busy process; docs/benchmarks.md, "A busy machine"). So, before torch is loaded:

- compute threads = the CPUs this process may use: the affinity mask (``taskset``, ``docker --cpuset-cpus``)
  and the cgroup v2/v1 CPU quota (``docker --cpus``, Kubernetes limits), rounded down, at least 1. It is
  written to ``OMP_NUM_THREADS`` only when the user configured no thread count (``OMP_NUM_THREADS``,
  ``MKL_NUM_THREADS``) and, for the Python API, only when it is below the machine's CPU count;
- where the user configured no thread count, OpenMP keeps its short spin and :mod:`mraa.governor` follows
  the load while mraa computes: fewer compute threads while other processes use the CPUs, all of them
  when the machine is idle again;
- otherwise (a thread count set by the user, ``MRAA_ADAPTIVE_THREADS=0``, or no ``/proc/stat``):
  ``OMP_WAIT_POLICY=PASSIVE`` (idle threads sleep) unless the user set ``OMP_WAIT_POLICY`` or
  ``GOMP_SPINCOUNT``;
- I/O threads (ffmpeg decoding and encoding): 1 up to 4 CPUs, a quarter of them beyond (at most 4).

The command line calls :func:`prepare_process` before anything imports torch; ``import mraa`` calls
:func:`prepare_environment`, which writes nothing once torch (or another OpenMP runtime) is loaded (the
governor still runs then, unless the user set a thread count). mraa calls ``torch.set_num_threads`` only
through the governor, which stops for good once anyone else calls it: the user's call wins.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import sys
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from mraa import governor

log = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")
# variables by which a user chose the compute threads (then mraa writes none of its own)
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
WAIT_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
OPENMP_LIBRARIES = ("libgomp", "libiomp", "libomp")
_written: dict[str, str] = {}  # what prepare_environment wrote into os.environ (not the user's settings)


@dataclass(frozen=True)
class CpuBudget:
    """The CPUs a process may use and what limits them."""

    cpus: int
    affinity: int  # CPUs in the affinity mask
    quota: float | None  # cgroup CPU quota in CPUs (None: unlimited or unknown)

    @property
    def source(self) -> str:
        if self.quota is not None and math.floor(self.quota) < self.affinity:
            return f"cgroup quota {self.quota:g} CPUs"
        return f"affinity {self.affinity} of {os.cpu_count() or self.affinity} CPUs"


@dataclass(frozen=True)
class ThreadPlan:
    """The thread choice for one process."""

    budget: CpuBudget
    compute_threads: int  # torch intra-op / oneDNN / onnxruntime
    io_threads: int  # ffmpeg decode / encode
    user_threads: str | None  # the user's thread setting (e.g. "OMP_NUM_THREADS=1"), if any
    wait_policy: str  # OMP_WAIT_POLICY as the process has it ("" when unset)
    adaptive: bool = False  # mraa.governor follows the load

    def describe(self) -> str:
        threads = f"{self.compute_threads} compute threads"
        threads += (
            f" ({self.user_threads}, set by the user)" if self.user_threads else f" ({self.budget.source})"
        )
        if self.adaptive:
            threads += ", fewer while other processes use the CPUs"
        wait = self.wait_policy or "unset (OpenMP spins briefly)"
        return f"{threads}, {self.io_threads} I/O thread(s), OMP_WAIT_POLICY {wait}"


# ----------------------------------------------------------------------------- CPU budget
def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _cgroup_v2_quota(root: Path, relative: str) -> float | None:
    """The smallest ``cpu.max`` quota from the process's cgroup up to the root, in CPUs."""
    quota = None
    folder = root / relative.lstrip("/")
    while True:
        text = _read(folder / "cpu.max")
        if text:
            limit, _, period = text.partition(" ")
            if limit != "max" and period:
                try:
                    value = int(limit) / int(period)
                except (ValueError, ZeroDivisionError):
                    value = None
                if value and value > 0:
                    quota = value if quota is None else min(quota, value)
        if folder == root or root not in folder.parents:
            return quota
        folder = folder.parent


def _cgroup_v1_quota(root: Path, relative: str) -> float | None:
    """``cpu.cfs_quota_us / cpu.cfs_period_us`` of the process's cpu cgroup (or the mount's root)."""
    for controller in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
        for folder in (root / controller / relative.lstrip("/"), root / controller):
            quota, period = _read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us")
            if quota is None or period is None:
                continue
            try:
                value = int(quota) / int(period)
            except (ValueError, ZeroDivisionError):
                return None
            return value if value > 0 else None  # -1: unlimited
    return None


def cgroup_quota(root: Path = CGROUP_ROOT, proc_cgroup: Path = Path("/proc/self/cgroup")) -> float | None:
    """The CPU quota of this process's cgroup in CPUs (e.g. 1.5 for ``docker --cpus 1.5``); None if unlimited."""
    v2, v1 = None, None
    for line in (_read(proc_cgroup) or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "0" and parts[1] == "":
            v2 = parts[2]
        elif "cpu" in parts[1].split(","):
            v1 = parts[2]
    if (root / "cgroup.controllers").exists():
        return _cgroup_v2_quota(root, v2 or "/")
    return _cgroup_v1_quota(root, v1 or "/")


def affinity_count() -> int:
    """CPUs in this process's affinity mask (``os.cpu_count()`` where the mask cannot be read)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def cpu_budget(
    affinity: Callable[[], int] = affinity_count, quota: Callable[[], float | None] = cgroup_quota
) -> CpuBudget:
    """The CPUs this process may use: the affinity mask and the cgroup quota rounded down, at least 1."""
    count, limit = affinity(), quota()
    cpus = count if limit is None else max(1, min(count, math.floor(limit + 1e-6)))
    return CpuBudget(cpus, count, limit)


# ----------------------------------------------------------------------------- the plan
def _user_threads(env: MutableMapping[str, str]) -> tuple[str | None, int | None]:
    for name in THREAD_VARIABLES:
        value = env.get(name, "").strip()
        if value and not (env is os.environ and _written.get(name) == value):
            try:
                return f"{name}={value}", max(1, int(value.split(",")[0]))
            except ValueError:
                return f"{name}={value}", None
    return None, None


def io_threads_for(cpus: int) -> int:
    """ffmpeg threads: 1 up to 4 CPUs (the compute threads need the cores), then a quarter, at most 4."""
    return 1 if cpus <= 4 else min(4, cpus // 4)


def plan_threads(env: MutableMapping[str, str] | None = None, budget: CpuBudget | None = None) -> ThreadPlan:
    """The thread choice for ``env`` (default: ``os.environ``) and ``budget`` (default: :func:`cpu_budget`)."""
    env = os.environ if env is None else env
    budget = budget or cpu_budget()
    user, count = _user_threads(env)
    compute = count if count is not None else budget.cpus
    wait = env.get("OMP_WAIT_POLICY", "")
    adaptive = governor.enabled_by(env, user) and governor.available()
    return ThreadPlan(budget, compute, io_threads_for(budget.cpus), user, wait, adaptive)


def openmp_started() -> bool:
    """True when torch or an OpenMP library is loaded: OpenMP read its environment already."""
    if "torch" in sys.modules:
        return True
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return False
    return any(name in maps for name in OPENMP_LIBRARIES)


def prepare_environment(
    env: MutableMapping[str, str] | None = None, *, process: bool = False, budget: CpuBudget | None = None
) -> ThreadPlan:
    """Set the OpenMP environment for compute, if OpenMP has not started yet; returns the plan.

    Where the user set no thread count (and did not set ``MRAA_ADAPTIVE_THREADS=0``) and the load can be
    read, the thread governor is allowed (:mod:`mraa.governor`) and OpenMP keeps its wait policy;
    otherwise writes ``OMP_WAIT_POLICY=PASSIVE`` unless the user set a wait policy. Writes
    ``OMP_NUM_THREADS`` unless the user set a thread count: ``process`` (the command line, which owns its
    process) always; otherwise (the Python API) only when the CPU budget is below the CPU count, the case
    that torch's own default gets wrong (a container's quota or affinity).
    """
    env = os.environ if env is None else env
    plan = plan_threads(env, budget)
    if plan.adaptive and env is os.environ:
        governor.allow(plan.budget.cpus, governor.take_sample())
    if env is os.environ and openmp_started():
        log.debug("threads: OpenMP already started, mraa leaves its settings: %s", plan.describe())
        return plan
    wanted = {}
    if not plan.adaptive and not any(env.get(name) for name in WAIT_VARIABLES):
        wanted["OMP_WAIT_POLICY"] = "PASSIVE"
    if plan.user_threads is None and (process or plan.budget.cpus < (os.cpu_count() or plan.budget.cpus)):
        wanted["OMP_NUM_THREADS"] = str(plan.compute_threads)
    env.update(wanted)
    if env is os.environ:
        _written.update(wanted)
    return dataclasses.replace(plan, wait_policy=env.get("OMP_WAIT_POLICY", ""))


def prepare_process() -> ThreadPlan:
    """For an entry point that owns its process (the command line), before it imports torch."""
    plan = prepare_environment(process=True)
    io_threads.cache_clear()
    return plan


@lru_cache(maxsize=1)
def io_threads() -> int:
    """Threads for ffmpeg decoding and encoding in this process."""
    return plan_threads().io_threads


def compute_threads() -> int:
    """Threads for a compute pool mraa creates itself (onnxruntime): torch's, which follows the user."""
    import torch

    return torch.get_num_threads()
