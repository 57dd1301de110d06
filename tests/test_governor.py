"""mraa.governor: compute threads that follow the machine's load (fake samples, and one real neighbour)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest
import torch

from mraa import governor
from mraa.governor import LoadSample, ThreadGovernor, busy_seconds, choose_threads, others_cpus

STAT = """cpu  400 0 100 1000 50 0 0 0 0 0
cpu0 100 0 50 500 20 0 0 0 0 0
cpu1 300 10 50 500 30 5 5 20 7 0
intr 1 2 3
ctxt 99
"""


def test_busy_seconds_counts_user_system_irq_and_steal_not_idle():
    tick = governor._TICK
    assert busy_seconds(STAT) == pytest.approx((150 + 390) / tick)
    assert busy_seconds(STAT, frozenset({0})) == pytest.approx(150 / tick)
    assert busy_seconds(STAT, frozenset({1})) == pytest.approx(390 / tick)
    assert busy_seconds(STAT, frozenset({7})) is None
    assert busy_seconds("garbage\n") is None


def test_others_are_the_busy_time_that_is_not_ours():
    before, after = LoadSample(0.0, 10.0, 1.0), LoadSample(0.5, 11.0, 1.5)
    assert others_cpus(before, after) == pytest.approx(1.0)
    assert others_cpus(before, LoadSample(0.5, 10.2, 1.5)) == 0.0  # rounding never goes negative
    assert others_cpus(before, before) == 0.0


@pytest.mark.parametrize(
    ("current", "maximum", "free", "sharing", "streak", "expected"),
    [
        (2, 2, 2.0, 1, 0, 2),  # idle: all threads
        (2, 2, 1.33, 1, 0, 1),  # a busy neighbour takes its share: drop at once
        (2, 2, 1.6, 1, 0, 2),  # a light neighbour: keep
        (1, 2, 1.9, 1, 0, 1),  # room again: not on the first sample ...
        (1, 2, 1.9, 1, 1, 2),  # ... but on the second
        (1, 2, 1.7, 1, 5, 1),  # adding needs more room than keeping
        (8, 8, 8.0, 2, 0, 4),  # two computing threads share the CPUs
        (2, 2, -0.5, 1, 0, 1),  # never below one
        (4, 4, 16.0, 1, 3, 4),  # never above the maximum
    ],
)
def test_choose_threads(current, maximum, free, sharing, streak, expected):
    assert choose_threads(current, maximum, free, sharing, streak) == expected


class FakeMachine:
    """Load samples from a scripted neighbour, and torch's per-thread thread count."""

    def __init__(self, threads: int = 2) -> None:
        self.now, self.busy, self.own = 0.0, 0.0, 0.0
        self.neighbour = 0.0  # CPUs the neighbour uses
        self.local = threading.local()
        self.default = threads
        self.calls: list[int] = []

    def advance(self, seconds: float, ours: float = 1.0) -> None:
        self.now += seconds
        self.busy += (self.neighbour + ours) * seconds
        self.own += ours * seconds

    def sample(self) -> LoadSample:
        return LoadSample(self.now, self.busy, self.own)

    def get(self) -> int:
        return getattr(self.local, "threads", self.default)

    def set(self, n: int) -> None:
        self.local.threads = n
        self.calls.append(n)


def make_governor(
    machine: FakeMachine, monkeypatch, budget: int = 2, cpus: int | None = None
) -> ThreadGovernor:
    monkeypatch.setattr(governor.time, "monotonic", lambda: machine.now)
    return ThreadGovernor(machine.default, budget, cpus=frozenset(range(cpus or budget)), sample=machine.sample,
                          get_threads=machine.get, set_threads=machine.set)  # fmt: skip


def test_a_busy_neighbour_drops_a_thread_and_leaving_brings_it_back(monkeypatch):
    machine = FakeMachine()
    gov = make_governor(machine, monkeypatch)
    machine.advance(0.3)
    assert gov.adapt() == 2 and machine.calls == []  # idle: nothing changes
    machine.neighbour = 1.0
    machine.advance(0.3)
    assert gov.adapt() == 1 and machine.get() == 1
    assert gov.others == pytest.approx(1.0)
    machine.advance(0.1)
    assert gov.adapt() == 1  # between samples: no re-sampling
    machine.neighbour = 0.0
    machine.advance(0.3)
    assert gov.adapt() == 1  # this window still saw the neighbour for 0.1 s
    machine.advance(0.3)
    assert gov.adapt() == 1  # one sample with room is not enough ...
    machine.advance(0.3)
    assert gov.adapt() == 2 and machine.calls == [1, 2]  # ... two are


def test_under_a_quota_the_hosts_other_load_does_not_count(monkeypatch):
    """``docker --cpus 2`` on a 64-core host: 40 busy host CPUs still leave this container its 2."""
    machine = FakeMachine()
    gov = make_governor(machine, monkeypatch, budget=2, cpus=64)
    machine.neighbour = 40.0
    machine.advance(0.3)
    assert gov.adapt() == 2 and machine.calls == []
    machine.neighbour = 63.0  # the host is full: our CPUs are contended after all
    machine.advance(0.3)
    assert gov.adapt() == 1


