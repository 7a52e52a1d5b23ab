"""Water: on-site from a WUE preset or value, off-site from the country's water intensity of electricity."""

from __future__ import annotations

import pytest

from joulemeter.meter.errors import FactorError
from joulemeter.meter.units import J_PER_KWH
from joulemeter.reports.factors import read_table, resolve_factors
from joulemeter.reports.water import country_of, resolve_water, water, wue_presets


@pytest.mark.parametrize("table,key", [("water_wue.csv", "preset"), ("water_electricity.csv", "region")])
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


def test_no_wue_and_no_country_factor_leave_gaps_not_zeros():
    factors = resolve_water(resolve_factors("FR"))
    result = water(J_PER_KWH, None, 1.0, factors)
    assert result.onsite_l is None and result.offsite_l is None
    assert "no WUE" in factors.wue_basis


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
