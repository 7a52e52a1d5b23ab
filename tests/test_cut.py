"""A run cut out of a longer one holds its pieces back to back: their energy, duration,
units, samples and gaps, and nothing of what ran between them."""

from __future__ import annotations

from datetime import datetime

import pytest

from joulemeter.meter.cut import cut_run
from joulemeter.meter.run import Domain, DomainEnergy, Gap, Provenance, Run, Sample, Status, Window

CPU = Domain("cpu", "cpu", "test cpu", Provenance.COUNTER, "test counter")


def _span() -> Run:
    """10 s at 1 J/s: pieces a (1-3 s) and b (6-7 s) with other work around them; a reading
    every second, the cumulative energy t J; a gap from 6.5 s that never ends."""
    pieces = [
        Window("a", "round-1/a", 1.0, 3.0, {"cpu": 2.0}, {"inferences": 200.0}),
        Window("other", "round-1/other", 3.0, 6.0, {"cpu": 3.0}, {"inferences": 900.0}),
        Window("b", "round-2/b", 6.0, 7.0, {"cpu": 1.0}, {"inferences": 100.0}, note="short"),
    ]
    return Run(
        id="span",
        name="rounds",
        project="p",
        status=Status.COMPLETED,
        started_at="2026-01-01T00:00:00.000+00:00",
        ended_at="2026-01-01T00:00:10.000+00:00",
        duration_s=10.0,
        domains=[CPU],
        energy={"cpu": DomainEnergy("cpu", 10.0, Provenance.COUNTER, 1.0, 1.0, idle_power_w=0.5)},
        windows=pieces,
        units={"inferences": 1200.0},
        samples=[Sample(float(t), "cpu", 1.0 + t / 100, float(t)) for t in range(1, 11)],
        gaps=[Gap("cpu", 6.5, None, "lost")],
        metadata={"devices": {"cpu": {}}},
    )


def _cut(span: Run) -> Run:
    a, _, b = span.windows
    return cut_run(span, [a, b], names=["trial-1", "trial-2"], name="model/a", tags=["a"],
                   metadata={"variant": "a"}, outer="inference")


def test_the_cut_run_has_its_pieces_energy_duration_and_units_and_nothing_between() -> None:
    run = _cut(_span())
    assert run.id != "span" and run.name == "model/a" and run.tags == ["a"] and run.project == "p"
    assert run.duration_s == pytest.approx(3.0)  # 2 s + 1 s, not the 6 s from a's start to b's end
    assert run.total_energy_j == pytest.approx(3.0)
    assert run.energy["cpu"].avg_power_w == pytest.approx(1.0)
    assert run.energy["cpu"].idle_power_w == 0.5
    assert run.units == {"inferences": 300.0}
    assert run.metadata == {"variant": "a"}


def test_pieces_follow_each_other_inside_the_outer_window() -> None:
    run = _cut(_span())
    outer, first, second = run.windows
    assert (outer.path, outer.start_s, outer.end_s, outer.total_energy_j) == ("inference", 0.0, 3.0, 3.0)
    assert outer.units == {"inferences": 300.0}
    assert (first.path, first.start_s, first.end_s) == ("inference/trial-1", 0.0, 2.0)
    assert (second.path, second.start_s, second.end_s, second.note) == ("inference/trial-2", 2.0, 3.0, "short")
    assert first.energy_per_unit_j("inferences") == pytest.approx(0.01)


def test_wall_clock_times_are_those_of_the_first_start_and_the_last_end() -> None:
    run = _cut(_span())
    assert datetime.fromisoformat(run.started_at) == datetime.fromisoformat("2026-01-01T00:00:01+00:00")
    assert datetime.fromisoformat(run.ended_at) == datetime.fromisoformat("2026-01-01T00:00:07+00:00")


def test_samples_inside_the_pieces_come_along_with_energy_counted_from_the_cut_start() -> None:
    run = _cut(_span())
    # a's readings at 2 and 3 s, b's at 7 s; the one at 1 s is a's start, not inside it
    assert [s.t_s for s in run.samples] == pytest.approx([1.0, 2.0, 3.0])
    assert [s.energy_j for s in run.samples] == pytest.approx([1.0, 2.0, 3.0])
    assert run.energy["cpu"].peak_power_w == pytest.approx(1.07)


def test_gaps_are_clipped_to_the_pieces_and_one_that_never_ended_stays_open_in_the_last() -> None:
    run = _cut(_span())
    assert run.gaps == [Gap("cpu", pytest.approx(2.5), None, "lost")]


def test_open_or_overlapping_pieces_are_refused() -> None:
    span = _span()
    a, other, b = span.windows
    with pytest.raises(ValueError, match="time order"):
        cut_run(span, [b, a], names=["1", "2"], name="x")
    with pytest.raises(ValueError, match="closed"):
        cut_run(span, [Window("open", "open", 8.0)], names=["1"], name="x")
    with pytest.raises(ValueError, match="one name per piece"):
        cut_run(span, [a, other], names=["1"], name="x")
