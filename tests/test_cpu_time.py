"""The CPU estimate's energy as a counter of CPU time (meter/cpu_time.py)."""

from __future__ import annotations

import pytest

from joulemeter.meter.cpu_time import CpuTimeEnergy

MIN_W, MAX_W = 0.74, 3.5  # per logical CPU, as in the CCF model


def _counter() -> CpuTimeEnergy:
    def unreadable() -> tuple[float, float]:
        raise OSError("not read in these tests")

    return CpuTimeEnergy(MIN_W, MAX_W, unreadable)


def test_the_counter_is_the_power_model_integrated_over_cpu_time():
    counter = _counter()
    assert counter.energy_j(busy_s=100.0, capacity_s=1000.0) == 0.0  # origin at the first read
    # 2 CPUs for 1 s, one of them busy: 2 × 0.74 W + 1 × (3.5 − 0.74) W = 4.24 W for 1 s
    assert counter.energy_j(busy_s=101.0, capacity_s=1002.0) == pytest.approx(4.24)


def test_busy_time_beyond_the_capacity_of_the_span_is_capped_as_in_the_power_model():
    counter = _counter()
    counter.energy_j(0.0, 0.0)
    assert counter.energy_j(busy_s=5.0, capacity_s=2.0) == pytest.approx(2 * MAX_W)


def test_a_dip_in_process_tree_cpu_time_is_neither_a_reset_nor_counted_twice():
    counter = _counter()
    counter.energy_j(10.0, 0.0)
    counter.energy_j(12.0, 4.0)  # 2 busy CPU-s
    dipped = counter.energy_j(11.0, 6.0)  # an ended child not yet reaped: 1 CPU-s leaves the tree
    assert dipped == pytest.approx(MIN_W * 6.0 + (MAX_W - MIN_W) * 2.0)
    back = counter.energy_j(12.5, 8.0)  # reaped (+1 s) and 0.5 s of new work
    assert back == pytest.approx(MIN_W * 8.0 + (MAX_W - MIN_W) * 2.5)


def test_reading_it_surfaces_an_unreadable_cpu_time_as_an_os_error():
    with pytest.raises(OSError):
        _counter().read_j()
