"""CPU and RAM estimates. Expected figures are computed by hand from Cloud Carbon Footprint's
AWS averages (min 0.74 W and max 3.5 W per vCPU, 0.392 W per GB of memory; CCF
AwsFootprintEstimationConstants.ts) and CodeCarbon's cpu_power.csv TDPs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from joulemeter.meter.run import Provenance
from joulemeter.meter.sources.estimate import (
    CpuEstimate,
    ProcessTree,
    RamEstimate,
    cpu_power_model,
    process_tree_cpu_seconds,
)

CCF_MIN_W, CCF_MAX_W, CCF_W_PER_GB = 0.74, 3.5, 0.392
CCF = cpu_power_model(None, None, None)


class FakeCpuTimes:
    """Cumulative (busy, capacity) CPU-seconds that a test moves forward."""

    def __init__(self) -> None:
        self.busy_s = 0.0
        self.capacity_s = 0.0

    def run(self, wall_s: float, cpus: int, busy_cpus: float) -> None:
        self.capacity_s += wall_s * cpus
        self.busy_s += wall_s * busy_cpus

    def __call__(self) -> tuple[float, float]:
        return self.busy_s, self.capacity_s


def _cpu(cpus: int = 2) -> tuple[CpuEstimate, FakeCpuTimes]:
    times = FakeCpuTimes()
    return CpuEstimate(cpu_seconds=times, logical_cpus=cpus, model=CCF), times


def test_idle_and_busy_cpus_give_the_ccf_min_and_max_per_vcpu():
    source, times = _cpu(cpus=2)
    (domain,) = source.open()
    assert (domain.name, domain.kind, domain.provenance) == ("cpu", "cpu", Provenance.ESTIMATED)
    times.run(wall_s=1.0, cpus=2, busy_cpus=0.0)
    assert source.read()[0].power_w == pytest.approx(2 * CCF_MIN_W)  # 1.48 W
    times.run(wall_s=1.0, cpus=2, busy_cpus=2.0)
    assert source.read()[0].power_w == pytest.approx(2 * CCF_MAX_W)  # 7.0 W


def test_one_busy_core_of_a_two_core_vm_draws_several_watts():
    source, times = _cpu(cpus=2)
    source.open()
    times.run(wall_s=1.0, cpus=2, busy_cpus=1.0)
    power_w = source.read()[0].power_w
    # 2 × 0.74 W idle + 1 busy × (3.5 − 0.74) W = 4.24 W; CodeCarbon reports ~1.7 W here
    assert power_w == pytest.approx(4.24)
    assert power_w - 2 * CCF_MIN_W >= 2.5


def test_utilisation_is_measured_between_reads_not_since_boot():
    source, times = _cpu(cpus=2)
    times.run(wall_s=1000.0, cpus=2, busy_cpus=2.0)  # busy before open: must not count
    source.open()
    times.run(wall_s=1.0, cpus=2, busy_cpus=0.0)
    assert source.read()[0].power_w == pytest.approx(2 * CCF_MIN_W)


def test_busy_time_beyond_the_core_count_is_capped():
    source, times = _cpu(cpus=2)
    source.open()
    times.busy_s += 5.0  # more CPU-seconds than 2 cores can give in 1 s
    times.capacity_s += 2.0
    assert source.read()[0].power_w == pytest.approx(2 * CCF_MAX_W)


def test_a_read_with_no_cpu_time_elapsed_repeats_the_last_power_or_gives_none():
    source, times = _cpu(cpus=2)
    source.open()
    first_read = source.read()[0]
    assert first_read.power_w is None and first_read.energy_j == 0.0  # power unknown, not 0 W
    times.run(wall_s=1.0, cpus=2, busy_cpus=1.0)
    first = source.read()[0].power_w
    assert source.read()[0].power_w == first


def test_process_tree_mode_counts_cpu_time_of_children_that_ran_and_exited():
    clock = iter([0.0, 10.0])
    read = process_tree_cpu_seconds(os.getpid(), logical_cpus=2, clock=lambda: next(clock))
    busy_before, capacity_before = read()
    # a child that burns 0.3 s of its own CPU time, then exits and is reaped by this process
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass"
    subprocess.run([sys.executable, "-c", burn], check=True)
    busy_after, capacity_after = read()
    assert busy_after - busy_before >= 0.3
    assert capacity_after - capacity_before == pytest.approx(20.0)  # 10 s × 2 CPUs


def test_process_tree_mode_names_the_process_in_the_method():
    source = CpuEstimate(os.getpid(), logical_cpus=2, model=CCF)
    (domain,) = source.open()
    assert f"process {os.getpid()} and its children" in domain.method


def test_a_pid_that_does_not_exist_makes_the_estimate_unavailable():
    status = CpuEstimate(pid=2**22 + 12345).status()
    assert not status.available and "no process" in status.reason


def test_ram_power_is_ccf_watts_per_gb_in_use():
    source = RamEstimate(used_bytes=lambda: 1.5e9)
    (domain,) = source.open()
    assert (domain.name, domain.kind, domain.provenance) == ("ram", "ram", Provenance.ESTIMATED)
    assert source.read()[0].power_w == pytest.approx(1.5 * CCF_W_PER_GB)  # 0.588 W


def test_an_idle_24_gb_vm_is_far_from_20_watts_of_ram():
    source = RamEstimate(used_bytes=lambda: 1.0e9)  # 1 GB of 24 GB in use
    source.open()
    assert source.read()[0].power_w == pytest.approx(CCF_W_PER_GB) and CCF_W_PER_GB < 1.0


def test_bare_metal_with_a_known_cpu_shares_its_tdp_across_threads():
    # CodeCarbon cpu_power.csv: "Intel Xeon Gold 6148,150.0"; 20 cores, 40 threads per socket
    model = cpu_power_model("Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz", 40, False)
    assert model.max_w_per_cpu == pytest.approx(150.0 / 40)  # 3.75 W
    assert model.min_w_per_cpu == pytest.approx(150.0 / 40 * CCF_MIN_W / CCF_MAX_W)
    assert "TDP 150 W" in model.method


def test_amd_model_names_match_codecarbons_table():
    # CodeCarbon cpu_power.csv: "AMD EPYC 7763,280.0"; 64 cores, 128 threads
    model = cpu_power_model("AMD EPYC 7763 64-Core Processor", 128, False)
    assert model.max_w_per_cpu == pytest.approx(280.0 / 128)


def test_a_virtual_machine_uses_ccf_because_the_hosts_threads_are_unknown():
    model = cpu_power_model("Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz", 2, True)
    assert (model.min_w_per_cpu, model.max_w_per_cpu) == (CCF_MIN_W, CCF_MAX_W)
    assert "CCF per-vCPU" in model.method


def test_an_unknown_cpu_model_uses_ccf():
    model = cpu_power_model("AMD EPYC", 2, False)
    assert (model.min_w_per_cpu, model.max_w_per_cpu) == (CCF_MIN_W, CCF_MAX_W)


def test_the_estimate_reads_on_this_machine():
    source = CpuEstimate()
    (domain,) = source.open()
    assert domain.method.startswith("estimate:")
    source.close()


DOUBLE_FORK = """
import os, sys, time
done = sys.argv[1]
if os.fork() == 0:
    if os.fork() == 0:  # the grandchild: its parent exits at once, so it is re-parented
        end = time.process_time() + 1.5
        while time.process_time() < end:
            pass
        open(done, "w").close()
        os._exit(0)
    os._exit(0)
