"""The cited data files in reports/data: every figure sourced and dated, parseable, in the unit the code expects.

Conversions are checked by hand arithmetic from the published value each row cites, so a typo in
either column fails here rather than in a report.
"""

from __future__ import annotations

import datetime
import math

import pycountry
import pytest

from joulemeter.reports.factors import normalise_name, read_table

CITED_TABLES = ("prices.csv", "equivalences.csv", "hardware.csv", "published_runs.csv", "pue.csv",
                "uncertainty.csv", "eu_members.csv", "cloud_regions.csv", "embodied.csv", "water_wue.csv",
                "water_electricity.csv", "water_generation.csv")
KEY_COLUMN = {"prices.csv": "region", "equivalences.csv": "key", "hardware.csv": "name",
              "published_runs.csv": "name", "pue.csv": "preset", "uncertainty.csv": "provenance",
              "eu_members.csv": "alpha3", "cloud_regions.csv": "region",
              "embodied.csv": "key", "water_wue.csv": "preset", "water_electricity.csv": "region",
              "water_generation.csv": "technology"}
# Rows that are definitions, not measured figures: (table, key) -> why they carry no source.
UNSOURCED_DEFINITIONS = {("pue.csv", "device"): "PUE 1.0 means 'measured at the device', a definition"}
KG_PER_LB = 0.45359237  # exact, 1959 international yard and pound agreement
KM_PER_MILE = 1.609344  # exact, same agreement

REQUIRED_PRICES = {"USA", "EU", "DEU", "FRA", "GBR", "CHN", "IND", "JPN", "WORLD"}
REQUIRED_EQUIVALENCES = {
    "household_us", "household_eu", "household_uk", "household_de", "household_fr", "household_cn",
    "household_in",
    "person_us", "person_eu", "person_uk", "person_de", "person_fr", "person_cn", "person_in", "person_world",
    "car_km", "flight_ny_sf", "smartphone_charges", "tv_hours", "tree_seedlings_10yr",
}
REQUIRED_HARDWARE = {"V100-SXM2", "V100-PCIe", "A100-SXM", "A100-PCIe-40GB", "A100-PCIe-80GB", "H100-SXM",
                     "H100-PCIe", "H200-SXM", "B200", "L4", "T4", "A10", "A10G", "RTX-3090", "RTX-4090", "TPU-v2",
                     "TPU-v3", "TPU-v4"}
REQUIRED_RUNS = {"gpt-3", "t5-11b", "meena", "gshard-600b", "switch-transformer", "megatron-lm-8.3b",
                 "bert-base", "bert-large", "bloom-176b", "llama-2-70b", "llama-3-70b", "llama-3.1-405b"}


def _rows(table: str) -> list[dict[str, str]]:
    return list(read_table(table))


def _keyed(table: str) -> dict[str, dict[str, str]]:
    return {row[KEY_COLUMN[table]]: row for row in _rows(table)}


def _optional(text: str) -> float | None:
    return float(text) if text.strip() else None


@pytest.mark.parametrize("table", CITED_TABLES)
def test_every_figure_has_a_source_a_plausible_year_and_a_link_or_a_reason(table):
    this_year = datetime.date.today().year
    for row in _rows(table):
        key = row[KEY_COLUMN[table]]
        if (table, key) in UNSOURCED_DEFINITIONS:
            assert not row["source"], f"{table}:{key} is listed as a definition but has a source"
            continue
        assert row["source"].strip(), f"{table}:{key} has no source"
        assert row["year"].strip().isdigit(), f"{table}:{key} year {row['year']!r} is not a year"
        assert 1990 <= int(row["year"]) <= this_year, f"{table}:{key} year {row['year']} is implausible"
        url, note = row.get("url", ""), row.get("note", row.get("notes", ""))
        assert url.startswith(("https://", "http://")) or "no url" in note, (
            f"{table}:{key} has neither a link nor a note saying why")


@pytest.mark.parametrize("table", CITED_TABLES)
def test_keys_are_unique_so_a_lookup_cannot_pick_the_wrong_row(table):
    keys = [row[KEY_COLUMN[table]] for row in _rows(table)]
    assert len(keys) == len(set(keys)), sorted(k for k in keys if keys.count(k) > 1)


def test_required_price_rows_exist_with_a_positive_price_and_an_iso_currency():
    prices = _keyed("prices.csv")
    assert REQUIRED_PRICES <= set(prices)
    for region, row in prices.items():
        assert float(row["price_per_kwh"]) > 0, region
        assert pycountry.currencies.get(alpha_3=row["currency"]) is not None, (region, row["currency"])


