"""`joulemeter inventory` through typer's CliRunner against a real SQLite ledger."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from joulemeter.integrations.cli import inventory_cmd
from joulemeter.meter.store import open_ledger
from joulemeter.reports.factors import factors_for_run, resolve_factors
from tests.test_inventory import RUNS, metered

runner = CliRunner()
FACTOR_ARGS = ["--country", "US", "--pue", "1.2"]


@pytest.fixture(scope="module")
def app():
    test_app = typer.Typer()
    test_app.callback()(lambda: None)  # keep `inventory` a subcommand, as in the real app
    inventory_cmd.register(test_app)
    return test_app


@pytest.fixture
def ledger(tmp_path):
    path = tmp_path / "ledger.sqlite"
    with open_ledger(path) as book:
        book.save_runs(RUNS)
    return str(path)


@pytest.fixture
def located(tmp_path, monkeypatch):
    """A ledger of a run in France and one in Germany; no joulemeter.toml in reach."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "user-config"))
    monkeypatch.delenv("JOULEMETER_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    runs = [metered("FR", 2e6), metered("DE", 1e6)]
    path = tmp_path / "located.sqlite"
    with open_ledger(path) as book:
        book.save_runs(runs)
    return str(path), runs


def _json(app, *args):
    result = runner.invoke(app, ["inventory", "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_country_overrides_every_runs_grid_and_the_inventory_says_so(app, located):
    path, runs = located
    own = _json(app, "--ledger", path)
    given = _json(app, "--ledger", path, "--country", "US")
    assert {line["grid"] for line in own["largest_runs"]} == {factors_for_run(r).region for r in runs}
    assert {line["grid"] for line in given["largest_runs"]} == {resolve_factors("US").region}
    assert any("overriding the recorded location of 2 of 2 runs" in n for n in given["notes"])
    assert not any("overriding" in n for n in own["notes"])


def test_supplier_factor_gives_a_market_based_figure_beside_an_unchanged_location_based_one(app, located):
    path, _ = located
    plain = _json(app, "--ledger", path)["totals"]
    supplied = _json(app, "--ledger", path, "--supplier-factor", "0")["totals"]
    assert supplied["location_kg_co2e"] == plain["location_kg_co2e"]
    assert plain["market_kg_co2e"]["value"] == pytest.approx(plain["location_kg_co2e"]["value"])
    assert supplied["market_kg_co2e"]["value"] == 0


def test_json_has_totals_groups_and_sources(app, ledger):
    result = runner.invoke(app, ["inventory", "--ledger", ledger, "--json", "-g", "project", *FACTOR_ARGS])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["totals"]["runs"] == len(RUNS)
    assert {g["key"] for g in data["groups"]} == {"llm", "vision"}
    assert all("citation" in m for m in data["methodology"])


def test_period_project_and_tag_reach_the_library(app, ledger):
    result = runner.invoke(app, ["inventory", "--ledger", ledger, "--json", "--since", "2025-01-01",
                                 "--until", "2025-01-31", "--project", "llm", "--tag", "prod", *FACTOR_ARGS])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["totals"]["runs"] == 1


def test_embodied_and_water_options_change_the_figures(app, ledger):
    def totals(*args):
        out = runner.invoke(app, ["inventory", "--ledger", ledger, "--json", *FACTOR_ARGS, *args])
        assert out.exit_code == 0, out.output
        return json.loads(out.stdout)["totals"]

    base = totals()
    longer = totals("--life-years", "12")
    assert longer["embodied_kg_co2e"]["value"] == pytest.approx(base["embodied_kg_co2e"]["value"] / 2)
    assert base["onsite_water_l"]["value"] is None
    assert totals("--wue", "aws-2021")["onsite_water_l"]["value"] > 0
    covered = totals("--embodied-kg", "L4=1000", "--life-years", "5", "--utilization", "0.8")
    assert covered["embodied_gaps_device_hours"] == {}


def test_markdown_goes_to_stdout_and_html_to_a_file(app, ledger, tmp_path):
    md = runner.invoke(app, ["inventory", "--ledger", ledger, *FACTOR_ARGS])
    assert md.exit_code == 0 and "# Sustainability inventory" in md.stdout
    target = tmp_path / "inv.html"
    html = runner.invoke(app, ["inventory", "--ledger", ledger, "-f", "html", "--out", str(target), *FACTOR_ARGS])
    assert html.exit_code == 0, html.output
    assert target.read_text().startswith("<!DOCTYPE html>")


@pytest.mark.parametrize("args,message", [
    (["--group-by", "team"], "cannot group by"),
    (["--since", "soon"], "ISO 8601"),
    (["--embodied-kg", "H100"], "HARDWARE=KG"),
    (["--wue", "damp"], "unknown WUE"),
    (["--format", "parquet"], "--format takes"),
    (["--utilization", "2"], "utilization"),
])
def test_bad_options_exit_2_with_a_clear_message(app, ledger, args, message):
    result = runner.invoke(app, ["inventory", "--ledger", ledger, *FACTOR_ARGS, *args])
    assert result.exit_code == 2
    assert message in result.output


@pytest.mark.parametrize("countries,warned", [(["DE", "FR"], False), (["DE", None], True)])
def test_the_world_average_is_said_only_where_a_run_recorded_no_place(tmp_path, countries, warned):
    import subprocess
    import sys

    runs = [metered(c or "DE", 1e6) for c in countries]
    for run, country in zip(runs, countries):
        if country is None:
            run.location = None
    path = tmp_path / "ledger.sqlite"
    with open_ledger(path) as book:
        book.save_runs(runs)
    out = subprocess.run([sys.executable, "-m", "joulemeter.integrations.cli", "inventory", "--ledger", str(path)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "no country given" not in out.stderr  # the inventory's own note says it, for the runs it concerns
    assert ("the world average: no country given" in out.stdout) is warned


def test_a_run_with_no_place_takes_where_the_inventory_is_made_as_a_report_does(tmp_path):
    import os
    import subprocess
    import sys

    run = metered("DE", 1e6)
    run.location = None
    path = tmp_path / "ledger.sqlite"
    with open_ledger(path) as book:
        book.save_run(run)
    out = subprocess.run([sys.executable, "-m", "joulemeter.integrations.cli", "inventory", "--ledger", str(path)],
                         capture_output=True, text=True, timeout=60, env=os.environ | {"JOULEMETER_COUNTRY": "FR"})
    assert out.returncode == 0, out.stderr
    assert "the report's factors for the other 1 run (France" in out.stdout