def test_a_users_set_num_threads_wins_for_good(monkeypatch):
    machine = FakeMachine()
    gov = make_governor(machine, monkeypatch)
    machine.advance(0.3)
    gov.adapt()
    machine.local.threads = 3  # the user's torch.set_num_threads(3)
    machine.neighbour = 2.0
    machine.advance(0.3)
    assert gov.adapt() == 3 and not gov.enabled
    machine.advance(0.3)
    assert gov.adapt() == 3 and machine.calls == []


def test_threads_computing_at_once_share_the_cpus_and_a_waiting_one_does_not(monkeypatch):
    machine = FakeMachine(threads=4)
    gov = make_governor(machine, monkeypatch, budget=4)
    results: dict[str, list[int]] = {"a": [], "b": []}
    start, done = threading.Barrier(3), threading.Barrier(3)

    def request(name: str, rounds: int) -> None:  # the app's request threads, each with its own OpenMP ICVs
        gov.enter()
        for _ in range(rounds):
            start.wait()
            results[name].append(gov.adapt())
            done.wait()
        gov.leave()
        for _ in range(3 - rounds):  # b is waiting (e.g. for the app's model lock), not computing
            start.wait()
            done.wait()

    workers = [threading.Thread(target=request, args=(name, n)) for name, n in (("a", 3), ("b", 1))]
    for worker in workers:
        worker.start()
    for _ in range(3):
        machine.advance(0.3, ours=4.0)
        start.wait()
        done.wait()
    for worker in workers:
        worker.join()
    assert results["b"] == [2]  # both inside: 4 CPUs shared by 2 threads
    assert results["a"] == [2, 2, 4]  # a alone after b left: all 4 again on the second sample with room


def test_without_proc_stat_the_governor_is_off(tmp_path):
    assert governor.take_sample(stat=tmp_path / "missing") is None
    assert not governor.available(tmp_path / "missing")
    gov = ThreadGovernor(2, 2, sample=lambda: None)
    assert not gov.enabled and gov.adapt() == torch.get_num_threads()


def test_switch_and_user_threads_turn_it_off():
    assert governor.enabled_by({}, None)
    assert not governor.enabled_by({"MRAA_ADAPTIVE_THREADS": "0"}, None)
    assert not governor.enabled_by({}, "OMP_NUM_THREADS=2")


@pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity") or not governor.available(),
    reason="needs CPU affinity and /proc/stat",
)
def test_a_real_busy_neighbour_is_measured():
    """A spinning process pinned to one of our CPUs shows up as about one busy CPU there."""
    cpu = min(os.sched_getaffinity(0))
    cpus = frozenset({cpu})
    spin = f"import os; os.sched_setaffinity(0, {{{cpu}}})\nwhile 1: pass"
    neighbour = subprocess.Popen([sys.executable, "-c", spin])
    try:
        time.sleep(0.5)  # started and pinned
        before = governor.take_sample(cpus)
        time.sleep(1.0)  # this process sleeps: its own CPU time stays near zero
        after = governor.take_sample(cpus)
    finally:
        neighbour.kill()
        neighbour.wait()
    assert before is not None and after is not None
    assert 0.5 < others_cpus(before, after) < 1.3


def test_the_engine_adapts_torch_threads_in_the_computing_thread(monkeypatch, tiny_cfg, tiny_models):
    """Through the real TorchEngine: a machine the fake sampler calls busy runs the batch on one thread."""
    from mraa.inference.engines import TorchEngine

    machine = FakeMachine(threads=torch.get_num_threads())
    if machine.default < 2:
        pytest.skip("needs two torch threads")
    machine.neighbour = 8.0
    previous = torch.get_num_threads()
    gov = ThreadGovernor(
        previous, machine.default, cpus=frozenset(range(machine.default)), sample=machine.sample
    )
    monkeypatch.setattr(governor.time, "monotonic", lambda: machine.now)
    monkeypatch.setattr(governor, "_allowed", True)
    monkeypatch.setattr(governor, "_governor", gov)
    seen = []
    engine = TorchEngine(tiny_models)
    original = engine.models.region_predictor.forward
    monkeypatch.setattr(
        engine.models.region_predictor,
        "forward",
        lambda x: (seen.append(torch.get_num_threads()), original(x))[1],
    )
    try:
        machine.advance(0.3)
        engine.regions(torch.rand(1, 3, *tiny_cfg.dataset_params.frame_shape[:2]))
        assert seen == [1]
    finally:
        torch.set_num_threads(previous)


def test_computing_nests_and_is_a_no_op_when_off(monkeypatch):
    machine = FakeMachine()
    gov = make_governor(machine, monkeypatch)
    monkeypatch.setattr(governor, "_allowed", True)
    monkeypatch.setattr(governor, "_governor", gov)
    with governor.computing(), governor.computing():
        assert gov._inside == {threading.get_ident(): 2}
    assert gov._inside == {}

    @governor.computes
    def step(x: int) -> int:
        return x + len(gov._inside)

    assert step(1) == 2 and gov._inside == {}
    monkeypatch.setattr(governor, "_allowed", False)
    with governor.computing():
        assert gov._inside == {}  # off: nothing is counted or changed
