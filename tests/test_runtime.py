"""mraa.runtime: the CPU budget (affinity, cgroup quota), the thread plan, and the environment it writes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mraa import runtime
from mraa.runtime import (
    CpuBudget,
    cgroup_quota,
    cpu_budget,
    io_threads_for,
    plan_threads,
    prepare_environment,
)

ROOT = Path(__file__).resolve().parents[1]


def _files(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


class TestCgroupQuota:
    def test_v2_quota_of_own_cgroup(self, tmp_path):
        _files(
            tmp_path,
            {"cg/cgroup.controllers": "cpu", "cg/app/cpu.max": "150000 100000\n", "self": "0::/app\n"},
        )
        assert cgroup_quota(tmp_path / "cg", tmp_path / "self") == pytest.approx(1.5)

    def test_v2_smallest_quota_up_to_the_root(self, tmp_path):
        _files(
            tmp_path,
            {
                "cg/cgroup.controllers": "cpu",
                "cg/a/cpu.max": "100000 100000",
                "cg/a/b/cpu.max": "max 100000",
                "self": "0::/a/b",
            },
        )
        assert cgroup_quota(tmp_path / "cg", tmp_path / "self") == pytest.approx(1.0)

    def test_v2_unlimited(self, tmp_path):
        _files(tmp_path, {"cg/cgroup.controllers": "cpu", "cg/cpu.max": "max 100000", "self": "0::/"})
        assert cgroup_quota(tmp_path / "cg", tmp_path / "self") is None

    def test_v1_quota_and_unlimited(self, tmp_path):
        files = {"cg/cpu/cpu.cfs_quota_us": "250000", "cg/cpu/cpu.cfs_period_us": "100000"}
        _files(tmp_path, {**files, "self": "3:cpu,cpuacct:/\n0::/\n"})
        assert cgroup_quota(tmp_path / "cg", tmp_path / "self") == pytest.approx(2.5)
        (tmp_path / "cg/cpu/cpu.cfs_quota_us").write_text("-1")
        assert cgroup_quota(tmp_path / "cg", tmp_path / "self") is None

    def test_missing_files_mean_no_quota(self, tmp_path):
        assert cgroup_quota(tmp_path / "none", tmp_path / "none-self") is None


class TestBudgetAndPlan:
    @pytest.mark.parametrize(
        ("affinity", "quota", "cpus"), [(8, None, 8), (8, 1.5, 1), (8, 0.5, 1), (2, 16.0, 2), (4, 3.0, 3)]
    )
    def test_budget_is_affinity_and_quota_rounded_down(self, affinity, quota, cpus):
        budget = cpu_budget(lambda: affinity, lambda: quota)
        assert budget.cpus == cpus
        assert ("quota" in budget.source) == (quota is not None and int(quota) < affinity)

    def test_affinity_of_this_process(self):
        assert runtime.affinity_count() == len(os.sched_getaffinity(0))

    def test_plan_uses_the_budget_without_user_settings(self):
        plan = plan_threads({}, CpuBudget(6, 8, 6.0))
        assert (plan.compute_threads, plan.io_threads, plan.user_threads) == (6, 1, None)
        assert "cgroup quota 6" in plan.describe()

    @pytest.mark.parametrize("name", ["OMP_NUM_THREADS", "MKL_NUM_THREADS"])
    def test_plan_respects_the_users_thread_count(self, name):
        plan = plan_threads({name: "3"}, CpuBudget(8, 8, None))
        assert plan.compute_threads == 3 and plan.user_threads == f"{name}=3"
        assert "set by the user" in plan.describe()

    def test_io_threads(self):
        assert [io_threads_for(n) for n in (1, 2, 4, 8, 16, 64)] == [1, 1, 1, 2, 4, 4]


FIXED = {"MRAA_ADAPTIVE_THREADS": "0"}  # the governor turned off: mraa falls back to the passive policy


class TestPrepareEnvironment:
    def test_process_writes_the_budget_and_keeps_the_short_spin_for_the_governor(self):
        env: dict[str, str] = {}
        plan = prepare_environment(env, process=True, budget=CpuBudget(3, 8, 3.0))
        assert env == {"OMP_NUM_THREADS": "3"}
        assert plan.adaptive and plan.wait_policy == "" and plan.compute_threads == 3
        assert "fewer while other processes use the CPUs" in plan.describe()

    def test_process_writes_passive_and_the_budget_without_the_governor(self):
        env = dict(FIXED)
        plan = prepare_environment(env, process=True, budget=CpuBudget(3, 8, 3.0))
        assert env == {**FIXED, "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "3"}
        assert not plan.adaptive and plan.wait_policy == "PASSIVE" and plan.compute_threads == 3

    def test_users_settings_are_kept(self):
        env = {"OMP_WAIT_POLICY": "ACTIVE", "OMP_NUM_THREADS": "1"}
        prepare_environment(env, process=True, budget=CpuBudget(8, 8, None))
        assert env == {"OMP_WAIT_POLICY": "ACTIVE", "OMP_NUM_THREADS": "1"}
        env = {"GOMP_SPINCOUNT": "10000", "MKL_NUM_THREADS": "2"}
        prepare_environment(env, process=True, budget=CpuBudget(8, 8, None))
        assert env == {"GOMP_SPINCOUNT": "10000", "MKL_NUM_THREADS": "2"}

    def test_library_writes_threads_only_below_the_cpu_count(self):
        cpus = os.cpu_count() or 1
        env: dict[str, str] = {}
        prepare_environment(env, budget=CpuBudget(cpus, cpus, None))
        assert env == {}
        env = dict(FIXED)
        prepare_environment(env, budget=CpuBudget(cpus, cpus, None))
        assert env == {**FIXED, "OMP_WAIT_POLICY": "PASSIVE"}
        if cpus > 1:
            env = {}
            prepare_environment(env, budget=CpuBudget(cpus - 1, cpus, cpus - 1.0))
            assert env["OMP_NUM_THREADS"] == str(cpus - 1)

    def test_nothing_changes_once_torch_is_loaded(self, monkeypatch):
        monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        assert runtime.openmp_started()
        runtime.prepare_process()
        assert "OMP_WAIT_POLICY" not in os.environ and "OMP_NUM_THREADS" not in os.environ

    def test_explicit_torch_threads_are_kept(self):
        previous = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            runtime.prepare_environment()
            runtime.prepare_process()
            assert torch.get_num_threads() == 1 and runtime.compute_threads() == 1
        finally:
            torch.set_num_threads(previous)


def _mraa_threads_line(env_extra: dict[str, str]) -> str:
    """The thread line ``python -m mraa -v`` logs, run with the thread variables of ``env_extra`` only."""
    env = {k: v for k, v in os.environ.items() if k not in runtime.THREAD_VARIABLES + runtime.WAIT_VARIABLES}
    env.pop("MRAA_ADAPTIVE_THREADS", None)
    env.update(env_extra, PYTHONPATH=str(ROOT / "src"))
    result = subprocess.run(
        [sys.executable, "-m", "mraa", "-v"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if "threads:" in line]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_command_line_adapts_unless_the_user_chose():
    line = _mraa_threads_line({})
    assert "fewer while other processes use the CPUs" in line and "set by the user" not in line
    assert "OMP_WAIT_POLICY unset" in line
    line = _mraa_threads_line(FIXED)
    assert "OMP_WAIT_POLICY PASSIVE" in line and "fewer" not in line
    line = _mraa_threads_line({"OMP_WAIT_POLICY": "ACTIVE", "OMP_NUM_THREADS": "1"})
    assert (
        "OMP_WAIT_POLICY ACTIVE" in line and "1 compute threads (OMP_NUM_THREADS=1, set by the user)" in line
    )
    assert "fewer" not in line


@pytest.mark.parametrize(("extra", "expected"), [({}, "None"), (FIXED, "PASSIVE")])
def test_torch_in_a_fresh_process_gets_the_environment(extra, expected):
    code = "import os, mraa, torch; print(os.environ.get('OMP_WAIT_POLICY'), torch.get_num_threads())"
    env = {k: v for k, v in os.environ.items() if k not in runtime.THREAD_VARIABLES + runtime.WAIT_VARIABLES}
    env.pop("MRAA_ADAPTIVE_THREADS", None)
    env.update(extra, PYTHONPATH=str(ROOT / "src"))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=180)
    policy, threads = out.stdout.split()
    assert policy == expected
    assert int(threads) <= runtime.cpu_budget().cpus
