"""The EnergyMeter: life cycle, windows, units, decorator, failure statuses."""

from __future__ import annotations

import asyncio
import threading

import pytest

from joulemeter.meter import EnergyMeter, Status, current_meter, metered
from joulemeter.meter.errors import MeterStateError
from joulemeter.meter.run import Provenance
from joulemeter.meter.sources.base import Reading
from tests.doubles import FailingAfterSource, LinearCounterSource, stamp_skew_j

POWER_W = 50.0


def make_meter(**kwargs) -> EnergyMeter:
    kwargs.setdefault("sources", [LinearCounterSource(POWER_W)])
    return EnergyMeter("test", store=False, interval_s=0.01, **kwargs)


def busy(seconds: float) -> None:
    """Spin until `seconds` of monotonic time pass (the meter must see real time go by)."""
    import time

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def test_run_energy_equals_power_times_duration_for_a_constant_counter():
    with make_meter() as m:
        busy(0.2)
    run = m.run
    assert run.status is Status.COMPLETED
    assert run.total_energy_j == pytest.approx(POWER_W * run.duration_s, rel=0.05)
    assert run.energy["gpu:0"].provenance.value == "counter"
    assert run.avg_power_w == pytest.approx(POWER_W, rel=0.05)


def test_nested_and_repeated_windows_get_their_own_energy_and_paths():
    with make_meter() as m:
        for epoch in range(2):
            with m.window("epoch"):
                with m.window("train"):
                    busy(0.05)
                    m.count(32, "samples")
                with m.window("eval"):
                    busy(0.02)
    paths = [w.path for w in m.run.windows]
    assert paths == ["epoch", "epoch/train", "epoch/eval"] * 2
    for w in m.run.windows:
        assert w.total_energy_j == pytest.approx(POWER_W * w.duration_s, abs=stamp_skew_j(POWER_W))
    epoch, train, evaluate = m.run.windows[:3]
    assert train.total_energy_j + evaluate.total_energy_j <= epoch.total_energy_j + 1e-9
    assert train.units == {"samples": 32}
    assert epoch.units == {"samples": 32}
    assert evaluate.units == {}
    assert m.run.units == {"samples": 64}
    assert train.energy_per_unit_j("samples") == pytest.approx(train.total_energy_j / 32)


def test_exception_in_metered_code_closes_run_as_failed_and_keeps_energy():
    m = make_meter()
    with pytest.raises(ZeroDivisionError):
        with m:
            busy(0.05)
            1 / 0
    assert m.run.status is Status.FAILED
    assert "ZeroDivisionError" in m.run.error
    assert m.run.total_energy_j > 0


def test_keyboard_interrupt_closes_run_as_interrupted():
    m = make_meter()
    with pytest.raises(KeyboardInterrupt):
        with m:
            busy(0.02)
            raise KeyboardInterrupt
    assert m.run.status is Status.INTERRUPTED


def test_sampler_thread_is_gone_after_the_run_even_on_error():
    before = {t.name for t in threading.enumerate()}
    with pytest.raises(RuntimeError):
        with make_meter():
            raise RuntimeError("boom")
    assert "joulemeter-sampler" not in {t.name for t in threading.enumerate()} - before


def test_sources_are_closed_after_the_run():
    source = LinearCounterSource(POWER_W)
    with make_meter(sources=[source]):
        pass
    assert source.closed


def test_decorator_meters_each_call_of_a_sync_function():
    @metered("step", store=False, interval_s=0.01, sources=[LinearCounterSource(POWER_W)])
    def work(x):
        current_meter().count(3, "samples")
        busy(0.02)
        return x * 2

    assert work(21) == 42
    assert work.last_run.name == "step"
    assert work.last_run.units == {"samples": 3}
    assert work.last_run.total_energy_j > 0


def test_decorator_without_parentheses_meters_with_the_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv("JOULEMETER_LEDGER", str(tmp_path / "ledger.sqlite"))

    @metered
    def work():
        return "done"

    assert work() == "done"
    assert work.last_run.name.endswith("work") and work.last_run.status is Status.COMPLETED


def test_decorator_meters_an_async_function():
    @metered(store=False, interval_s=0.01, sources=[LinearCounterSource(POWER_W)])
    async def infer():
        await asyncio.sleep(0.02)
        return "ok"

    assert asyncio.run(infer()) == "ok"
    assert infer.last_run.status is Status.COMPLETED
    assert infer.last_run.name.endswith("infer")


def test_lost_domain_becomes_a_gap_and_energy_stays_what_was_measured():
    source = FailingAfterSource(good_reads=3)
    with make_meter(sources=[source]) as m:
        busy(0.1)
    gaps = m.run.gaps
    assert len(gaps) == 1 and gaps[0].domain == "gpu:0" and "GPU lost" in gaps[0].reason
    assert gaps[0].end_s is None
    assert m.run.total_energy_j >= 0
    assert m.run.total_energy_j < POWER_W * m.run.duration_s


def test_count_outside_a_run_is_a_clear_error():
    with pytest.raises(MeterStateError):
        make_meter().count(1)


