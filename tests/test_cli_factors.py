"""`joulemeter factors | estimate | published` through typer's CliRunner."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from joulemeter.integrations.cli import app
from joulemeter.reports.factors import read_table

runner = CliRunner()


def _eq(key: str) -> dict[str, str]:
    return next(r for r in read_table("equivalences.csv") if r["key"] == key)


@pytest.fixture
def world_warning_unsaid():
    """The world-average warning is said once per process, through the handler each
    invocation adds: forget that it was said, and keep only this invocation's handler."""
    import logging

    from joulemeter.reports import factors

    logger = logging.getLogger("joulemeter")
    handlers = list(logger.handlers)
    logger.handlers.clear()
    factors._warn_world_default.cache_clear()
    yield
    logger.handlers[:] = handlers


def test_version_is_the_installed_distributions():
    from importlib.metadata import version

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output == f"joulemeter {version('joulemeter')}\n"


def test_an_error_is_one_line_and_shows_brackets_literally():
    result = runner.invoke(app, ["factors", "--country", "[xx]"])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1
    assert "unknown country or region '[xx]'. Run `joulemeter factors --list`" in result.output


def test_estimate_megatron_prints_about_34_mwh_and_an_american_comparison(world_warning_unsaid):
    result = runner.invoke(app, ["estimate", "--hardware", "V100", "--count", "512", "--days", "9.2"])
    assert result.exit_code == 0, result.output
    assert "33.9 MWh" in result.output
    assert "estimated" in result.output
    assert "average American" in result.output
    assert "world-average" in result.output  # no --country: said loudly


@pytest.mark.parametrize("command", [["factors"], ["estimate", "--hardware", "T4", "--hours", "1"]])
def test_the_no_country_warning_is_said_once(world_warning_unsaid, command):
    result = runner.invoke(app, command)
    assert result.exit_code == 0, result.output
    assert result.output.count("world-average") == 1


def test_an_estimate_writes_each_figure_in_one_unit_and_its_range_in_that_unit():
    result = runner.invoke(app, ["estimate", "--hardware", "A100", "--count", "8", "--days", "30", "--pue", "1.1"])
    assert result.exit_code == 0, result.output
    assert "2.53 MWh (range 1.37–2.79 MWh)" in result.output
    assert " GJ" not in result.output and "2,530 kWh" not in result.output  # not GJ, MWh and kWh mixed


@pytest.mark.parametrize("name", ["RTX4090", "rtx 4090", "GeForce-RTX-4090", "rtx_4090"])
def test_hardware_names_are_found_whatever_their_case_spaces_and_hyphens(name):
    result = runner.invoke(app, ["estimate", "--hardware", name, "--hours", "1", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["estimate"]["hardware"] == "RTX-4090"


def test_the_known_hardware_is_listed_with_its_power_and_source():
    result = runner.invoke(app, ["estimate", "--list-hardware", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)["hardware"]}
    assert rows["RTX-4090"]["power_w"] == 450 and rows["RTX-4090"]["citation"]["year"] == 2022
    text = runner.invoke(app, ["estimate", "--list-hardware"]).output
    assert "H100-SXM" in text and "700 W" in text


def test_estimate_json_parses_with_energy_emissions_cost_and_sourced_equivalences():
    result = runner.invoke(app, ["estimate", "--hardware", "V100", "--count", "512", "--days", "9.2",
                                 "--country", "US", "--pue", "1.1", "--json"])
    assert result.exit_code == 0, result.output
    d = json.loads(result.stdout)
    fp = d["footprint"]
    assert d["estimate"]["energy_j"] == pytest.approx(512 * 300 * 220.8 * 3600)
    assert fp["energy_kwh"] == pytest.approx(33_914.88 * 1.1)
    assert fp["kg_co2e"] == pytest.approx(fp["energy_kwh"] * fp["factors"]["intensity_g_per_kwh"] / 1000)
    assert fp["currency"] == "USD" and fp["cost"] == pytest.approx(fp["energy_kwh"] * fp["factors"]["price_per_kwh"])
    assert fp["provenance"] == "estimated" and fp["energy_kwh_range"][0] < fp["energy_kwh"]
    person = next(e for e in fp["equivalences"] if e["key"] == "person_us")
    assert person["value"] == pytest.approx(fp["energy_kwh"] / float(_eq("person_us")["factor"]))
    assert person["citation"]["source"] == _eq("person_us")["source"]


def test_estimate_needs_exactly_one_of_hours_and_days():
    result = runner.invoke(app, ["estimate", "--hardware", "T4", "--hours", "1", "--days", "1"])
    assert result.exit_code == 2
    assert "exactly one" in result.output


def test_unknown_hardware_exits_2_with_a_message_and_no_traceback():
    result = runner.invoke(app, ["estimate", "--hardware", "H10", "--hours", "1"])
    assert result.exit_code == 2
    assert "unknown hardware" in result.output and "H100" in result.output  # suggestions kept
    assert "Traceback" not in result.output


def test_unknown_country_exits_2_with_suggestions():
    result = runner.invoke(app, ["factors", "--country", "Frnace"])
    assert result.exit_code == 2
    assert "FRA" in result.output and "Traceback" not in result.output


def test_factors_shows_sources_and_json_round_trips():
    result = runner.invoke(app, ["factors", "--country", "US-CA", "--pue", "industry"])
    assert result.exit_code == 0, result.output
    assert "eGRID" in result.output and "Uptime" in result.output
    d = json.loads(runner.invoke(app, ["factors", "--country", "FR", "--json"]).stdout)
    assert d["region"] == "FRA" and d["intensity_citation"]["year"]


def test_factors_list_includes_subnational_codes():
    d = json.loads(runner.invoke(app, ["factors", "--list", "--json"]).stdout)
    codes = {r["code"] for r in d["regions"]}
    assert {"USA", "US-CA", "CA-QC"} <= codes
    assert d["pue_presets"]["device"] == 1.0


def test_published_lists_the_catalogue_with_sources():
    result = runner.invoke(app, ["published"])
    assert result.exit_code == 0, result.output
    assert "GPT-3" in result.output and "Patterson" in result.output
    d = json.loads(runner.invoke(app, ["published", "--json"]).stdout)
    gpt3 = next(r for r in d["published_runs"] if r["name"] == "gpt-3")
    assert gpt3["footprint"]["energy_kwh"] == pytest.approx(1_287_000)
    assert gpt3["citation"]["year"] == 2021
