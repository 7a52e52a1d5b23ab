"""Footprint: J -> facility kWh -> kg CO2e -> cost, equivalences, ranges, per-unit and projections.

Every expected value is computed here from the constants read back from the data files.
"""

from __future__ import annotations

import json

import pytest

from joulemeter.meter.errors import FactorError
from joulemeter.meter.run import DomainEnergy, Provenance, Run
from joulemeter.reports.accounting import footprint, format_number, per_unit, projection, uncertainty_bands
from joulemeter.reports.estimates import estimate
from joulemeter.reports.factors import read_table, resolve_factors


def _eq(key: str) -> dict[str, str]:
    return next(r for r in read_table("equivalences.csv") if r["key"] == key)


def _band(provenance: str) -> tuple[float, float]:
    row = next(r for r in read_table("uncertainty.csv") if r["provenance"] == provenance)
    return float(row["low_factor"]), float(row["high_factor"])


def _run(*domains: tuple[str, float, Provenance], units: dict[str, float] | None = None) -> Run:
    return Run(
        id="r1", name="r1",
        energy={name: DomainEnergy(name, j, prov, None, None) for name, j, prov in domains},
        units=units or {},
    )


def test_joules_become_facility_kwh_kg_and_cost():
    f = resolve_factors("DE", pue=1.5)
    fp = footprint(7.2e6, f, provenance="counter")  # 2 kWh at the device
    assert fp.energy_j == 7.2e6
    assert fp.facility_energy_j == pytest.approx(7.2e6 * 1.5)
    assert fp.energy_kwh == pytest.approx(7.2e6 * 1.5 / 3.6e6)
    assert fp.kg_co2e == pytest.approx(fp.energy_kwh * f.intensity_g_per_kwh / 1000)
    assert fp.cost == pytest.approx(fp.energy_kwh * f.price_per_kwh)
    assert fp.currency == "EUR"


def test_counter_measured_run_has_no_range():
    fp = footprint(_run(("gpu:0", 3.6e6, Provenance.COUNTER)), resolve_factors("FR"))
    assert fp.provenance == "counter"
    assert fp.energy_kwh_range is None and fp.kg_co2e_range is None


def test_mixed_run_range_adds_each_domains_band():
    run = _run(("gpu:0", 3.6e6, Provenance.COUNTER), ("ram", 3.6e6, Provenance.ESTIMATED))
    fp = footprint(run, resolve_factors("FR"))
    low, high = _band("estimated")
    assert fp.provenance == "mixed"
    assert fp.energy_kwh == pytest.approx(2.0)
    assert fp.energy_kwh_range == pytest.approx((1.0 + low, 1.0 + high))


def test_sampled_run_carries_the_sampled_band_in_kwh_and_kg():
    f = resolve_factors("FR", pue=1.2)
    fp = footprint(_run(("gpu:0", 3.6e6, Provenance.SAMPLED)), f)
    low, high = _band("sampled")
    assert fp.energy_kwh_range == pytest.approx((1.2 * low, 1.2 * high))
    assert fp.kg_co2e_range == pytest.approx((1.2 * low * f.intensity_g_per_kwh / 1000,
                                              1.2 * high * f.intensity_g_per_kwh / 1000))


def test_an_estimate_is_estimated_with_the_estimated_band():
    est = estimate("T4", count=2, hours=10)
    fp = footprint(est, resolve_factors("US"))
    low, high = _band("estimated")
    assert fp.provenance == "estimated"
    assert fp.energy_kwh_range == pytest.approx((fp.energy_kwh * low, fp.energy_kwh * high))


def test_household_equivalence_is_facility_kwh_over_the_cited_yearly_use():
    row = _eq("household_us")
    fp = footprint(3.6e9 * 21.43, resolve_factors("US", pue=1.1), provenance="counter")  # 21.43 MWh at device
    eq = fp.equivalence("household_us")
    assert eq.value == pytest.approx(21.43 * 1000 * 1.1 / float(row["factor"]))
    assert eq.factor == float(row["factor"])
    assert eq.citation.year == int(row["year"])
    assert eq.text.endswith("× the yearly electricity of an average US household")


def test_car_equivalence_uses_kg_and_the_epa_per_mile_figure_converted_to_km():
    row = _eq("car_km")
    assert float(row["factor"]) == pytest.approx(float(row["published_value"]) / 1.609344 / 1000, rel=1e-4)
    f = resolve_factors("FR")
    fp = footprint(3.6e6 * 10, f, provenance="counter")
    assert fp.equivalence("car_km").value == pytest.approx(fp.kg_co2e / float(row["factor"]))


def test_every_equivalence_divides_the_right_quantity_by_its_factor():
    fp = footprint(3.6e9, resolve_factors("GB"), provenance="counter")
    for eq in fp.equivalences():
        row = _eq(eq.key)
        amount = fp.energy_kwh if row["basis"] == "energy" else fp.kg_co2e
        assert eq.value == pytest.approx(amount / float(row["factor"])), eq.key
        assert eq.citation.source == row["source"]


