"""The default timeline is adaptive: a tick every interval_s while power moves, stretching to
max_interval_s while it holds steady, so an idle run costs a tick every 30 s (issue 17)."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

from joulemeter.meter import EnergyMeter
from joulemeter.meter.cadence import DEFAULT_FLOOR_W, Cadence
from joulemeter.meter.run import Domain, Provenance, Sample, Status
from joulemeter.meter.sampler import Sampler
from joulemeter.meter.sources.base import Reading
from joulemeter.meter.store import open_ledger, writer as writer_module
from joulemeter.meter.store.ledger import STALE_HEARTBEAT_S
from joulemeter.meter.store.spool import RunSpool
from joulemeter.meter.store.writer import _LEDGER_FLUSHES, _LEDGER_TICKS, RunWriter
from tests.doubles import LinearCounterSource, SteppedCounterSource
from tests.polling import wait_until
from tests.test_ledger import make_run


def _tick(**power_w: float | None) -> list[Sample]:
    return [Sample(1.0, domain, p, None) for domain, p in power_w.items()]


# -- the cadence itself ----------------------------------------------------------------
def test_steady_power_doubles_the_interval_up_to_its_maximum():
    cadence = Cadence(1.0, 30.0)
    intervals = [cadence.after_tick(_tick(gpu=100.0, cpu=20.0)) for _ in range(8)]
    assert intervals == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


def test_a_move_past_the_tolerance_brings_the_interval_back_at_once():
    cadence = Cadence(1.0, 30.0)
    for _ in range(7):
        cadence.after_tick(_tick(gpu=100.0))
    assert cadence.backed_off
    assert cadence.after_tick(_tick(gpu=106.0)) == 1.0  # 6 % up
    assert cadence.after_tick(_tick(gpu=106.0)) == 2.0  # steady again from the new level


def test_a_slow_drift_is_measured_from_where_the_steady_stretch_began():
    cadence = Cadence(1.0, 30.0)
    power = 100.0
    intervals = []
    for _ in range(6):  # 2 % a tick: never 5 % from one tick to the next, 5 % in three
        intervals.append(cadence.after_tick(_tick(gpu=power)))
        power *= 1.02
    assert intervals == [1.0, 2.0, 4.0, 1.0, 2.0, 4.0]


def test_near_zero_power_counts_watts_not_percent():
    cadence = Cadence(1.0, 30.0)
    cadence.after_tick(_tick(gpu=0.1))
    assert cadence.after_tick(_tick(gpu=0.1 + DEFAULT_FLOOR_W * 0.9)) == 2.0
    assert cadence.after_tick(_tick(gpu=0.1 + DEFAULT_FLOOR_W * 1.1)) == 1.0


def test_a_failed_reading_or_a_domain_coming_or_going_resets_the_interval():
    cadence = Cadence(1.0, 30.0)
    for _ in range(4):
        cadence.after_tick(_tick(gpu=50.0, cpu=10.0))
    assert cadence.after_tick(_tick(gpu=None, cpu=10.0)) == 1.0
    for _ in range(4):
        cadence.after_tick(_tick(gpu=50.0, cpu=10.0))
    assert cadence.after_tick(_tick(gpu=50.0)) == 1.0


def test_a_fixed_cadence_never_moves_and_bad_bounds_are_refused():
    fixed = Cadence(0.1)
    assert not fixed.adaptive
    assert {fixed.after_tick(_tick(gpu=10.0)) for _ in range(5)} == {0.1}
    with pytest.raises(ValueError, match="at most its maximum"):
        Cadence(2.0, 1.0)


# -- the sampler's ticks ---------------------------------------------------------------
class TimedSource(SteppedCounterSource):
    """A SteppedCounterSource read with its power, as an exact counter or (`counter=False`)
    as a gauge estimate with no counter; records when each tick read it."""

    name = "timed"

    def __init__(self, power_w: float = 20.0, counter: bool = True) -> None:
        super().__init__(power_w)
        if not counter:
            self.domain = Domain("ram", "ram", "test", Provenance.ESTIMATED, "test: power gauge")
        self.counter = counter
        self.tick_times: list[float] = []

    def _reading(self) -> Reading:
        energy_j = self._counter_j() if self.counter else None
        return Reading(self.domain.name, power_w=self._power_w, energy_j=energy_j)

    def read(self) -> list[Reading]:
        self.ticks += 1
        self.tick_times.append(time.monotonic())
        return [self._reading()]

    def read_counters(self) -> list[Reading]:
        if not self.counter:
            return []
        self.edge_reads += 1
        return [self._reading()]


def _gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in zip(times, times[1:])]


def test_ticks_stretch_while_power_holds_and_come_often_again_once_it_moves():
    source = TimedSource(power_w=20.0)
    sampler = Sampler([source], [source.domain], interval_s=0.02, max_interval_s=0.64)
    sampler.start()
    try:
        wait_until(lambda: sampler.tick_interval_s() == 0.64, "the timeline to stretch to its maximum")
        wait_until(lambda: max(_gaps(source.tick_times)) >= 0.64, "a tick 0.64 s after the one before")
        switched = source.set_power(60.0)
        wait_until(lambda: len([t for t in source.tick_times if t > switched]) >= 4, "ticks after the switch")
    finally:
        sampler.stop()
    after = [t for t in source.tick_times if t > switched][:4]
    # the first tick after the switch sees it; the next ones come at the base interval again
    assert min(_gaps(after)) < 0.32
    assert sampler.energy_j()["gpu:0"] == pytest.approx(source._counter_j(), rel=0.02)


def test_a_live_figure_asked_for_brings_a_stretched_timeline_back_to_its_interval():
    source = TimedSource(power_w=20.0)
    sampler = Sampler([source], [source.domain], interval_s=0.02, max_interval_s=1.28)
    sampler.start()
    try:
        wait_until(lambda: sampler.tick_interval_s() == 1.28, "the timeline to stretch to its maximum")
        ticks = len(source.tick_times)
        wait_until(lambda: len(source.tick_times) > ticks, "a tick: the next one is 1.28 s away")
        asked = time.monotonic()
        sampler.latest_power_w()
        wait_until(lambda: source.tick_times[-1] > asked, "a tick after the live figure", timeout_s=5.0)
        first = next(t for t in source.tick_times if t > asked)
    finally:
        sampler.stop()
    assert first - asked < 0.64
    assert sampler.tick_interval_s() < 1.28


def test_a_window_on_a_domain_without_counter_settles_within_the_base_interval_while_stretched():
    counted, gauge = TimedSource(power_w=30.0), TimedSource(power_w=5.0, counter=False)
    with EnergyMeter("stretched", sources=[counted, gauge], store=False, interval_s=0.05,
                     max_interval_s=20.0, sync_devices=False) as meter:
        sampler = meter._sampler
        assert sampler is not None
        wait_until(lambda: sampler.tick_interval_s() >= 1.6, "the timeline to stretch")
        latencies = []
        for i in range(4):
            with meter.window(f"w{i}") as window:
                pass
            ended = time.monotonic()
            wait_until(lambda: window.energy_j, "the window's energy", timeout_s=10.0)
            latencies.append(time.monotonic() - ended)
            assert set(window.energy_j) == {"gpu:0", "ram"}
    # without the pull-in a window would wait for a tick up to 1.6 s or more away
    assert max(latencies) < 0.8, latencies


# -- the meter's choice ----------------------------------------------------------------
def test_the_default_timeline_is_adaptive_and_says_so_in_the_run():
    source = LinearCounterSource()
    with EnergyMeter("default", sources=[source], store=False, sync_devices=False) as meter:
        assert (meter.interval_s, meter.max_interval_s) == (1.0, 30.0)
    assert meter.run.metadata["timeline"].startswith("adaptive: a tick every 1 s while power moves")


def test_a_given_interval_keeps_the_timeline_fixed_unless_a_maximum_is_given_too():
    with EnergyMeter("fine", sources=[LinearCounterSource()], store=False, interval_s=0.1, sync_devices=False) as fine:
        assert fine.max_interval_s == 0.1
    assert "timeline" not in fine.run.metadata
    with EnergyMeter("both", sources=[LinearCounterSource()], store=False, interval_s=0.1,
                     max_interval_s=5.0, sync_devices=False) as both:
        assert both._sampler is not None and both._sampler.cadence.max_s == 5.0


def test_a_domain_measured_by_sampling_power_keeps_every_tick():
    sampled = LinearCounterSource(provenance=Provenance.SAMPLED)
    with EnergyMeter("sampled", sources=[sampled], store=False, max_interval_s=30.0, sync_devices=False) as meter:
        assert meter.max_interval_s == meter.interval_s == 0.1


@pytest.mark.parametrize("options, words", [
    ({"interval_s": 2.0, "max_interval_s": 1.0}, "at least interval_s"),
    ({"max_interval_s": 0.0}, "max_interval_s must be a positive, finite"),
    ({"max_interval_s": math.inf}, "max_interval_s must be a positive, finite"),
    ({"max_interval_s": "10"}, "max_interval_s must be a positive, finite"),
    ({"interval_s": math.nan}, "interval_s must be a positive, finite"),
    ({"interval_s": math.inf}, "interval_s must be a positive, finite"),
    ({"interval_s": True}, "interval_s must be a positive, finite"),
    ({"interval_s": -1.0}, "interval_s must be a positive, finite"),
    ({"timeline": False, "max_interval_s": 30.0}, "timeline=False has none"),
])
def test_a_timeline_that_cannot_be_kept_is_refused(options, words):
    with pytest.raises(ValueError, match=words):
        EnergyMeter("bad", store=False, **options)


def test_a_maximum_below_the_default_interval_is_kept_as_a_fixed_interval():
    with EnergyMeter("fine", sources=[LinearCounterSource()], store=False, max_interval_s=0.25,
                     sync_devices=False) as meter:
        assert meter.interval_s == meter.max_interval_s == 0.25
        assert meter._sampler is not None and not meter._sampler.cadence.adaptive


# -- the writer's pace -----------------------------------------------------------------
def test_the_ledger_is_written_every_few_ticks_of_a_stretched_timeline_and_each_tick_is_journaled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    now = [1000.0]
    monkeypatch.setattr(writer_module.time, "monotonic", lambda: now[0])
    ledger = open_ledger(tmp_path / "ledger.sqlite")
    source = LinearCounterSource()
    sampler = Sampler([source], [source.domain], keep_unwritten=True, max_interval_s=30.0)
    run = make_run(status=Status.RUNNING, samples=0)
    writer = RunWriter(ledger, run, sampler, interval_s=1.0, spool=RunSpool(run.id, ledger.location, tmp_path / "spool"))
    try:
        assert writer._ledger_period_s() == _LEDGER_FLUSHES * 1.0  # at 1 s ticks: every 30 flushes
        sampler.cadence.interval_s = 30.0  # stretched, as after five steady ticks
        assert writer._ledger_period_s() == _LEDGER_TICKS * 30.0
        sampler.cadence.interval_s = 600.0  # a longest interval asked for past the stale limit
        assert writer._ledger_period_s() == STALE_HEARTBEAT_S / 2  # still alive to other processes
        sampler.cadence.interval_s = 30.0
        sampler.read_once()
        real = ledger.append_samples

        def append_while_a_tick_comes(*args, **kwargs):
            real(*args, **kwargs)
            sampler.read_once()  # its flush finds the writer's lock taken
            writer.flush_to_journal()

        ledger.append_samples = append_while_a_tick_comes  # type: ignore[method-assign]
        now[0] += 200.0
        assert writer._write(final=False)
        assert writer._spooled == sampler.unwritten(0)[1]  # the late tick is in the journal too
        assert writer._ledger_at == now[0] + _LEDGER_TICKS * 30.0
    finally:
        writer._spool.close()
        ledger.close()