def test_price_regions_are_alpha3_codes_or_the_two_aggregates_the_code_looks_up():
    for region in _keyed("prices.csv"):
        assert region in ("EU", "WORLD") or pycountry.countries.get(alpha_3=region) is not None, region


def test_required_equivalences_exist():
    assert REQUIRED_EQUIVALENCES <= set(_keyed("equivalences.csv"))


def test_equivalence_countries_are_alpha2_eu_or_world_as_the_household_lookup_expects():
    for key, row in _keyed("equivalences.csv").items():
        country = row["country"]
        assert country in ("", "EU", "WORLD") or pycountry.countries.get(alpha_2=country) is not None, key


def test_equivalence_basis_style_rank_and_factor_unit_match_what_accounting_divides_by():
    for key, row in _keyed("equivalences.csv").items():
        assert row["basis"] in ("energy", "co2"), key
        assert row["style"] in ("times", "count", "duration"), key
        assert int(row["rank"]) >= 1, key
        assert float(row["factor"]) > 0 and float(row["published_value"]) > 0, key
        expected_prefix = "kWh per " if row["basis"] == "energy" else "kg CO2"
        assert row["factor_unit"].startswith(expected_prefix), (key, row["factor_unit"])


def _factor_from_published(row: dict[str, str]) -> float:
    """The factor in the code's unit, computed by hand from the published value and its unit."""
    value, unit = float(row["published_value"]), row["published_unit"]
    conversions = {
        "kWh": 1.0,  # kWh per household / per capita / per year
        "monthly kWh": 12.0,  # kWh a month -> kWh a year
        "MWh": 1000.0,  # MWh -> kWh
        "g CO2 per mile": 1 / KM_PER_MILE / 1000,  # g/mile -> kg/km
        "lbs": KG_PER_LB,  # lb -> kg
        "metric ton": 1000.0,  # t -> kg
        "W ": 1 / 1000,  # W drawn for one hour = Wh -> kWh per hour of use
    }
    for prefix, factor in conversions.items():
        if unit.startswith(prefix):
            return value * factor
    raise AssertionError(f"{row['key']}: no hand conversion for published unit {unit!r}")


def test_every_equivalence_factor_is_its_published_value_converted_to_the_codes_unit():
    for key, row in _keyed("equivalences.csv").items():
        assert float(row["factor"]) == pytest.approx(_factor_from_published(row), rel=1e-4), key


def test_car_factor_is_400_g_per_mile_in_kg_per_km():
    # 400 g/mile ÷ 1.609344 km/mile ÷ 1000 g/kg = 0.248548 kg/km (EPA-420-F-23-014)
    assert float(_keyed("equivalences.csv")["car_km"]["factor"]) == pytest.approx(0.248548, rel=1e-4)


def test_tv_factor_is_74_watts_for_one_hour_in_kwh():
    # Urban et al. 2019: 74 W on-mode; 74 W × 1 h = 74 Wh = 0.074 kWh per TV-hour
    assert float(_keyed("equivalences.csv")["tv_hours"]["factor"]) == pytest.approx(0.074, rel=1e-9)


def test_required_hardware_exists_with_a_positive_board_power():
    hardware = _keyed("hardware.csv")
    assert REQUIRED_HARDWARE <= set(hardware)
    for name, row in hardware.items():
        assert 0 < float(row["power_w"]) <= 2000, (name, row["power_w"])


def test_no_hardware_alias_points_at_two_rows():
    owner: dict[str, str] = {}
    for row in _rows("hardware.csv"):
        for alias in (row["name"], *(a for a in row["aliases"].split(";") if a.strip())):
            key = normalise_name(alias)
            assert owner.setdefault(key, row["name"]) == row["name"], (alias, owner[key], row["name"])


def test_a10g_is_its_own_row_and_not_the_a10():
    hardware = _keyed("hardware.csv")
    assert float(hardware["A10G"]["power_w"]) != float(hardware["A10"]["power_w"])


def test_required_published_runs_exist_on_hardware_the_table_knows():
    runs, hardware = _keyed("published_runs.csv"), _keyed("hardware.csv")
    assert REQUIRED_RUNS <= set(runs)
    for name, row in runs.items():
        assert row["hardware"] in hardware, (name, row["hardware"])
        assert row["energy_includes_pue"] in ("yes", "no"), name
        for column in ("count", "hours", "device_hours", "power_w", "reported_energy_mwh", "reported_co2e_t",
                       "pue", "intensity_g_per_kwh"):
            value = _optional(row[column])
            assert value is None or value > 0, (name, column, row[column])
        assert _optional(row["reported_energy_mwh"]) is not None or _optional(row["device_hours"]) is not None, (
            f"{name}: neither energy nor device-hours, so no energy can be derived")
        pue = _optional(row["pue"])
        assert pue is None or pue >= 1.0, name