os.wait()
deadline = time.monotonic() + 60
while not os.path.exists(done) and time.monotonic() < deadline:
    time.sleep(0.01)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="child subreapers are a Linux feature")
def test_a_metered_command_s_double_forked_descendant_stays_in_the_process_tree(tmp_path):
    from joulemeter.meter import EnergyMeter
    from joulemeter.meter.command import run_command

    read = process_tree_cpu_seconds(os.getpid(), logical_cpus=1)
    busy_before = read()[0]
    seen = []
    meter = EnergyMeter("double-fork", pid=os.getpid(), store=False, devices=["cpu"])
    result = run_command([sys.executable, "-c", DOUBLE_FORK, str(tmp_path / "done")], meter,
                         on_tick=lambda _: seen.append(read()[0]), tick_s=0.05)
    seen.append(read()[0])
    assert result.returncode == 0 and (tmp_path / "done").exists()
    assert max(seen) - busy_before >= 1.2  # of the grandchild's 1.5 CPU-s; without it ~0.2


def test_a_descendant_seen_once_is_still_counted_after_its_parent_exits():
    import psutil

    # a shell starts a sleeper in the background and exits: the sleeper is re-parented
    shell = subprocess.Popen(["sh", "-c", "sleep 30 & echo $!; read _"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    sleeper = int(shell.stdout.readline())
    tree = ProcessTree(os.getpid())
    try:
        assert sleeper in {p.pid for p in tree.members()}
        shell.stdin.close()
        shell.wait(timeout=30)
        assert psutil.Process(sleeper).ppid() != shell.pid
        assert sleeper not in {p.pid for p in psutil.Process().children(recursive=True)}
        assert sleeper in {p.pid for p in tree.members()}
    finally:
        os.kill(sleeper, 9)
