"""Water: on-site from a WUE preset or value, off-site from the country's water intensity of electricity."""

from __future__ import annotations

import pytest

from joulemeter.meter.errors import FactorError
from joulemeter.meter.units import J_PER_KWH, L_PER_US_GALLON
from joulemeter.reports.factors import read_table, resolve_factors
from joulemeter.reports.water import (
    country_of,
    generation_water,
    mix_water,
    resolve_water,
    water,
    wue_presets,
)

# Germany's 2023 generation in CodeCarbon's global_energy_mix.json (TWh), and each technology's
# central US gal/MWh in water_generation.csv: the estimate worked by hand
GERMANY_2023_TWH = {"coal": 135.35, "gas": 76.0, "oil": 20.13, "nuclear": 8.75, "hydroelectricity": 19.48,
                    "biofuel": 46.02, "other_renewable_exc_biofuel": 0.21, "solar": 61.56, "wind": 137.29}
CENTRAL_GAL_PER_MWH = {"coal": 545, "gas": 205, "oil": 545, "nuclear": 610, "hydroelectricity": 4491,
                       "biofuel": 390, "other_renewable_exc_biofuel": 270, "solar": 1, "wind": 0}


@pytest.mark.parametrize("table,key", [("water_wue.csv", "preset"), ("water_electricity.csv", "region"),
                                       ("water_generation.csv", "technology")])
def test_every_water_factor_has_a_source_year_and_link(table, key):
    rows = list(read_table(table))
    assert rows
    for row in rows:
        assert row["source"].strip() and row["year"].isdigit() and row["url"].startswith("https://"), row[key]
    keys = [row[key] for row in rows]
    assert len(keys) == len(set(keys))


def test_onsite_is_wue_times_device_energy_and_offsite_is_ewif_times_facility_energy():
    factors = resolve_water(resolve_factors("US", pue=1.5), "aws-2021")
    result = water(10 * J_PER_KWH, None, 1.5, factors)
    assert result.onsite_l == pytest.approx(10 * 0.25)  # AWS 2021: 0.25 L/kWh of IT energy
    assert result.offsite_l == pytest.approx(10 * 1.5 * 3.14)  # U.S. 3.14 L per kWh generated


def test_the_energy_range_is_carried_into_both_parts():
    factors = resolve_water(resolve_factors("US"), 1.0)
    result = water(10 * J_PER_KWH, (8 * J_PER_KWH, 13 * J_PER_KWH), 1.0, factors)
    assert result.onsite_l_range == pytest.approx((8.0, 13.0))
    assert result.offsite_l_range == pytest.approx((8 * 3.14, 13 * 3.14))


def test_no_wue_and_no_country_leave_gaps_not_zeros():
    factors = resolve_water(resolve_factors())  # the world average: no country, so no mix
    result = water(J_PER_KWH, None, 1.0, factors)
    assert result.onsite_l is None and result.offsite_l is None
    assert "no WUE" in factors.wue_basis and factors.ewif_basis is None


def test_a_country_without_a_cited_factor_is_estimated_from_its_generation_mix():
    gal = sum(twh * CENTRAL_GAL_PER_MWH[tech] for tech, twh in GERMANY_2023_TWH.items()) / sum(GERMANY_2023_TWH.values())
    by_hand = gal * 3.785411784 / 1000  # US gal per MWh -> L per kWh
    factors = resolve_water(resolve_factors("DE"))
    assert by_hand == pytest.approx(1.584, abs=0.001)
    assert (factors.ewif_region, factors.ewif_l_per_kwh) == ("DEU", pytest.approx(by_hand, rel=1e-3))
    assert "generation mix" in factors.ewif_basis and factors.ewif_citation.year == 2023
    assert factors.to_dict()["ewif_range_l_per_kwh"] == list(factors.ewif_range_l_per_kwh)


def test_the_mix_estimate_ranges_over_cooling_and_hydropower_evaporation():
    germany, norway = mix_water("DEU"), mix_water("NOR")
    for found in (germany, norway):
        low, high = found.range_l_per_kwh
        assert 0 <= low < found.l_per_kwh <= high
    # Norway is almost all hydropower: its low end charges power with no reservoir evaporation
    assert norway.range_l_per_kwh[0] < 0.05 * norway.l_per_kwh
    assert norway.l_per_kwh > 5 * germany.l_per_kwh


def test_the_factor_range_widens_the_energy_range_of_offsite_water():
    factors = resolve_water(resolve_factors("DE"))
    low, high = factors.ewif_range_l_per_kwh
    result = water(10 * J_PER_KWH, (8 * J_PER_KWH, 13 * J_PER_KWH), 1.2, factors)
    assert result.offsite_l == pytest.approx(10 * 1.2 * factors.ewif_l_per_kwh)
    assert result.offsite_l_range == pytest.approx((8 * 1.2 * low, 13 * 1.2 * high))


def test_a_cited_factor_wins_over_the_mix_and_the_us_mix_estimate_is_below_it():
    # the US keeps Li et al.'s 3.14 L/kWh (WRI), with no range of its own; the mix method gives less
    # for the US (its hydropower and cooling factors are lower than WRI's), within a factor of two
    factors = resolve_water(resolve_factors("US"))
    assert factors.ewif_range_l_per_kwh is None and factors.ewif_basis.startswith("cited factor")
    assert 3.14 / 2 < mix_water("USA").l_per_kwh < 3.14


def test_every_technology_names_a_mix_column_and_together_they_make_each_countrys_total():
    from joulemeter.reports.factors import codecarbon_data

    rows = generation_water()
    for row in rows.values():
        assert 0 <= row.gal_per_mwh_low <= row.gal_per_mwh <= row.gal_per_mwh_high, row.technology
    for alpha3, mix in codecarbon_data().get_global_energy_mix_data().items():
        parts = sum(float(mix[f"{tech}_TWh"]) for tech in rows)
        assert parts == pytest.approx(float(mix["total_TWh"]), rel=0.02, abs=0.05), alpha3


def test_a_us_gallon_is_231_cubic_inches():
    assert L_PER_US_GALLON == pytest.approx(231 * 2.54**3 / 1000, rel=1e-12)


def test_a_us_state_takes_the_us_factor():
    assert country_of("US-CA") == "USA"
    assert resolve_water(resolve_factors("US-CA")).ewif_region == "USA"
    assert country_of("WORLD") is None


@pytest.mark.parametrize("bad", ["-1", "lots", -0.5])
def test_a_bad_wue_is_refused_with_the_presets_named(bad):
    with pytest.raises(FactorError, match="WUE"):
        resolve_water(resolve_factors("US"), bad)


def test_presets_are_read_case_insensitively():
    assert resolve_water(resolve_factors("US"), "AWS-2021").wue_l_per_kwh == wue_presets()["aws-2021"].wue_l_per_kwh
