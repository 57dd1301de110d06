"""Compute threads that follow the machine's load (README "Threads and busy machines").

OpenMP's threads wait for work by spinning for a few milliseconds, then sleeping. On an idle machine the
spin is the fast choice (a sleeping thread costs a wake-up for every one of the thousands of small
parallel regions a frame needs); beside a busy process it is the slow one (a spinning thread holds a core
the other process wants, and a parallel region waits for its slowest, pre-empted thread). OpenMP reads its
wait policy once, so mraa keeps OpenMP's default spin and changes what it can change at any time: the
number of compute threads.

:func:`computing` (:func:`computes`), around the compute calls (the inference engine's model calls, the
training step), samples every :data:`INTERVAL_S` how much of this process's CPUs other processes used
(``/proc/stat`` over the affinity mask, minus this process's own CPU time), and sets torch's thread
count to the CPUs left free, shared between the threads of this process that compute at the same time
(inside :func:`computing`): one thread beside a busy neighbour on two cores, all of them again once it
stops. A thread is dropped after one sample that says so, added back after :data:`UP_SAMPLES`.

It stays out of the way of a user's choice: it is off when ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` is
set, when ``MRAA_ADAPTIVE_THREADS=0``, where ``/proc/stat`` cannot be read (then mraa sets
``OMP_WAIT_POLICY=PASSIVE`` instead, see :mod:`mraa.runtime`), and for good once ``torch.set_num_threads``
was called by anyone else. It never raises the thread count above the one torch started with.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")

SWITCH = "MRAA_ADAPTIVE_THREADS"  # "0" turns the governor off
PROC_STAT = Path("/proc/stat")
INTERVAL_S = 0.25  # seconds between load samples
UP_SAMPLES = 2  # consecutive samples with room to spare before a thread is added
STARTUP_SAMPLE_MAX_AGE_S = 20.0  # an older start-up sample is not used for the first decision
DOWN_MARGIN = 0.4  # free CPUs are rounded up from .6 when deciding to drop a thread ...
UP_MARGIN = 0.2  # ... and from .8 when deciding to add one (hysteresis)
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class LoadSample:
    """CPU time counters at one moment: all processes on our CPUs, and this process."""

    time: float  # time.monotonic()
    busy: float  # CPU seconds spent on our CPUs by anything (user, system, irq, steal)
    own: float  # CPU seconds of this process (all its threads)


def busy_seconds(stat_text: str, cpus: frozenset[int] | None = None) -> float | None:
    """Busy CPU seconds summed over ``cpus`` (all CPUs when None) from the text of ``/proc/stat``."""
    total, found = 0, False
    for line in stat_text.splitlines():
        if not line.startswith("cpu") or line.startswith("cpu "):
            continue
        name, *fields = line.split()
        try:
            index = int(name[3:])
            values = [int(x) for x in fields[:8]] + [0] * (8 - len(fields[:8]))
        except ValueError:
            continue
        if cpus is not None and index not in cpus:
            continue
        user, nice, system, _idle, _iowait, irq, softirq, steal = values
        total += user + nice + system + irq + softirq + steal
        found = True
    return total / _TICK if found else None


def affinity_set() -> frozenset[int] | None:
    try:
        return frozenset(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def take_sample(cpus: frozenset[int] | None = None, stat: Path = PROC_STAT) -> LoadSample | None:
    """The counters now, or None where ``/proc/stat`` cannot be read (not Linux)."""
    try:
        busy = busy_seconds(stat.read_text(), cpus)
    except OSError:
        return None
    if busy is None:
        return None
    return LoadSample(time.monotonic(), busy, time.process_time())


def others_cpus(before: LoadSample, after: LoadSample) -> float:
    """CPUs (0..n) that other processes kept busy on our CPUs between two samples."""
    elapsed = after.time - before.time
    if elapsed <= 0:
        return 0.0
    return max(0.0, ((after.busy - before.busy) - (after.own - before.own)) / elapsed)


def choose_threads(current: int, maximum: int, free: float, sharing: int = 1, streak: int = 0) -> int:
    """The thread count for one computing thread: ``free`` CPUs shared by ``sharing`` computing threads.

    Drops at once when the share rounds (from .6) below ``current``; adds only when it rounds (from .8)
    above it and ``streak`` earlier samples said so too.
    """
    share = free / max(1, sharing)
    down = max(1, min(maximum, math.floor(share + DOWN_MARGIN)))
    if down < current:
        return down
    up = max(1, min(maximum, math.floor(share + UP_MARGIN)))
    if up > current and streak + 1 >= UP_SAMPLES:
        return up
    return current


@functools.lru_cache(maxsize=4)
def available(stat: Path = PROC_STAT) -> bool:
    """Whether the load can be read here (Linux ``/proc/stat``); read once per process."""
    return take_sample(stat=stat) is not None


def enabled_by(env: MutableMapping[str, str], user_threads: str | None) -> bool:
    """Whether the governor may run: the user set no thread count and did not turn it off."""
    return user_threads is None and env.get(SWITCH, "").strip() not in ("0", "false", "no", "off")


class ThreadGovernor:
    """Sets torch's thread count in each computing thread from the load samples (see the module docs).

    Args:
        maximum: the most threads a computing thread gets (torch's count when the governor starts).
        budget: the CPUs this process may use (:class:`mraa.runtime.CpuBudget` ``.cpus``: the affinity mask
            and the cgroup quota).
        cpus: the CPUs of the affinity mask, whose load is read (default: this process's). With a quota
            below it (``docker --cpus 2`` on a 64-core host) the free CPUs count up to ``budget``: the
            other containers' load on the host is theirs to share.
        start: a sample taken earlier (at start-up), so the first decision comes with the first batch.
    """

    def __init__(
        self,
        maximum: int,
        budget: int,
        start: LoadSample | None = None,
        cpus: frozenset[int] | None = None,
        sample: Callable[[], LoadSample | None] | None = None,
        get_threads: Callable[[], int] | None = None,
        set_threads: Callable[[int], None] | None = None,
    ) -> None:
        import torch

        self.maximum, self.budget = max(1, maximum), max(1, budget)
        cpus = cpus if cpus is not None else affinity_set()
        self.cpus = len(cpus) if cpus else self.budget
        self._sample = sample or (lambda: take_sample(cpus))
        self._get = get_threads or torch.get_num_threads
        self._set = set_threads or torch.set_num_threads
        self.enabled = True
        self.target = self.maximum
        self.others = 0.0  # the last measurement, for logs and tests
        self._last = start or self._sample()
        self._streak = 0
        self._lock = threading.Lock()
        self._inside: dict[int, int] = {}  # thread id -> nesting depth of computing()
        self._local = threading.local()
        self._global = self.maximum  # the count torch gives a new thread (the last one set)
        if self._last is None:
            self.enabled = False

    def enter(self) -> None:
        """The calling thread starts computing (it shares the CPUs with the others inside)."""
        ident = threading.get_ident()
        with self._lock:
            self._inside[ident] = self._inside.get(ident, 0) + 1

    def leave(self) -> None:
        ident = threading.get_ident()
        with self._lock:
            depth = self._inside.pop(ident, 1) - 1
            if depth > 0:
                self._inside[ident] = depth

    def adapt(self) -> int:
        """Re-sample when due and apply the thread count to the calling thread; returns it."""
        if not self.enabled:
            return self._get()
        now = time.monotonic()
        with self._lock:
            if now - self._last.time >= INTERVAL_S:
                self._update()
            target = self.target
        return self._apply(target)

    def _update(self) -> None:
        sample = self._sample()
        if sample is None:
            return
        self.others = others_cpus(self._last, sample)
        self._last = sample
        computing_threads = max(1, len(self._inside))
        free = min(self.budget, self.cpus - self.others)
        chosen = choose_threads(self.target, self.maximum, free, computing_threads, self._streak)
        room = choose_threads(self.target, self.maximum, free, computing_threads, UP_SAMPLES)  # no waiting
        self._streak = self._streak + 1 if room > self.target == chosen else 0
        if chosen != self.target:
            log.debug(
                "threads: %d -> %d (other processes use %.2f of %d CPUs, %d computing thread(s))",
                self.target, chosen, self.others, self.budget, computing_threads,
            )  # fmt: skip
            self.target = chosen

    def _apply(self, target: int) -> int:
        current = self._get()
        mine = getattr(self._local, "threads", None)
        if current != mine and (mine is not None or current not in (self.maximum, self._global)):
            self.enabled = False  # torch.set_num_threads was called by someone else: theirs wins
            log.debug("threads: torch.set_num_threads(%d) was called; mraa stops adapting", current)
            return current
        if current != target:
            self._set(target)
            self._global = target
        self._local.threads = target
        return target


_governor: ThreadGovernor | None = None
_governor_lock = threading.Lock()
_startup: LoadSample | None = None
_allowed = False
_budget = 1


def allow(budget: int, start: LoadSample | None) -> None:
    """Called by :mod:`mraa.runtime` when the governor may run (the user configured no threads)."""
    global _allowed, _startup, _budget
    _allowed, _startup, _budget = True, start, budget


def _get_governor() -> ThreadGovernor | None:
    global _governor
    if not _allowed:
        return None
    if _governor is None:
        with _governor_lock:
            if _governor is None:
                import torch

                start = _startup
                if start is not None and time.monotonic() - start.time > STARTUP_SAMPLE_MAX_AGE_S:
                    start = None
                _governor = ThreadGovernor(torch.get_num_threads(), _budget, start)
    return _governor


@contextmanager
def computing() -> Iterator[None]:
    """Compute inside: the thread counts as computing (CPUs are shared between such threads) and its
    torch thread count is adapted on entry. Nests."""
    gov = _get_governor()
    if gov is None:
        yield
        return
    gov.enter()
    try:
        gov.adapt()
        yield
    finally:
        gov.leave()


def current() -> ThreadGovernor | None:
    """The running governor (None before the first batch or when it is off)."""
    return _governor


def computes(function: Callable[..., T]) -> Callable[..., T]:
    """Decorator: run ``function`` inside :func:`computing`."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        with computing():
            return function(*args, **kwargs)

    return wrapper
