"""Property-based tests of the energy accounting (meter/energy.py), driven by hypothesis.

Readings are generated as a source could give them: counters with arbitrary origin that
wrap or reset, power values that are NaN, negative or infinite, unreadable domains, and
tick times with jitter. Expected energies come from the arithmetic of the generator
(power × time, sums of counter increments), never from the code under test.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from joulemeter.meter.energy import DomainAccumulator, Edge, summarise
from joulemeter.meter.run import Domain, Provenance, Sample
from joulemeter.meter.sources.base import Reading

settings.register_profile("joulemeter", max_examples=200, deadline=None)
settings.load_profile("joulemeter")

REL = 1e-9  # relative tolerance for sums of floats


def _domain(counter_range_j: float | None = None, provenance: Provenance = Provenance.COUNTER) -> Domain:
    return Domain("gpu:0", "gpu", "test device", provenance, "property test", counter_range_j)


# -- strategies ---------------------------------------------------------------------
finite_power = st.floats(min_value=0.0, max_value=5_000.0, allow_nan=False, allow_infinity=False)
bad_value = st.sampled_from([math.nan, -math.inf, math.inf, -1.0, -1e-9])
counter_value = st.floats(min_value=0.0, max_value=1e7, allow_nan=False, allow_infinity=False)
tick = st.floats(min_value=0.0, max_value=5.0, allow_nan=False, allow_infinity=False)


@st.composite
def any_reading(draw: st.DrawFn) -> Reading:
    """Any reading a source might produce for one domain, good or bad."""
    kind = draw(st.sampled_from(["counter", "counter+power", "power", "error", "bad", "empty"]))
    if kind == "counter":
        return Reading("gpu:0", energy_j=draw(counter_value))
    if kind == "counter+power":
        return Reading("gpu:0", power_w=draw(finite_power), energy_j=draw(counter_value))
    if kind == "power":
        return Reading("gpu:0", power_w=draw(finite_power))
    if kind == "error":
        return Reading("gpu:0", error="GPU lost: property test")
    if kind == "bad":
        if draw(st.booleans()):
            return Reading("gpu:0", power_w=draw(bad_value))
        return Reading("gpu:0", power_w=draw(finite_power), energy_j=draw(bad_value))
    return Reading("gpu:0")


readings_with_times = st.lists(st.tuples(tick, any_reading()), min_size=1, max_size=60)
counter_range = st.one_of(st.none(), st.floats(min_value=1.0, max_value=1e7))


@st.composite
def jittered_times(draw: st.DrawFn) -> list[float]:
    """Ascending tick times with random spacing (sampler jitter), starting anywhere."""
    start = draw(st.floats(min_value=0.0, max_value=1e4))
    steps = draw(st.lists(st.floats(min_value=1e-4, max_value=2.0), min_size=1, max_size=80))
    times = [start]
    for dt in steps:
        times.append(times[-1] + dt)
    return times


def _accumulate(
    domain: Domain, events: list[tuple[float, Reading]]
) -> tuple[DomainAccumulator, list[Sample]]:
    """Feed (dt, reading) events at cumulative times; return the accumulator and its samples."""
    acc = DomainAccumulator(domain)
    t_s = 0.0
    samples = []
    for dt, reading in events:
        t_s += dt
        samples.append(acc.add(t_s, reading))
    return acc, samples


# -- energy never negative, never decreasing ---------------------------------------
@given(events=readings_with_times, range_j=counter_range)
def test_energy_is_never_negative_and_never_decreases_whatever_the_readings(events, range_j):
    acc = DomainAccumulator(_domain(range_j))
    t_s, previous, peak_w = 0.0, 0.0, None
    for dt, reading in events:
        t_s += dt
        sample = acc.add(t_s, reading)
        assert acc.energy_j >= previous
        assert sample.energy_j is None or sample.energy_j == acc.energy_j
        assert sample.power_w is None or sample.power_w >= 0
        if sample.power_w is not None:
            peak_w = max(peak_w, sample.power_w) if peak_w is not None else sample.power_w
        assert acc.peak_power_w == peak_w
        previous = acc.energy_j
    assert acc.energy_j >= 0
    assert math.isfinite(acc.energy_j)


@given(
    steps=st.lists(
        st.tuples(st.floats(min_value=0.0, max_value=1e3), st.booleans()), min_size=1, max_size=60
    )
)
def test_no_energy_is_counted_across_a_gap(steps):
    """A counter keeps running while the domain is unreadable; that span is a gap, not energy."""
    acc = DomainAccumulator(_domain())
    counter_j, previous_ok, expected_j = 0.0, True, 0.0
    acc.add(0.0, Reading("gpu:0", energy_j=counter_j))
    for i, (increment_j, ok) in enumerate(steps, start=1):
        counter_j += increment_j
        if ok:
            acc.add(float(i), Reading("gpu:0", energy_j=counter_j))
            if previous_ok:
                expected_j += increment_j
        else:
            acc.add(float(i), Reading("gpu:0", error="GPU lost: property test"))
        previous_ok = ok
    assert acc.energy_j == pytest.approx(expected_j, rel=REL, abs=1e-9)


@given(events=readings_with_times, range_j=counter_range)
def test_every_bad_or_unreadable_reading_is_covered_by_a_gap(events, range_j):
    acc, samples = _accumulate(_domain(range_j), events)
    gaps = acc.finish(sum(dt for dt, _ in events))
    for sample, (_, reading) in zip(samples, events):
        bad = reading.error is not None or sample.energy_j is None
        if bad:
            assert any(
                g.start_s <= sample.t_s and (g.end_s is None or sample.t_s <= g.end_s) for g in gaps
            ), f"reading at {sample.t_s} s lost without a gap"
    for g in gaps:
        assert g.end_s is None or g.end_s >= g.start_s
        assert g.reason


# -- counters -----------------------------------------------------------------------
@given(
    range_uj=st.integers(min_value=1_000, max_value=2**40),
    origin_fraction=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
    increments=st.lists(st.floats(min_value=0.0, max_value=0.5, exclude_max=True), min_size=1, max_size=60),
)
def test_a_counter_that_wraps_any_number_of_times_gives_the_exact_total(
    range_uj, origin_fraction, increments
):
    """Raw values are µJ modulo the range, as RAPL gives them; each step is under half the range.

    (A step of half the range or more cannot be told from a reset: the meter reads it as one.)
    """
    steps_uj = [int(f * range_uj) for f in increments]
    raw_uj = int(origin_fraction * range_uj)
    acc = DomainAccumulator(_domain(counter_range_j=range_uj * 1e-6))
    acc.add(0.0, Reading("gpu:0", energy_j=raw_uj * 1e-6))
    for i, step in enumerate(steps_uj, start=1):
        raw_uj = (raw_uj + step) % range_uj
        acc.add(float(i), Reading("gpu:0", energy_j=raw_uj * 1e-6))
    expected_j = sum(steps_uj) * 1e-6
    assert acc.energy_j == pytest.approx(expected_j, rel=REL, abs=len(steps_uj) * range_uj * 1e-6 * 1e-12)
    assert acc.gaps == []


@given(
    before=st.lists(st.floats(min_value=0.0, max_value=1e3), min_size=1, max_size=20),
    after=st.lists(st.floats(min_value=0.0, max_value=1e3), min_size=1, max_size=20),
    origin=st.floats(min_value=1.0, max_value=1e6),
)
def test_a_counter_that_resets_records_a_gap_and_keeps_the_energy_on_both_sides(before, after, origin):
    """Energy before the reset and after it is kept; the read interval of the reset is a gap."""
    acc = DomainAccumulator(_domain(counter_range_j=None))
    value, t_s = origin, 0.0
    acc.add(t_s, Reading("gpu:0", energy_j=value))
    for step in before:
        value += step
        t_s += 1.0
        acc.add(t_s, Reading("gpu:0", energy_j=value))
    t_s += 1.0
    value = 0.0  # below every value before it: origin >= 1 J
    acc.add(t_s, Reading("gpu:0", energy_j=value))
    for step in after:
        value += step
        t_s += 1.0
        acc.add(t_s, Reading("gpu:0", energy_j=value))
    assert acc.energy_j == pytest.approx(sum(before) + sum(after), rel=REL, abs=1e-9)
    assert len(acc.gaps) == 1 and "reset" in acc.gaps[0].reason


# -- integration of power ----------------------------------------------------------
@given(times=jittered_times(), power_w=finite_power)
def test_integrating_a_constant_power_does_not_depend_on_tick_times(times, power_w):
    acc = DomainAccumulator(_domain(provenance=Provenance.SAMPLED))
    for t_s in times:
        acc.add(t_s, Reading("gpu:0", power_w=power_w))
    expected_j = power_w * (times[-1] - times[0])
    assert acc.energy_j == pytest.approx(expected_j, rel=1e-9, abs=1e-6)


@given(
    times=jittered_times(),
    intercept_w=st.floats(min_value=0.0, max_value=1_000.0),
    slope_w_per_s=st.floats(min_value=0.0, max_value=10.0),
)
def test_the_trapezoid_rule_is_exact_for_a_linear_power_ramp(times, intercept_w, slope_w_per_s):
    acc = DomainAccumulator(_domain(provenance=Provenance.SAMPLED))
    for t_s in times:
        acc.add(t_s, Reading("gpu:0", power_w=intercept_w + slope_w_per_s * t_s))
    t0, t1 = times[0], times[-1]
    expected_j = intercept_w * (t1 - t0) + slope_w_per_s * (t1 * t1 - t0 * t0) / 2.0
    assert acc.energy_j == pytest.approx(expected_j, rel=1e-7, abs=1e-6)


@given(times=jittered_times(), power_w=finite_power, origin_j=st.floats(min_value=0.0, max_value=1e6))
def test_a_constant_power_read_through_a_counter_does_not_depend_on_tick_times(times, power_w, origin_j):
    acc = DomainAccumulator(_domain())
    for t_s in times:
        acc.add(t_s, Reading("gpu:0", energy_j=origin_j + power_w * t_s))
    expected_j = power_w * (times[-1] - times[0])
    assert acc.energy_j == pytest.approx(expected_j, rel=1e-9, abs=1e-6)


# -- windows -------------------------------------------------------------------------
@st.composite
def three_edges(draw: st.DrawFn, low: float, high: float) -> tuple[float, float, float]:
    """a <= b <= c, drawn a little beyond [low, high] so edges before and after the samples occur."""
    span = max(high - low, 1.0)
    edge = st.floats(min_value=low - span / 4, max_value=high + span / 4)
    a, b, c = sorted(draw(st.tuples(edge, edge, edge)))
    return a, b, c


def _edges_between(domain: Domain, events: list[tuple[float, Reading]], edge_times: list[float]) -> tuple[DomainAccumulator, list[Edge]]:
    """Feed (dt, reading) events as `_accumulate` does, marking an edge at each of
    `edge_times` (ascending) before the first reading after it, as the sampler does."""
    acc = DomainAccumulator(domain)
    edges = [Edge(t, 1) for t in edge_times]
    pending = list(edges)
    t_s = 0.0
    for dt, reading in events:
        t_s += dt
        while pending and pending[0].t_s < t_s:
            acc.wait_for(pending.pop(0))
        acc.add(t_s, reading)
    for edge in pending:
        acc.wait_for(edge)
    acc.settle_edges()
    return acc, edges


@given(events=readings_with_times, range_j=counter_range, data=st.data())
def test_window_energy_is_additive_over_adjacent_windows(events, range_j, data):
    a, b, c = data.draw(three_edges(0.0, sum(dt for dt, _ in events)))
    acc, (ea, eb, ec) = _edges_between(_domain(range_j), events, [a, b, c])
    assert all(e.waiting == 0 for e in (ea, eb, ec))
    left = eb.energy_j["gpu:0"] - ea.energy_j["gpu:0"]
    right = ec.energy_j["gpu:0"] - eb.energy_j["gpu:0"]
    whole = ec.energy_j["gpu:0"] - ea.energy_j["gpu:0"]
    assert left >= -1e-9 and right >= -1e-9
    assert left + right == pytest.approx(whole, rel=REL, abs=1e-9)
    assert whole <= acc.energy_j * (1 + REL) + 1e-9


@given(times=jittered_times(), power_w=finite_power, data=st.data())
def test_a_window_of_constant_power_gets_power_times_duration_whatever_the_ticks(times, power_w, data):
    start, end = sorted(data.draw(st.tuples(*[st.floats(min_value=times[0], max_value=times[-1])] * 2)))
    events = [(t - (times[i - 1] if i else 0.0), Reading("gpu:0", energy_j=power_w * t)) for i, t in enumerate(times)]
    _, (a, b) = _edges_between(_domain(), events, [start, end])
    assert b.energy_j["gpu:0"] - a.energy_j["gpu:0"] == pytest.approx(power_w * (end - start), rel=1e-9, abs=1e-6)


def test_counter_reads_at_the_edges_give_a_short_burst_its_energy_between_coarse_ticks():
    # 10 W, then 1000 W for 0.1 ms, then 10 W; ticks 1 s apart would spread the burst over the
    # whole second (0.0101 J in the window); the counter read at each edge gives 0.1 J.
    acc = DomainAccumulator(_domain())
    acc.add(0.0, Reading("gpu:0", energy_j=0.0))
    start, end = Edge(0.5 - 1e-7, 1), Edge(0.5001 - 1e-7, 1)  # each read 0.1 µs after its edge
    acc.wait_for(start)
    acc.add_counter(0.5, Reading("gpu:0", energy_j=5.0))
    acc.wait_for(end)
    acc.add_counter(0.5001, Reading("gpu:0", energy_j=5.1))
    acc.add(1.0, Reading("gpu:0", energy_j=5.1 + 10 * 0.4999))
    assert end.energy_j["gpu:0"] - start.energy_j["gpu:0"] == pytest.approx(0.1, rel=1e-9)
    assert acc.energy_j == pytest.approx(10.099, rel=1e-9)
    assert acc.peak_power_w == pytest.approx(10.099)  # edge reads make no samples and no peaks


def test_an_edge_stamped_after_a_reading_waits_for_the_next_one():
    acc = DomainAccumulator(_domain())
    acc.add(0.0, Reading("gpu:0", energy_j=0.0))
    edge = Edge(1.5, 1)
    acc.wait_for(edge)
    acc.add(1.0, Reading("gpu:0", energy_j=10.0))  # stamped before the edge, accounted after it
    assert edge.waiting == 1
    acc.add(2.0, Reading("gpu:0", energy_j=20.0))
    assert edge.waiting == 0 and edge.energy_j["gpu:0"] == pytest.approx(15.0)


# -- summarise ---------------------------------------------------------------------
@given(events=readings_with_times, range_j=counter_range, duration_s=st.floats(min_value=0.0, max_value=1e4))
def test_summarise_reports_the_last_cumulative_energy_and_peak_power(events, range_j, duration_s):
    domain = _domain(range_j)
    acc, samples = _accumulate(domain, events)
    (totals,) = summarise([domain], samples, duration_s).values()
    assert totals.energy_j == pytest.approx(acc.energy_j, rel=REL, abs=0.0)
    assert totals.energy_j >= 0
    powers = [s.power_w for s in samples if s.power_w is not None]
    assert totals.peak_power_w == (max(powers) if powers else None)
    if duration_s:
        assert totals.avg_power_w == pytest.approx(totals.energy_j / duration_s)
    else:
        assert totals.avg_power_w is None
    assert totals.provenance is domain.provenance


def test_a_domain_switching_between_counter_and_power_only_counts_no_time_twice():
    from joulemeter.meter.energy import DomainAccumulator
    from joulemeter.meter.run import Domain, Provenance
    from joulemeter.meter.sources.base import Reading

    acc = DomainAccumulator(Domain("gpu:0", "gpu", "test", Provenance.COUNTER, "test"))
    acc.add(0.0, Reading("gpu:0", 10.0, 0.0))
    acc.add(1.0, Reading("gpu:0", 10.0, None))  # counter unreadable this tick: power only
    acc.add(2.0, Reading("gpu:0", 10.0, 20.0))
    assert acc.energy_j == 10.0  # 0–1 s integrated; 1–2 s not counted again from the counter


def test_a_reset_of_a_wrapping_counter_is_a_gap_not_a_phantom_wrap():
    from joulemeter.meter.energy import DomainAccumulator
    from joulemeter.meter.run import Domain, Provenance
    from joulemeter.meter.sources.base import Reading

    domain = Domain("cpu:package-0", "cpu", "test", Provenance.COUNTER, "test", counter_range_j=1000.0)
    acc = DomainAccumulator(domain)
    acc.add(0.0, Reading(domain.name, None, 300.0))
    acc.add(0.1, Reading(domain.name, None, 310.0))
    acc.add(0.2, Reading(domain.name, None, 5.0))  # back to ~0: a reset, not a 695 J wrap in 0.1 s
    assert acc.energy_j == 10.0
    assert [g.reason for g in acc.gaps] == ["energy counter went back (reset)"]
