"""A window per step costs next to nothing and holds nothing per edge: its energy comes from
each domain's trace of readings, filled in by the sampler once every domain is read past
its end, and the readings no window needs are dropped (issue 17)."""

from __future__ import annotations

import time

import pytest

from joulemeter.meter import EnergyMeter
from joulemeter.meter.energy import EnergyTrace
from joulemeter.meter.run import Domain, Provenance, Sample, Window
from joulemeter.meter.sampler import _EDGE_READ_MIN_S, Sampler
from joulemeter.meter.sources.base import Reading, Source
from joulemeter.meter.timeline import Timeline
from tests.doubles import LinearCounterSource
from tests.polling import wait_until
from tests.doubles import SteppedCounterSource

POWER_W = 40.0


class Clock:
    """A clock the test moves by hand, so ticks and edges fall where the test puts them."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class ClockedCounter(Source):
    """A counter domain at POWER_W on the test's clock."""

    name = "clocked"

    def __init__(self, clock: Clock, name: str = "gpu:0", provenance: Provenance = Provenance.COUNTER) -> None:
        self.clock = clock
        self.domain = Domain(name, "gpu", "test device", provenance, "test: clocked counter")

    def open(self) -> list[Domain]:
        return [self.domain]

    def read(self) -> list[Reading]:
        return [Reading(self.domain.name, POWER_W, POWER_W * self.clock())]


def _sampler(clock: Clock, open_windows: list[Window] | None = None, **kwargs) -> Sampler:
    sources = [ClockedCounter(clock), ClockedCounter(clock, "ram", Provenance.ESTIMATED)]
    sampler = Sampler(sources, [s.domain for s in sources], clock=clock,
                      open_windows=[] if open_windows is None else open_windows, **kwargs)
    sampler.read_once()
    return sampler


def _window(sampler: Sampler, clock: Clock, duration_s: float, open_windows: list[Window] | None = None) -> Window:
    window = Window("step", "step", sampler.mark_edge())
    if open_windows is not None:
        open_windows.append(window)
    clock.now += duration_s
    window.end_s = sampler.mark_edge()
    if open_windows is not None:
        open_windows.remove(window)
    sampler.close_window(window)
    return window


def test_ten_thousand_windows_between_two_ticks_all_get_their_energy_at_the_next_tick():
    clock = Clock()
    sampler = _sampler(clock)
    windows = [_window(sampler, clock, 1e-4) for _ in range(10_000)]
    assert all(w.energy_j == {} for w in windows)  # nothing read past them yet
    clock.now += 0.5
    sampler.read_once()
    for w in windows:
        assert w.energy_j == pytest.approx({"gpu:0": POWER_W * 1e-4, "ram": POWER_W * 1e-4}, rel=1e-6)
    assert not sampler._closed and not sampler._starts


def test_the_readings_kept_stay_few_however_long_the_run_and_however_many_windows():
    clock = Clock()
    sampler = _sampler(clock, max_ticks=64)
    for _ in range(2_000):
        for _ in range(5):
            _window(sampler, clock, 0.01)
        clock.now += 0.1
        sampler.read_once()
    for accumulator in sampler.accumulators.values():
        assert len(accumulator.trace) <= 3  # the readings one tick back, not the run's 2,000
    assert len(sampler.timeline) <= 2 * 65  # 64 ticks of 2 domains, plus the latest


def test_a_window_open_across_many_ticks_keeps_its_start_while_the_readings_before_it_go():
    clock = Clock()
    open_windows: list[Window] = []
    sampler = _sampler(clock, open_windows)
    long = Window("train", "train", sampler.mark_edge())
    open_windows.append(long)
    for _ in range(500):
        clock.now += 1.0
        _window(sampler, clock, 0.2, open_windows)
        sampler.read_once()
    long.end_s = sampler.mark_edge()
    open_windows.remove(long)
    sampler.close_window(long)
    clock.now += 1.0
    sampler.read_once()
    assert len(sampler.accumulators["gpu:0"].trace) <= 3
    assert long.energy_j["gpu:0"] == pytest.approx(POWER_W * long.duration_s, rel=1e-9)


def test_a_window_gets_its_energy_while_the_run_goes_on_without_another_window_or_the_stop():
    source = SteppedCounterSource(power_w=100.0)
    with EnergyMeter("settles", sources=[source], store=False, interval_s=30.0, sync_devices=False) as m:
        with m.window("w") as window:
            time.sleep(0.01)  # a window of some length; its energy is measured, not assumed
        filled = wait_until(lambda: window.energy_j, "the window's energy, from the counter read after its end")
        assert source.ticks == 1  # only the first reading: no tick came, the edge reads gave it
    assert filled["gpu:0"] == pytest.approx(100.0 * window.duration_s, rel=0.5)


def test_a_burst_of_windows_costs_one_counter_read_per_pause_not_one_per_edge():
    source = SteppedCounterSource(power_w=10.0)
    with EnergyMeter("burst", sources=[source], store=False, interval_s=60.0, sync_devices=False) as m:
        reads = source.edge_reads
        started = time.monotonic()
        for _ in range(2_000):
            with m.window("step"):
                pass
        elapsed_s = time.monotonic() - started
        windows = m.run.windows
        wait_until(lambda: all(w.energy_j for w in windows), "every window's energy")
        edge_reads = source.edge_reads - reads
    assert edge_reads <= elapsed_s / _EDGE_READ_MIN_S + 3  # and one after the last edge
    assert edge_reads < 2 * len(windows)


def test_windows_over_readings_get_the_same_energy_one_at_a_time_as_all_at_once():
    trace = EnergyTrace()
    for t, j, edge_read in [(0.0, 0.0, False), (1.0, 10.0, True), (1.5, 12.0, False), (3.0, 30.0, False)]:
        trace.add(t, j, edge_read)
    spans = [(-1.0, 0.5), (0.2, 0.7), (0.9, 1.2), (1.1, 1.4), (1.2, 2.5), (0.5, 2.9), (2.0, 4.0)]
    each = [(trace.at(b) if trace.at(b) is not None else 30.0) - trace.at(a) for a, b in spans]
    assert trace.between_each(sorted(spans, key=lambda s: s[1])) == pytest.approx(
        [e for _, e in sorted(zip(spans, each), key=lambda p: p[0][1])])
    assert trace.between_each([(0.2, 0.7)]) == [0.0]  # before a counter read made for edges: its value


def test_a_timeline_gives_back_the_samples_it_kept_none_as_none():
    timeline = Timeline(max_ticks=4)
    ticks = [[Sample(float(i), "gpu:0", None if i % 2 else 5.0, float(i)), Sample(float(i), "ram", 1.0, None)]
             for i in range(6)]
    for tick in ticks:
        timeline.add(tick)
    assert timeline.samples() == [*ticks[0], *ticks[2], *ticks[4], *ticks[5]]


def test_a_run_of_many_windows_keeps_its_windows_energies_equal_to_the_counter():
    with EnergyMeter("many", sources=[LinearCounterSource(POWER_W)], store=False, interval_s=0.05,
                     sync_devices=False) as m:
        for _ in range(500):
            with m.window("step"):
                pass
    total = sum(w.energy_j["gpu:0"] for w in m.run.windows)
    assert total == pytest.approx(POWER_W * sum(w.duration_s for w in m.run.windows), rel=0.05, abs=1e-3)
