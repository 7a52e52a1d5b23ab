"""A meter without a timeline (`timeline=False`): counters read only at start, edges and
stop, no ticks, so an idle run costs next to nothing, and energies stay exact (issue 17)."""

from __future__ import annotations

import threading
import time

import pytest

from joulemeter.meter import EnergyMeter
from joulemeter.meter.errors import SourceUnavailable
from joulemeter.meter.run import Provenance, Status, Window
from joulemeter.meter.sampler import Sampler
from joulemeter.meter.sources.base import Reading
from joulemeter.meter.store import open_ledger, writer as writer_module
from joulemeter.meter.store.spool import RunSpool
from joulemeter.meter.store.writer import _LEDGER_BEATS, _LEDGER_FLUSHES, RunWriter
from tests.doubles import LinearCounterSource, stamp_skew_j
from tests.polling import wait_until
from tests.test_ledger import make_run
from tests.test_overhead_writer import Counting


class FakeClock:
    """A monotonic clock that moves only when the test moves it, or a read takes `read_s`."""

    read_s = 1e-6

    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s

    def read(self) -> None:
        """A counter read takes its microsecond (so it comes just after the edge it serves)."""
        self.now_s += self.read_s


class EdgeCounterSource(LinearCounterSource):
    """LinearCounterSource that can also read its counter alone at edges; `reads` counts
    ticks, `counter_reads` counter reads. Its counter follows `clock` (monotonic by default),
    and `reading` is called as each counter read begins."""

    def __init__(self, clock=time.monotonic, reading=lambda: None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.clock = clock
        self.reading = reading
        self.counter_reads = 0

    def read(self) -> list[Reading]:
        self.reads += 1
        return [Reading(self.domain.name, self.power_w, self.power_w * self.clock())]

    def read_counters(self) -> list[Reading]:
        self.reading()
        self.counter_reads += 1
        return [Reading(self.domain.name, energy_j=self.power_w * self.clock())]


class PowerOnlySource(LinearCounterSource):
    """A device read as power alone (an old NVML GPU): no counter at all."""

    def __init__(self) -> None:
        super().__init__(domain="gpu:1", provenance=Provenance.SAMPLED)

    def read(self) -> list[Reading]:
        self.reads += 1
        return [Reading(self.domain.name, power_w=self.power_w)]


class TimeoutsSeen(threading.Event):
    """An Event that records the timeout of every wait on it."""

    def __init__(self) -> None:
        super().__init__()
        self.timeouts: list[float | None] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.timeouts.append(timeout)
        return super().wait(timeout)


def _edge(sampler: Sampler, source: EdgeCounterSource) -> float:
    """Mark an edge and wait for the thread's counter read after it."""
    reads = source.counter_reads
    t_s = sampler.mark_edge()
    wait_until(lambda: source.counter_reads > reads, "the counter read after the edge")
    return t_s


@pytest.fixture
def clocked():
    """A started tick-less sampler and its source, both on a clock of the test's."""
    clock = FakeClock()
    source = EdgeCounterSource(clock=clock, reading=clock.read, power_w=40.0)
    sampler = Sampler([source], [source.domain], clock=clock, timeline=False)
    sampler._wake = wake = TimeoutsSeen()
    sampler.start()
    yield sampler, source, clock, wake
    sampler.stop()


def test_window_energies_are_the_counter_difference_at_their_edges_exactly(clocked):
    sampler, source, clock, _ = clocked
    window = Window("w", "w", _edge(sampler, source))
    clock.now_s += 2.5
    window.end_s = _edge(sampler, source)
    sampler.close_window(window)
    wait_until(lambda: window.energy_j, "the window's energy")
    assert window.duration_s == pytest.approx(2.5, abs=1e-5)  # and a read's microsecond
    assert window.energy_j["gpu:0"] == pytest.approx(40.0 * window.duration_s, rel=1e-12)


def test_an_idle_run_without_a_timeline_reads_only_at_start_edges_and_stop_and_never_wakes_on_a_timeout(clocked):
    sampler, source, clock, wake = clocked
    assert (source.reads, source.counter_reads) == (0, 1)  # start: one counter read, no tick
    clock.now_s += 3600.0  # an hour of doing nothing
    _edge(sampler, source)
    sampler.stop()
    assert (source.reads, source.counter_reads) == (0, 3)  # the edge and the stop
    assert wake.timeouts and all(t is None for t in wake.timeouts)  # it slept until poked
    assert sampler.samples() == [] and sampler.peak_power_w() == {}


def test_a_long_silence_between_edges_is_no_stall_and_loses_no_energy(clocked):
    sampler, source, clock, _ = clocked
    start = _edge(sampler, source)
    clock.now_s += 100 * sampler.stall_s
    window = Window("quiet", "quiet", start, end_s=_edge(sampler, source))
    sampler.close_window(window)
    wait_until(lambda: window.energy_j, "the window's energy")
    assert sampler.gaps() == []
    assert window.energy_j["gpu:0"] == pytest.approx(40.0 * window.duration_s, rel=1e-12)
    assert window.duration_s == pytest.approx(100 * sampler.stall_s, abs=1e-5)
    assert sampler.energy_now_j()["gpu:0"] == pytest.approx(40.0 * sampler.now(), abs=40.0 * 1e-5)


def test_a_domain_without_a_counter_is_refused_at_start_naming_it_and_the_timeline_it_needs():
    counted, power_only = EdgeCounterSource(), PowerOnlySource()
    meter = EnergyMeter("edges", sources=[counted, power_only], store=False, sync_devices=False, timeline=False)
    with pytest.raises(SourceUnavailable, match="timeline") as refused:
        meter.start()
    assert "gpu:1" in str(refused.value) and "gpu:0" not in str(refused.value)
    assert "--" not in str(refused.value)  # a library message: no command-line flag
    assert counted.closed and power_only.closed  # nothing left open
    assert not meter.running


def test_interval_s_and_no_timeline_are_refused_together():
    with pytest.raises(ValueError, match="timeline"):
        EnergyMeter("edges", timeline=False, interval_s=0.1)


def test_stop_gives_the_run_its_energy_windows_and_units_with_no_samples():
    source = EdgeCounterSource(power_w=25.0)
    with EnergyMeter("edges", sources=[source], store=False, sync_devices=False, timeline=False) as m:
        sampler = m._sampler
        assert sampler is not None
        with m.window("step") as window:
            wait_until(lambda: source.counter_reads >= 2, "the counter read after the window's start")
            m.count(3)
            m.count(4.5, "tokens")
    run = m.run
    assert source.reads == 0  # never a tick
    assert run.samples == []
    energy = run.energy["gpu:0"]
    assert energy.energy_j == pytest.approx(25.0 * run.duration_s, abs=stamp_skew_j(25.0))
    assert energy.peak_power_w is None and energy.provenance is Provenance.COUNTER
    assert window.energy_j["gpu:0"] == pytest.approx(25.0 * window.duration_s, abs=stamp_skew_j(25.0, 4))
    assert run.units == {"samples": 3.0, "tokens": 4.5} and window.units == run.units
    assert run.metadata["timeline"].startswith("off")
    assert m.max_interval_s == m.interval_s  # no timeline to stretch: the adaptive bound is not claimed


def test_a_run_without_a_timeline_is_in_the_ledger_while_it_runs_and_reads_back_whole(tmp_path):
    path = tmp_path / "ledger.sqlite"
    source = EdgeCounterSource(power_w=10.0)
    with EnergyMeter("edges", ledger=path, sources=[source], sync_devices=False, timeline=False) as m:
        with m.window("w"):
            m.count(2)
        with open_ledger(path) as ledger:
            live = ledger.get_run(m.run.id)
        assert live.status is Status.RUNNING
        assert "keeps its energy up to the last" in live.metadata["timeline"]  # what a killed one keeps
    with open_ledger(path) as ledger:
        stored = ledger.get_run(m.run.id)
    assert stored.status is Status.COMPLETED and stored.samples == []
    assert stored.total_energy_j == pytest.approx(m.run.total_energy_j)
    assert stored.windows[0].energy_j == pytest.approx(m.run.windows[0].energy_j)
    assert stored.units == {"samples": 2.0}


def _journaled(spool: RunSpool) -> int:
    """How many sample records the run's journal holds."""
    return sum('"kind": "samples"' in line for line in spool.path.read_text().splitlines())


def test_without_a_timeline_the_writer_wakes_only_for_heartbeats_and_every_few_is_a_ledger_write(
    tmp_path, monkeypatch
):
    now = [1000.0]
    monkeypatch.setattr(writer_module.time, "monotonic", lambda: now[0])
    ledger = open_ledger(tmp_path / "ledger.sqlite")
    run = make_run(status=Status.RUNNING, samples=0)
    source = EdgeCounterSource()
    sampler = Sampler([source], [source.domain], keep_unwritten=True, timeline=False)
    writer = RunWriter(ledger, run, sampler, interval_s=1.0, timeline=False,
                       spool=RunSpool(run.id, ledger.location, tmp_path / "spool"))
    counting = Counting(ledger)
    for beat in range(1, _LEDGER_BEATS):  # heartbeats into the journal only, and no rounds between them
        assert writer._next_round_at() == now[0] + _LEDGER_FLUSHES
        now[0] += _LEDGER_FLUSHES
        assert not writer._write(final=False)
        assert counting.appends == 0 and _journaled(writer._spool) == beat
    now[0] += _LEDGER_FLUSHES
    assert writer._write(final=False)
    assert counting.appends == 1  # no samples, still a write: the run is alive
    assert writer._next_round_at() == now[0] + _LEDGER_FLUSHES
    writer._spool.close()
    ledger.close()


def test_a_heartbeat_writes_each_domains_energy_so_a_killed_run_keeps_it(tmp_path, monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(writer_module.time, "monotonic", lambda: now[0])
    counter = [0.0]
    source = EdgeCounterSource(power_w=10.0, clock=lambda: counter[0])
    ledger = open_ledger(tmp_path / "ledger.sqlite")
    run = make_run(status=Status.RUNNING, samples=0)
    sampler = Sampler([source], [source.domain], keep_unwritten=True, timeline=False)
    sampler.start()  # the counter's origin: 0 J
    writer = RunWriter(ledger, run, sampler, interval_s=1.0, timeline=False,
                       spool=RunSpool(run.id, ledger.location, tmp_path / "spool"))
    try:
        counter[0] = 3.0  # 30 J later, at the first heartbeat: into the journal
        now[0] += _LEDGER_FLUSHES
        assert not writer._write(final=False)
        writer._spool.close()  # what dying does: the file stays, its lock goes
        monkeypatch.setenv("JOULEMETER_SPOOL", str(tmp_path / "spool"))
        with open_ledger(tmp_path / "ledger.sqlite") as reopened:  # opening delivers the journal
            [beat] = reopened.get_run(run.id).samples
        assert (beat.domain, beat.power_w, beat.energy_j) == (source.domain.name, None, pytest.approx(30.0))
    finally:
        sampler.stop()
        writer._spool.close()
        ledger.close()
