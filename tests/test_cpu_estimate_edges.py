"""The CPU estimate read as a CPU-time counter at window edges: exact for any window (issue 17)."""

from __future__ import annotations

import time

import pytest

from joulemeter.meter import EnergyMeter
from joulemeter.meter.sources.estimate import CpuEstimate, CpuPowerModel

MODEL = CpuPowerModel(0.74, 3.5, "test: CCF per-vCPU figures")


class CpuTimes:
    """Cumulative (busy, capacity) CPU-seconds that only the test moves."""

    def __init__(self) -> None:
        self.busy_s = self.capacity_s = 0.0

    def run(self, wall_s: float, cpus: int, busy_cpus: float) -> None:
        self.capacity_s += wall_s * cpus
        self.busy_s += wall_s * busy_cpus

    def __call__(self) -> tuple[float, float]:
        return self.busy_s, self.capacity_s


def test_a_window_gets_the_estimate_of_exactly_the_cpu_time_spent_in_it_between_coarse_ticks():
    times = CpuTimes()
    source = CpuEstimate(cpu_seconds=times, logical_cpus=2, model=MODEL)
    with EnergyMeter("cpu", sources=[source], store=False, interval_s=60.0, sync_devices=False) as m:
        times.run(wall_s=5.0, cpus=2, busy_cpus=0.0)  # before the window: idle
        m.energy_so_far_j()  # the counter has been read up to here
        with m.window("step") as window:
            m.energy_so_far_j()  # ... and past the window's start
            times.run(wall_s=0.002, cpus=2, busy_cpus=2.0)  # 2 ms, both CPUs busy
            time.sleep(0.004)  # the window lasts longer than the fake's 2 ms: within the model's power
        m.energy_so_far_j()  # read past the window's end: this fake counter only moves when told
        times.run(wall_s=5.0, cpus=2, busy_cpus=1.0)  # after it: half busy
    # 2 CPUs × 3.5 W for 2 ms, although no tick came near the window
    assert window.energy_j["cpu"] == pytest.approx(2 * 3.5 * 0.002, rel=1e-9)
    assert m.run.energy["cpu"].energy_j == pytest.approx(2 * 0.74 * 5 + 2 * 3.5 * 0.002 + (0.74 * 2 + 2.76) * 5)


def test_the_estimate_gives_a_counter_read_and_a_power_for_the_timeline():
    times = CpuTimes()
    source = CpuEstimate(cpu_seconds=times, logical_cpus=2, model=MODEL)
    source.open()
    times.run(wall_s=1.0, cpus=2, busy_cpus=1.0)
    (tick,) = source.read()
    (edge,) = source.read_counters()
    assert tick.power_w == pytest.approx(4.24) and tick.energy_j == pytest.approx(4.24)
    assert edge.power_w is None and edge.energy_j == pytest.approx(4.24)
