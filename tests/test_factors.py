"""Factors: region resolution, grid intensity from CodeCarbon's data, PUE presets, prices."""

from __future__ import annotations

import pytest

from joulemeter.meter.errors import FactorError, UnknownRegionError
from joulemeter.reports.factors import read_table, resolve_factors, known_regions


def _codecarbon():
    from codecarbon.input import DataSource

    return DataSource()


def _row(table: str, column: str, value: str) -> dict[str, str]:
    return next(r for r in read_table(table) if r[column] == value)


@pytest.mark.parametrize("code", ["FR", "FRA", "France", "france", "  FRANCE "])
def test_alpha2_alpha3_and_english_name_resolve_to_the_same_country(code):
    f = resolve_factors(code)
    expected = _codecarbon().get_global_energy_mix_data()["FRA"]
    assert f.region == "FRA"
    assert f.intensity_g_per_kwh == pytest.approx(expected["carbon_intensity"])
    assert f.intensity_citation.year == expected["year"]
    assert f.intensity_is_default is False


def test_us_state_intensity_is_egrid_pounds_per_mwh_converted_to_grams_per_kwh():
    egrid = _codecarbon().get_country_emissions_data("usa")["california"]["emissions"]  # lbs/MWh
    f = resolve_factors("US-CA")
    assert f.region == "US-CA"
    assert f.intensity_g_per_kwh == pytest.approx(egrid * 453.59237 / 1000)
    assert "eGRID" in f.intensity_citation.source


def test_codecarbon_region_name_resolves_like_its_code():
    assert resolve_factors("california").region == "US-CA"
    assert resolve_factors("quebec").region == "CA-QC"


# CodeCarbon's own factors for the Canadian mix (kg CO2/kWh of coal, petroleum and natural gas),
# as its Emissions._region_energy_mix_to_emissions_rate states them, from
# github.com/responsibleproblemsolving/energy-usage#conversion-to-co2; other sources count 0.
_CODECARBON_CANADA_KG_PER_KWH = {"coal": 0.995725971, "petroleum": 0.8166885263, "naturalGas": 0.7438415916}


@pytest.mark.parametrize(("province", "code"), [("ontario", "CA-ON"), ("quebec", "CA-QC")])
def test_canadian_provinces_match_codecarbons_own_figures(province, code):
    from codecarbon.core.emissions import Emissions
    from codecarbon.core.units import Energy
    from codecarbon.external.geography import GeoMetadata

    ds = _codecarbon()
    mix = ds.get_country_energy_mix_data("can")[province]
    by_hand = sum(mix[k] * f for k, f in _CODECARBON_CANADA_KG_PER_KWH.items()) / mix["total"] * 1000
    codecarbon_kg = Emissions(ds).get_private_infra_emissions(
        Energy.from_energy(kWh=1), GeoMetadata(country_iso_code="CAN", region=province)
    )
    f = resolve_factors(code)
    assert f.intensity_g_per_kwh == pytest.approx(by_hand)
    assert f.intensity_g_per_kwh == pytest.approx(codecarbon_kg * 1000)
    assert "combustion" in f.intensity_method and "CodeCarbon" in f.intensity_citation.source


def test_quebec_is_no_longer_inflated_by_lifecycle_factors_on_hydro():
    assert resolve_factors("quebec").intensity_g_per_kwh < 5  # was 31.2 with lifecycle factors on every source


def test_a_name_shared_by_a_country_and_a_us_state_means_the_country():
    assert resolve_factors("Georgia").region == "GEO"


def test_uk_alias_and_chinese_province_resolve():
    assert resolve_factors("UK").region == "GBR"
    assert resolve_factors("CN-BJ").intensity_g_per_kwh == pytest.approx(
        _codecarbon().get_china_provincial_emissions_data()["data"]["CN-BJ"]["emission_factor"]
    )


def test_unknown_region_raises_with_close_matches():
    with pytest.raises(UnknownRegionError) as info:
        resolve_factors("Frnace")
    assert any(s.startswith("FRA") for s in info.value.suggestions)
    assert "joulemeter factors --list" in str(info.value)


