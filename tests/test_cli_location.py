"""Reports account each run where it ran; --country overrides and says so; hourly intensity,
market-based Scope 2 and published runs through `joulemeter report | compare`."""

from __future__ import annotations

import dataclasses
import json

import pytest
from typer.testing import CliRunner

from joulemeter.integrations.cli import app
from joulemeter.meter.run import Location
from joulemeter.meter.store import open_ledger
from joulemeter.meter.units import J_PER_KWH
from joulemeter.reports.factors import pue_presets, resolve_factors
from tests.test_ledger import make_run

runner = CliRunner()


@pytest.fixture
def ledger(tmp_path, monkeypatch) -> str:
    """A ledger with a run in Germany ("de…"), one in Quebec ("qc…") and one with no location ("xx…")."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "no-user-config"))
    for variable in ("JOULEMETER_COUNTRY", "JOULEMETER_REGION"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.chdir(tmp_path)
    path = str(tmp_path / "ledger.sqlite")
    de = dataclasses.replace(make_run("de000001", name="de"), location=Location(country="DE", source="api"))
    qc = dataclasses.replace(make_run("qc000001", name="qc"), location=Location(region="CA-QC", source="env"))
    with open_ledger(path) as book:
        book.save_runs([de, qc, make_run("xx000001", name="nowhere")])
    return path


def _json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_a_report_uses_the_runs_own_location(ledger):
    data = _json(runner.invoke(app, ["report", "de", "-f", "json", "--ledger", ledger]))
    assert data["factors"]["region"] == "DEU"
    assert "the run's location (api)" in data["factors"]["location_basis"]


def test_country_overrides_the_recorded_location_and_says_so(ledger):
    result = runner.invoke(app, ["report", "de", "-f", "json", "--country", "FR", "--ledger", ledger])
    data = _json(result)
    assert data["factors"]["region"] == "FRA"
    assert "overriding the run's location" in data["factors"]["location_basis"]
    assert "--country FR overrides where run de000001 ran (DE)" in result.stderr


def test_a_run_without_a_location_is_accounted_at_the_labelled_world_average(ledger):
    data = _json(runner.invoke(app, ["report", "xx", "-f", "json", "--ledger", ledger]))
    assert data["factors"]["region"] == "WORLD" and data["factors"]["intensity_is_default"]
    assert "no location recorded" in data["factors"]["location_basis"]


def test_a_run_without_a_location_is_accounted_where_the_report_is_made_if_that_is_set(ledger, monkeypatch):
    monkeypatch.setenv("JOULEMETER_COUNTRY", "FR")
    data = _json(runner.invoke(app, ["report", "xx", "-f", "json", "--ledger", ledger]))
    assert data["factors"]["region"] == "FRA" and not data["factors"]["intensity_is_default"]
    basis = data["factors"]["location_basis"]
    assert "no location recorded" in basis and "assumed where this report is made: FR (env JOULEMETER_COUNTRY)" in basis


def test_a_recorded_place_with_no_known_grid_still_gets_its_report(tmp_path):
    path = str(tmp_path / "typo.sqlite")
    with open_ledger(path) as book:
        book.save_run(dataclasses.replace(make_run("qq000001", name="qq"), location=Location(country="QQ", source="env")))
    result = runner.invoke(app, ["report", "qq", "-f", "json", "--ledger", path])
    data = _json(result)
    assert data["factors"]["region"] == "WORLD"
    assert "QQ" in data["factors"]["location_basis"] and "no known grid" in data["factors"]["location_basis"]


def test_compare_accounts_each_run_where_it_ran(ledger):
    data = _json(runner.invoke(app, ["compare", "de", "qc", "--json", "--ledger", ledger]))
    rows = {row["name"]: row for row in data["rows"]}
    assert (rows["de"]["region"], rows["qc"]["region"]) == ("DEU", "CA-QC")
    kwh = make_run().total_energy_j / J_PER_KWH
    assert rows["qc"]["kg_co2e"] == pytest.approx(kwh * resolve_factors("CA-QC").intensity_g_per_kwh / 1000)


def test_market_based_scope2_sits_beside_location_based(ledger):
    data = _json(runner.invoke(app, ["compare", "de", "--supplier-factor", "50", "--json", "--ledger", ledger]))
    row = data["rows"][0]
    kwh = make_run().total_energy_j / J_PER_KWH
    assert row["kg_co2e_market"] == pytest.approx(kwh * 50 / 1000)
    assert row["kg_co2e"] == pytest.approx(kwh * resolve_factors("DE").intensity_g_per_kwh / 1000)
    table = runner.invoke(app, ["compare", "de", "--supplier-factor", "50", "--ledger", ledger])
    assert "CO2e market" in table.stdout and "never added" in table.stdout


def test_market_instruments_come_from_joulemeter_toml(ledger, tmp_path):
    (tmp_path / "joulemeter.toml").write_text("[market]\nresidual_mix_g_per_kwh = 600.0\n")
    row = _json(runner.invoke(app, ["compare", "de", "--json", "--ledger", ledger]))["rows"][0]
    assert row["kg_co2e_market"] == pytest.approx(make_run().total_energy_j / J_PER_KWH * 600 / 1000)


def test_an_hourly_csv_replaces_the_yearly_intensity_in_a_report(ledger, tmp_path):
    csv = tmp_path / "de.csv"
    csv.write_text("start,intensity_g_per_kwh\n2026-03-01T12:00:00Z,123.5\n")
    data = _json(runner.invoke(app, ["report", "de", "-f", "json", "--intensity-csv", str(csv), "--ledger", ledger]))
    assert data["factors"]["intensity_g_per_kwh"] == pytest.approx(123.5)
    assert data["factors"]["intensity_signal"] == "average" and "csv" in data["factors"]["intensity_citation"]["source"]


def test_a_malformed_hourly_csv_is_a_clear_error(ledger, tmp_path):
    csv = tmp_path / "bad.csv"
    csv.write_text("start,intensity_g_per_kwh\nyesterday,5\n")
    result = runner.invoke(app, ["report", "de", "-f", "json", "--intensity-csv", str(csv), "--ledger", ledger])
    assert result.exit_code == 2 and "line 2, column 'start'" in result.stderr


def test_compare_puts_a_measured_run_beside_a_published_one_per_token(ledger):
    with open_ledger(ledger) as book:
        run = dataclasses.replace(make_run("tok00001", name="mine"), units={"tokens": 1e6})
        book.save_run(run)
    result = runner.invoke(app, ["compare", "tok", "--published", "llama-3.1-405b", "--json", "--ledger", ledger])
    data = _json(result)
    assert data["per"] == "token"
    rows = {row["name"]: row for row in data["rows"]}
    published = rows["Llama 3.1 405B (published)"]
    assert published["provenance"] == "estimated" and rows["mine"]["provenance"] == "counter"
    assert published["kg_co2e"] == pytest.approx(8930 * 1000, rel=1e-6)  # the card's 8,930 t, not the world average
    assert published["energy_per_token_j"] == pytest.approx(30.84e6 * 700 * 3600 / 15e12)
    assert any("mind the provenance" in p for p in data["phrases"])
    assert "its source's own PUE and grid intensity" in result.stderr


def test_factors_take_joulemeter_toml_defaults_where_no_flag_is_given(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "no-user-config"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "joulemeter.toml").write_text('country = "FR"\npue = "hyperscale"\nprice = 0.5\ncurrency = "EUR"\n')
    data = _json(runner.invoke(app, ["factors", "--json"]))
    assert (data["region"], data["price_per_kwh"], data["currency"]) == ("FRA", 0.5, "EUR")
    assert data["pue"] == pue_presets()["hyperscale"][0]
    assert _json(runner.invoke(app, ["factors", "--country", "DE", "--json"]))["region"] == "DEU"