def test_a_meter_cannot_be_started_twice():
    m = make_meter()
    with m:
        pass
    with pytest.raises(MeterStateError):
        m.start()


def test_idle_baseline_gives_attributable_energy():
    with make_meter(idle_baseline_s=0.05) as m:
        busy(0.05)
    assert m.run.energy["gpu:0"].idle_power_w == pytest.approx(POWER_W, rel=0.05)
    assert m.run.attributable_energy_j == pytest.approx(0.0, abs=POWER_W * 0.02)


def test_short_window_on_a_counter_gpu_carries_a_note():
    with make_meter() as m:
        with m.window("tiny"):
            pass
    assert "update period" in m.run.windows[0].note


class BoundedEstimate(LinearCounterSource):
    """An estimated CPU whose counter reads more power than its model allows (as coarse CPU-time
    ticks can over a short window)."""

    def __init__(self) -> None:
        super().__init__(11.0, domain="cpu", kind="cpu", provenance=Provenance.ESTIMATED)

    def power_bounds_w(self) -> dict[str, tuple[float, float, str]]:
        return {"cpu": (1.5, 7.0, "CPU time is counted in 10 ms clock ticks")}


def test_an_estimated_window_is_held_within_its_models_power_and_says_so():
    with make_meter(sources=[BoundedEstimate()]) as m:
        with m.window("short"):
            pass
        with m.window("long"):
            busy(0.03)
    short, long = m.run.windows
    for window in (short, long):
        assert window.energy_j["cpu"] == pytest.approx(7.0 * window.duration_s)
        assert "read 11 W, held to the estimate's 1.5–7 W" in window.note
    assert m.run.energy["cpu"].energy_j == pytest.approx(11.0 * m.run.duration_s, rel=0.05)  # the run is not held


def test_the_cpu_estimate_bounds_are_its_models_idle_and_full_load_power():
    from joulemeter.meter.sources.estimate import CpuEstimate, CpuPowerModel

    source = CpuEstimate(cpu_seconds=lambda: (1.0, 2.0), logical_cpus=4, model=CpuPowerModel(0.5, 3.0, "test"))
    source.open()
    low, high, why = source.power_bounds_w()["cpu"]
    assert (low, high) == (2.0, 12.0) and "clock ticks" in why


def test_samples_and_windows_frames_have_the_documented_columns():
    with make_meter() as m:
        with m.window("w"):
            busy(0.03)
    samples = m.run.samples_frame()
    assert list(samples.columns) == ["t_s", "domain", "power_w", "energy_j"]
    assert len(samples) == len(m.run.samples) > 2
    windows = m.run.windows_frame()
    assert windows.loc[0, "name"] == "w" and windows.loc[0, "energy_j"] > 0


def test_domains_read_in_one_tick_share_its_time_so_peak_power_adds_them_up():
    sources = [LinearCounterSource(POWER_W), LinearCounterSource(20.0, domain="cpu", kind="cpu")]
    with make_meter(sources=sources) as m:
        busy(0.05)
    times = {}
    for s in m.run.samples:
        times.setdefault(s.t_s, set()).add(s.domain)
    assert all(domains == {"gpu:0", "cpu"} for domains in times.values())
    assert m.run.peak_power_w == pytest.approx(POWER_W + 20.0)


def test_provenance_and_status_print_as_the_words_users_read():
    from joulemeter.meter.run import Provenance

    assert f"{Provenance.ESTIMATED} {Status.FAILED}" == "estimated failed"
    assert str(Provenance.COUNTER) == "counter"


class _PowerOnlySource(LinearCounterSource):
    """Reports power only (no counter); its read blocks once for `stall_s` after `stall_after` reads."""

    def __init__(self, stall_after: int, stall_s: float) -> None:
        super().__init__(POWER_W, domain="cpu:0", kind="cpu", provenance=Provenance.SAMPLED)
        self.stall_after, self.stall_s = stall_after, stall_s

    def read(self):
        self.reads += 1
        if self.reads == self.stall_after:
            threading.Event().wait(self.stall_s)  # the tick is held this long, whatever the machine
        return [Reading(self.domain.name, self.power_w, None)]


def test_a_hole_in_sampling_is_a_gap_for_power_readings_and_counters_still_count_across_it():
    stalled = _PowerOnlySource(stall_after=5, stall_s=1.5)
    counter = LinearCounterSource(POWER_W)
    with make_meter(sources=[counter, stalled]) as m:
        while stalled.reads < 10:
            busy(0.01)
    run = m.run
    (gap,) = run.gaps
    assert gap.domain == "cpu:0" and "not scheduled" in gap.reason
    assert gap.end_s - gap.start_s >= 1.5
    # nothing is interpolated over the hole for the power domain ...
    assert run.energy["cpu:0"].energy_j <= POWER_W * (run.duration_s - 1.5) + 1e-6
    # ... while the counter measured it exactly
    assert run.energy["gpu:0"].energy_j == pytest.approx(POWER_W * run.duration_s, rel=0.02)