def test_device_hours_are_count_times_hours_where_both_are_given():
    for name, row in _keyed("published_runs.csv").items():
        count, hours, device_hours = (_optional(row[c]) for c in ("count", "hours", "device_hours"))
        if count is not None and hours is not None:
            assert device_hours == pytest.approx(count * hours, rel=1e-6), name


def test_reported_energy_matches_chips_times_hours_times_measured_watts_times_pue():
    # Patterson et al. 2021 §2.5: MWh = hours × chips × W × PUE / 1e6; tables round to 3 figures.
    checked = 0
    for name, row in _keyed("published_runs.csv").items():
        energy, power, device_hours = (_optional(row[c]) for c in ("reported_energy_mwh", "power_w", "device_hours"))
        if energy is None or power is None or device_hours is None:
            continue
        pue = _optional(row["pue"]) if row["energy_includes_pue"] == "yes" else 1.0
        assert energy == pytest.approx(device_hours * power * pue / 1e6, rel=0.02), name
        checked += 1
    assert checked >= 6  # GPT-3, T5, Meena, GShard, Switch, Evolved Transformer NAS, BLOOM


def test_reported_co2e_matches_energy_times_the_cited_intensity():
    checked = 0
    for name, row in _keyed("published_runs.csv").items():
        energy, intensity, co2e = (_optional(row[c]) for c in ("reported_energy_mwh", "intensity_g_per_kwh",
                                                              "reported_co2e_t"))
        if energy is None or intensity is None or co2e is None:
            continue
        assert co2e == pytest.approx(energy * intensity / 1000, rel=0.02), name  # MWh × g/kWh = kg; ÷ 1000 = t
        checked += 1
    assert checked >= 6


def test_megatron_hours_are_300k_iterations_at_2_10_days_per_68507_iteration_epoch():
    # Shoeybi et al. 2019, Table 2 (2.10 days/epoch, 68,507 iterations/epoch) and Fig. 6 (300k iterations).
    row = _keyed("published_runs.csv")["megatron-lm-8.3b"]
    days = 300_000 / 68_507 * 2.10
    assert float(row["hours"]) == pytest.approx(days * 24, abs=0.5)
    assert int(row["count"]) == 512


def test_pue_presets_are_at_least_one():
    for preset, row in _keyed("pue.csv").items():
        assert float(row["pue"]) >= 1.0, preset


def test_uncertainty_bands_straddle_one():
    for provenance, row in _keyed("uncertainty.csv").items():
        low, high = float(row["low_factor"]), float(row["high_factor"])
        assert 0 < low < 1 < high and math.isfinite(high), provenance


def test_eu_member_list_has_the_27_states_as_alpha3_codes():
    members = _keyed("eu_members.csv")
    assert len(members) == 27
    assert all(pycountry.countries.get(alpha_3=code) is not None for code in members)


def test_the_estimated_band_spans_every_published_run_that_measured_its_power():
    import math as _math

    from joulemeter.reports.estimates import published_runs

    ratios = {r.name: r.measured_power_ratio for r in published_runs() if r.measured_power_ratio is not None}
    assert {"switch-transformer", "bert-base", "gpt-3"} <= set(ratios)
    band = _keyed("uncertainty.csv")["estimated"]
    # the range rounded outwards to two decimals (round(…, 6) first: 1.1 × 100 is 110.00000000000001)
    assert float(band["low_factor"]) == _math.floor(round(min(ratios.values()) * 100, 6)) / 100
    assert float(band["high_factor"]) == _math.ceil(round(max(ratios.values()) * 100, 6)) / 100


def test_no_equivalence_rests_on_the_2010_blog_figure():
    assert all("shrinkthatfootprint" not in row["url"] for row in _rows("equivalences.csv"))
    assert int(_keyed("equivalences.csv")["household_us"]["year"]) >= 2024


def test_every_cloud_region_names_a_grid_with_an_intensity():
    from joulemeter.reports.factors import cloud_grid, resolve_factors

    for row in _rows("cloud_regions.csv"):
        grid, _ = cloud_grid(row["provider"], row["region"])
        assert resolve_factors(grid).region == grid, row["region"]
