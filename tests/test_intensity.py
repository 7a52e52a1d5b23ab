"""Hourly intensity from a user's CSV: the documented format, clear errors, and a run's
intensity weighted by when its energy was drawn; average and marginal never mixed."""

from __future__ import annotations

import dataclasses

import pytest

from joulemeter.meter.errors import FactorError
from joulemeter.meter.run import Run, Sample
from joulemeter.reports.accounting import footprint, scope2
from joulemeter.reports.factors import resolve_factors
from joulemeter.reports.intensity import IntensityError, read_intensity_csv, run_intensity


def _csv(tmp_path, text: str, name: str = "grid.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


HOURS = """\
# hourly intensity, Germany
start,intensity_g_per_kwh,zone,signal,method
2026-03-01T12:00:00Z,100,DE,average,lifecycle
2026-03-01T13:00:00Z,300,DE,average,lifecycle
2026-03-01T12:00:00Z,700,DE,marginal,
2026-03-01T13:00:00Z,900,DE,marginal,
"""


def _run(samples: list[Sample], duration_s: float = 7200.0) -> Run:
    return Run(id="r1", name="t", started_at="2026-03-01T12:00:00+00:00", duration_s=duration_s,
               samples=samples)


def test_a_run_drawing_three_quarters_of_its_energy_in_the_second_hour_weighs_it_so(tmp_path):
    series = read_intensity_csv(_csv(tmp_path, HOURS))
    # 1 kJ over the first hour, 3 kJ over the second, from a cumulative counter
    samples = [Sample(0.0, "gpu:0", None, 0.0), Sample(3600.0, "gpu:0", None, 1000.0),
               Sample(7200.0, "gpu:0", None, 4000.0)]
    timed = run_intensity(_run(samples), series)
    assert timed.intensity_g_per_kwh == pytest.approx((1 * 100 + 3 * 300) / 4)
    assert (timed.low_g_per_kwh, timed.high_g_per_kwh) == (100, 300)
    assert "energy-weighted" in timed.weighting


def test_an_energy_step_across_an_hour_boundary_is_split_by_time(tmp_path):
    series = read_intensity_csv(_csv(tmp_path, HOURS))
    samples = [Sample(1800.0, "gpu:0", None, 0.0), Sample(5400.0, "gpu:0", None, 1000.0)]
    assert run_intensity(_run(samples), series).intensity_g_per_kwh == pytest.approx(200.0)


def test_without_samples_the_hours_are_weighted_by_time(tmp_path):
    series = read_intensity_csv(_csv(tmp_path, HOURS))
    timed = run_intensity(_run([], duration_s=5400.0), series)  # 1 h at 100, 0.5 h at 300
    assert timed.intensity_g_per_kwh == pytest.approx((3600 * 100 + 1800 * 300) / 5400)
    assert "time-weighted" in timed.weighting


def test_average_and_marginal_are_read_apart_and_labelled(tmp_path):
    path = _csv(tmp_path, HOURS)
    average, marginal = read_intensity_csv(path), read_intensity_csv(path, signal="marginal")
    assert [s.intensity_g_per_kwh for s in average.spans] == [100, 300]
    assert [s.intensity_g_per_kwh for s in marginal.spans] == [700, 900]
    run = _run([])
    factors = run_intensity(run, marginal).factors(resolve_factors("DE"))
    assert factors.intensity_signal == "marginal" and "marginal" in str(factors.intensity_citation)
    with pytest.raises(FactorError, match="needs an average"):
        scope2(run, factors)


def test_the_hourly_intensity_replaces_the_yearly_one_in_the_footprint(tmp_path):
    run = dataclasses.replace(_run([], duration_s=3600.0), energy={})
    series = read_intensity_csv(_csv(tmp_path, HOURS))
    factors = run_intensity(run, series).factors(resolve_factors("DE"))
    assert factors.intensity_g_per_kwh == pytest.approx(100.0)
    assert factors.intensity_method == "lifecycle"
    assert footprint(3.6e6, factors).kg_co2e == pytest.approx(0.1)  # 1 kWh at 100 g


def test_a_run_outside_the_series_names_the_uncovered_time(tmp_path):
    series = read_intensity_csv(_csv(tmp_path, HOURS))
    with pytest.raises(IntensityError, match=r"no intensity from 2026-03-01T14:00:00\+00:00"):
        run_intensity(_run([], duration_s=3 * 3600.0), series)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("start,intensity_g_per_kwh\n2026-03-01T12:00:00,100\n", "line 2, column 'start'.*no time zone"),
        ("start,intensity_g_per_kwh\n2026-03-01T12:00:00Z,lots\n", "line 2, column 'intensity_g_per_kwh'.*not a number"),
        ("start,intensity_g_per_kwh\n2026-03-01T12:00:00Z,-5\n", "line 2, column 'intensity_g_per_kwh'.*≥ 0"),
        ("start,end,intensity_g_per_kwh\n2026-03-01T12:00Z,2026-03-01T11:00Z,5\n", "line 2, column 'end'.*not after"),
        ("start,intensity_g_per_kwh,signal\n2026-03-01T12:00Z,5,peak\n", "line 2, column 'signal'"),
        ("start,intensity\n2026-03-01T12:00Z,5\n", "line 1: unknown column 'intensity'"),
        ("# only a comment\n", "is empty"),
        ("start,intensity_g_per_kwh\n2026-03-01T12:00Z,5,6\n", "line 2: 3 cells"),
        ("start,intensity_g_per_kwh,zone\n2026-03-01T12:00Z,5,DE\n2026-03-01T12:00Z,5,FR\n", "several zones"),
        ("start,end,intensity_g_per_kwh\n2026-03-01T12:00Z,2026-03-01T14:00Z,5\n2026-03-01T13:00Z,2026-03-01T15:00Z,5\n",
         "overlap"),
    ],
)
def test_a_malformed_file_is_refused_naming_file_line_and_column(tmp_path, text, words):
    path = _csv(tmp_path, text)
    with pytest.raises(IntensityError, match=words) as caught:
        read_intensity_csv(path)
    assert str(path) in str(caught.value)


def test_rows_without_an_end_last_until_the_next_start(tmp_path):
    series = read_intensity_csv(_csv(tmp_path, "start,intensity_g_per_kwh\n2026-03-01T12:00Z,1\n"
                                               "2026-03-01T12:30Z,2\n"))
    assert [(s.end - s.start).total_seconds() for s in series.spans] == [1800.0, 3600.0]