def test_best_equivalence_prefers_household_electricity_when_it_reads_well():
    fp = footprint(3.6e9 * 20, resolve_factors("US"), provenance="counter")
    assert fp.best_equivalence().key == "household_us"


def test_tiny_energy_reads_as_a_percentage_of_a_household_year():
    fp = footprint(3.6e6 * 3, resolve_factors("US"), provenance="counter")  # 3 kWh
    eq = fp.equivalence("household_us")
    assert eq.text == f"{format_number(3 / float(_eq('household_us')['factor']) * 100)} % of the yearly electricity of an average US household"


def test_best_equivalence_moves_to_a_readable_one_for_small_runs():
    fp = footprint(3.6e5, resolve_factors("US"), provenance="counter")  # 0.1 kWh
    best = fp.best_equivalence()
    assert 0.1 <= best.value <= 1000
    assert best.key != "household_us"


@pytest.mark.parametrize(
    ("energy_j", "text"),
    [
        # 32.5 J = 9.028e-6 kWh; ÷ 0.074 kWh per TV-hour (74 W, Urban et al.) = 1.220e-4 h = 0.439 s
        (32.5, "0.439 seconds of an average US television switched on"),
        # 0.21 kWh (a 70 W T4 for 3 h) ÷ 0.074 = 2.84 h
        (0.21 * 3.6e6, "2.84 hours of an average US television switched on"),
        # 33,900 kWh ÷ 0.074 = 458,108 h = 52.3 years of 8,766 h
        (33_900 * 3.6e6, "52.3 years of an average US television switched on"),
    ],
)
def test_tv_equivalence_is_written_in_the_time_unit_that_suits_it(energy_j, text):
    fp = footprint(energy_j, resolve_factors("US"), provenance="counter")
    assert fp.equivalence("tv_hours").text == text


def test_a_few_joules_read_best_as_seconds_of_television_in_the_us():
    # every other comparison is thousands of times below readable for 32.5 J
    assert footprint(32.5, resolve_factors("US"), provenance="estimated").best_equivalence().key == "tv_hours"


def test_a_french_report_never_uses_a_us_figure_and_says_nothing_rather_than_something_absurd():
    tiny = footprint(32.5, resolve_factors("FR"), provenance="estimated")
    assert all(eq.key not in {"tv_hours", "car_km", "smartphone_charges"} for eq in tiny.ranked_equivalences())
    assert tiny.best_equivalence() is None  # 32.5 J is 0.0000002 % of a French household's year
    assert tiny.to_dict()["best_equivalence"] is None
    big = footprint(3.6e9 * 20, resolve_factors("FR"), provenance="counter")
    assert big.best_equivalence().key == "household_fr"


def test_to_dict_is_json_ready_and_carries_sources():
    fp = footprint(estimate("V100", count=8, hours=24), resolve_factors("FR"))
    d = json.loads(json.dumps(fp.to_dict()))
    assert d["energy_kwh"] == pytest.approx(fp.energy_kwh)
    assert d["provenance"] == "estimated"
    assert d["factors"]["intensity_citation"]["source"]
    assert all(e["citation"]["source"] and "factor" in e for e in d["equivalences"])


def test_per_unit_figures_and_none_without_units():
    run = _run(("gpu:0", 7200.0, Provenance.COUNTER), units={"samples": 1000})
    f = resolve_factors("FR")
    d = per_unit(run, "samples", f)
    assert d["j_per_unit"] == pytest.approx(7.2)
    assert d["wh_per_unit"] == pytest.approx(7.2 / 3600)
    assert d["j_per_1000"] == pytest.approx(7200)
    assert d["kg_co2e_per_1000"] == pytest.approx(7200 / 3.6e6 * f.intensity_g_per_kwh / 1000)
    assert per_unit(run, "tokens", f) is None


def test_projection_multiplies_per_inference_energy_out():
    f = resolve_factors("US")
    fp = projection(2.0, 1e6, 365, f)
    assert fp.energy_j == pytest.approx(2.0 * 1e6 * 365)
    assert fp.provenance == "estimated"
    with pytest.raises(FactorError):
        projection(-1.0, 10, 1, f)


def test_negative_energy_and_unknown_provenance_are_refused():
    f = resolve_factors("FR")
    with pytest.raises(FactorError):
        footprint(-1.0, f)
    with pytest.raises(FactorError):
        footprint(1.0, f, provenance="guessed")


def test_uncertainty_bands_match_the_data_file():
    assert uncertainty_bands()["sampled"][:2] == _band("sampled")


@pytest.mark.parametrize("value, text", [(33914.88, "33,900"), (2.6821, "2.68"), (0.00041234, "0.000412"), (999.96, "1,000"), (0.99962, "1.00")])
def test_format_number_gives_three_significant_figures(value, text):
    assert format_number(value) == text
