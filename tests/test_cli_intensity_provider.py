"""`joulemeter report --intensity-provider` end to end (issue 15): the run's hours are fetched
from a fake Electricity Maps on 127.0.0.1, used for its CO2e, cached in the ledger, and the
same report later needs neither the network nor the key."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from joulemeter.integrations.cli import app
from joulemeter.meter.store import open_ledger
from tests.test_intensity_providers import START, _em_points, api  # noqa: F401 - api is a fixture
from tests.test_ledger import make_run

runner = CliRunner()


def test_report_uses_the_providers_hours_and_then_its_cache(api, tmp_path, monkeypatch):  # noqa: F811
    fake, base = api
    fake.routes["/v3/carbon-intensity/past-range"] = (200, _em_points([100.0, 300.0]))
    ledger = tmp_path / "ledger.sqlite"
    with open_ledger(ledger) as book:  # 750 J over 3 s, starting at START
        book.save_run(make_run("grid", started_at=START.isoformat()))
    monkeypatch.setenv("JOULEMETER_LEDGER", str(ledger))
    monkeypatch.setenv("JOULEMETER_INTENSITY_URL", base)
    args = ["report", "grid", "-f", "json", "--intensity-provider", "electricitymaps", "--zone", "DE"]

    without_key = runner.invoke(app, args)
    assert without_key.exit_code == 2 and "ELECTRICITYMAPS_API_KEY" in without_key.output
    assert fake.requests == []

    fetched = runner.invoke(app, [*args, "--api-key", "secret-key"])
    assert fetched.exit_code == 0, fetched.output
    assert len(fake.requests) == 1 and fake.requests[0][2]["auth-token"] == "secret-key"
    assert "secret-key" not in fetched.stdout

    monkeypatch.setenv("JOULEMETER_INTENSITY_URL", "http://127.0.0.1:9")  # nothing listens there
    offline = runner.invoke(app, args)  # no key, no network: the cached hours
    assert offline.exit_code == 0, offline.output
    assert len(fake.requests) == 1
    report = json.loads(fetched.stdout)
    factors = report["runs"][0]["footprint"]["factors"]
    assert factors["intensity_g_per_kwh"] == 100.0  # the hour the run ran in, not DE's yearly figure
    assert (factors["intensity_signal"], factors["intensity_is_default"]) == ("average", False)
    cached = json.loads(offline.stdout)
    cached.pop("generated_at"), report.pop("generated_at")  # the two reports were made a moment apart
    assert cached == report


def test_the_zone_defaults_to_the_country_the_run_recorded(api, tmp_path, monkeypatch):  # noqa: F811
    from joulemeter.meter.run import Location

    fake, base = api
    fake.routes["/v3/carbon-intensity/past-range"] = (200, _em_points([100.0, 300.0]))
    placed, unplaced = make_run("in-fr", started_at=START.isoformat()), make_run("nowhere", started_at=START.isoformat())
    placed.location = Location(country="France", source="api")
    with open_ledger(tmp_path / "ledger.sqlite") as book:
        book.save_runs([placed, unplaced])
    monkeypatch.setenv("JOULEMETER_LEDGER", str(tmp_path / "ledger.sqlite"))
    monkeypatch.setenv("JOULEMETER_INTENSITY_URL", base)
    args = ["-f", "json", "--intensity-provider", "electricitymaps", "--api-key", "k"]

    fetched = runner.invoke(app, ["report", "in-fr", *args])
    assert fetched.exit_code == 0, fetched.output
    assert fake.requests[0][1]["zone"] == ["FR"]
    refused = runner.invoke(app, ["report", "nowhere", *args])
    assert refused.exit_code == 2 and "needs --zone" in refused.output and "no location recorded" in refused.output
