"""Energy from counters read at the edges, live figures read now, and memory that stays
bounded however long a run goes (issue 17)."""

from __future__ import annotations

import time

import pytest

from joulemeter.meter import EnergyMeter
from joulemeter.meter.run import Provenance, Sample
from joulemeter.meter.sampler import _EDGE_READ_MIN_S, Sampler
from joulemeter.meter.store import open_ledger
from joulemeter.meter.timeline import Timeline
from tests.doubles import STAMP_SKEW_S, LinearCounterSource, SteppedCounterSource
from tests.polling import wait_until


def test_a_burst_shorter_than_the_interval_gets_its_energy_from_the_counter_at_its_edges():
    source = SteppedCounterSource(power_w=10.0)
    with EnergyMeter("burst", sources=[source], store=False, interval_s=1.0, sync_devices=False) as m:
        reads = source.edge_reads
        with m.window("burst") as window:
            wait_until(lambda: source.edge_reads > reads, "the counter read for the window's start")
            on = source.set_power(1000.0)
            time.sleep(0.02)  # the burst: its length is measured, not assumed
            off = source.set_power(10.0)
    expected = 1000.0 * (off - on)
    # the rest of the window, and the read just after its end, draw 10 W
    slack = 10.0 * (window.duration_s - (off - on) + 0.1)
    assert window.energy_j["gpu:0"] == pytest.approx(expected, abs=slack)
    assert source.ticks <= 3  # no tick came between the edges: the edge reads gave it


def test_live_energy_reads_the_counter_now_not_at_the_last_tick():
    source = SteppedCounterSource(power_w=0.0)
    with EnergyMeter("live", sources=[source], store=False, interval_s=60.0, sync_devices=False) as m:
        before = m.energy_so_far_j()["gpu:0"]
        on = source.set_power(500.0)
        time.sleep(0.05)
        off = source.set_power(0.0)
        after = m.energy_so_far_j()["gpu:0"]
    # the counter is read just after each call's edge: power that stopped in between is
    # spread over the read's lag (a thread switch, within the edge-read pause)
    lag_s = 2 * STAMP_SKEW_S + _EDGE_READ_MIN_S
    assert after - before == pytest.approx(500.0 * (off - on), abs=500.0 * lag_s)
    assert after - before > 0.9 * 500.0 * (off - on)  # not the 0 J of the tick 60 s ago


def test_windows_of_a_run_read_at_ticks_only_still_get_their_energy():
    # a source with no read_counters: its edges settle at the next tick
    source = LinearCounterSource(power_w=20.0)
    with EnergyMeter("ticks", sources=[source], store=False, interval_s=0.01, sync_devices=False) as m:
        with m.window("w") as window:
            wait_until(lambda: source.reads >= 5, "a few ticks")
    assert window.energy_j["gpu:0"] == pytest.approx(20.0 * window.duration_s, abs=2 * 20.0 * STAMP_SKEW_S)


def test_the_default_timeline_is_coarse_where_energy_comes_from_counters_and_fine_for_sampled_power():
    with EnergyMeter("counter", sources=[LinearCounterSource()], store=False, sync_devices=False) as m:
        pass
    assert m.run.interval_s == 1.0
    sampled = LinearCounterSource(provenance=Provenance.SAMPLED)
    with EnergyMeter("sampled", sources=[sampled], store=False, sync_devices=False) as m:
        pass
    assert m.run.interval_s == 0.1


def test_a_timeline_keeps_at_most_its_ticks_evenly_spread_over_the_whole_run():
    timeline = Timeline(max_ticks=8)
    for i in range(1000):
        timeline.add([Sample(float(i), "gpu:0", 1.0, float(i))])
    times = [s.t_s for s in timeline.samples()]
    assert len(times) <= 9  # 8 kept plus the latest
    assert times[0] == 0.0 and times[-1] == 999.0
    steps = {b - a for a, b in zip(times[:-2], times[1:-1])}
    assert len(steps) == 1  # evenly spaced


def test_samples_leave_memory_once_the_ledger_has_them(tmp_path):
    path = tmp_path / "ledger.sqlite"
    source = LinearCounterSource()
    with EnergyMeter("long", ledger=path, sources=[source], interval_s=0.005, flush_interval_s=0.05,
                     sync_devices=False) as m:
        sampler = m._sampler
        assert sampler is not None
        wait_until(lambda: sampler.unwritten(0)[1] > 200, "200 samples taken")
        wait_until(lambda: len(sampler.unwritten(0)[0]) < sampler.unwritten(0)[1] / 2, "a write to release them")
    with open_ledger(path) as ledger:
        stored = ledger.get_run(m.run.id)
    assert len(stored.samples) == sampler.unwritten(0)[1]  # every sample reached the ledger
    assert stored.total_energy_j == pytest.approx(m.run.total_energy_j)


def test_a_run_without_a_ledger_keeps_no_unwritten_samples():
    sampler = Sampler([LinearCounterSource()], [LinearCounterSource().domain], interval_s=1.0)
    for _ in range(50):
        sampler.read_once()
    held, taken = sampler.unwritten(0)
    assert taken == 0 and held == []
    assert len(sampler.samples()) == 50  # the timeline still has them (short run)