def test_no_country_uses_the_world_average_and_flags_it():
    world = _codecarbon().get_carbon_intensity_per_source_data()["world_average"]
    f = resolve_factors()
    assert f.region == "WORLD"
    assert f.intensity_is_default is True
    assert f.intensity_g_per_kwh == world


def test_asking_for_world_on_purpose_is_not_flagged_as_a_default():
    f = resolve_factors("world")
    assert (f.region, f.intensity_is_default, f.household_country) == ("WORLD", False, "WORLD")
    assert f.intensity_g_per_kwh == resolve_factors().intensity_g_per_kwh


def test_a_given_intensity_is_not_the_default_and_cites_the_user():
    f = resolve_factors(intensity_g_per_kwh=100.0)
    assert f.intensity_is_default is False
    assert f.intensity_g_per_kwh == 100.0
    assert f.intensity_citation.source == "user-supplied"


def test_pue_defaults_to_the_device_and_presets_come_from_the_data_file():
    assert resolve_factors("FR").pue == 1.0
    assert resolve_factors("FR").pue_citation is None
    industry = _row("pue.csv", "preset", "industry")
    f = resolve_factors("FR", pue="industry")
    assert f.pue == float(industry["pue"])
    assert f.pue_citation.year == int(industry["year"])
    assert resolve_factors("FR", pue="hyperscale").pue == float(_row("pue.csv", "preset", "hyperscale")["pue"])
    assert resolve_factors("FR", pue=1.2).pue == 1.2
    assert resolve_factors("FR", pue="1.3").pue == 1.3


@pytest.mark.parametrize("bad", [0.9, "0.5", "cloudy"])
def test_impossible_or_unknown_pue_is_refused(bad):
    with pytest.raises(FactorError):
        resolve_factors("FR", pue=bad)


def test_price_falls_back_from_country_to_eu_average_to_world():
    assert resolve_factors("DE").price_per_kwh == float(_row("prices.csv", "region", "DEU")["price_per_kwh"])
    italy = resolve_factors("IT")  # an EU member without its own row
    assert (italy.price_per_kwh, italy.currency) == (float(_row("prices.csv", "region", "EU")["price_per_kwh"]), "EUR")
    brazil = resolve_factors("BR")  # no price row of its own and not in the EU
    assert brazil.price_per_kwh == float(_row("prices.csv", "region", "WORLD")["price_per_kwh"])
    assert resolve_factors("US-CA").currency == "USD"  # a state takes its country's price


def test_a_given_price_overrides_and_a_currency_alone_is_refused():
    f = resolve_factors("FR", price_per_kwh=0.1, currency="CHF")
    assert (f.price_per_kwh, f.currency, f.price_citation) == (0.1, "CHF", None)
    with pytest.raises(FactorError):
        resolve_factors("FR", currency="CHF")


def test_household_country_follows_the_region():
    assert resolve_factors("US-TX").household_country == "US"
    assert resolve_factors("DE").household_country == "DE"
    assert resolve_factors("IT").household_country == "EU"
    assert resolve_factors("BR").household_country == "WORLD"
    assert resolve_factors().household_country == "US"


def test_known_regions_lists_countries_and_subnational_codes():
    codes = {code for code, _ in known_regions()}
    assert {"USA", "FRA", "US-CA", "CA-QC", "CN-BJ", "SE-SE3"} <= codes


def test_every_data_row_has_a_source_and_a_year():
    for table in ("pue.csv", "prices.csv", "equivalences.csv", "hardware.csv", "published_runs.csv", "uncertainty.csv"):
        for row in read_table(table):
            if table == "pue.csv" and row["preset"] == "device":
                continue  # a definition, not a measured figure
            assert row["source"] and row["year"], (table, row)


def test_pue_line_says_whether_a_pue_was_given() -> None:
    from joulemeter.reports.render._report import factor_lines

    def pue_source(factors) -> str:
        return next(line.source for line in factor_lines(factors) if line.label == "PUE")

    assert pue_source(resolve_factors("FR")).startswith("no PUE given: measured at the device")
    assert pue_source(resolve_factors("FR", pue=1.3)) == "as given"
    assert pue_source(resolve_factors("FR", pue="device")).startswith("preset 'device'")
