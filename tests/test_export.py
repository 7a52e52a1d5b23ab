"""`joulemeter export`: JSON, CSV and Parquet of runs read back the same figures."""

from __future__ import annotations

import io
import json

import pandas
import pytest

from joulemeter.meter import EnergyMeter
from joulemeter.meter.export import export_runs, runs_frame
from tests.doubles import LinearCounterSource


@pytest.fixture(scope="module")
def run():
    with EnergyMeter("export-me", store=False, interval_s=0.01, sources=[LinearCounterSource(40.0)]) as m:
        with m.window("w"):
            m.count(8, "samples")
    return m.run


def test_parquet_export_reads_back_every_sample(run, tmp_path):
    path = tmp_path / "samples.parquet"
    export_runs([run], "parquet", path)
    frame = pandas.read_parquet(path)
    assert list(frame.columns) == ["run_id", "t_s", "domain", "power_w", "energy_j"]
    assert len(frame) == len(run.samples)
    assert frame["energy_j"].iloc[-1] == pytest.approx(run.samples[-1].energy_j)


def test_csv_export_of_domains_carries_energy_and_provenance(run):
    out = io.StringIO()
    export_runs([run], "csv", out, table="domains")
    frame = pandas.read_csv(io.StringIO(out.getvalue()))
    assert frame.loc[0, "energy_j"] == pytest.approx(run.total_energy_j)
    assert frame.loc[0, "provenance"] == "counter"


def test_json_export_is_the_full_run(run):
    out = io.StringIO()
    export_runs([run], "json", out)
    (data,) = json.loads(out.getvalue())
    assert data["id"] == run.id and len(data["samples"]) == len(run.samples)


def test_parquet_to_a_stream_and_unknown_formats_are_refused(run):
    with pytest.raises(ValueError, match="Parquet is binary"):
        export_runs([run], "parquet", io.StringIO())
    with pytest.raises(ValueError, match="unknown export format"):
        export_runs([run], "xlsx", io.StringIO())
    with pytest.raises(ValueError, match="unknown table"):
        runs_frame([run], "gaps")


def test_cli_export_refuses_unknown_formats_with_a_clear_message(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from joulemeter.integrations.cli import app

    monkeypatch.setenv("JOULEMETER_LEDGER", str(tmp_path / "ledger.sqlite"))
    result = CliRunner().invoke(app, ["export", "last", "--format", "xlsx"])
    assert result.exit_code == 2
    assert "unknown format 'xlsx'" in result.output


def strict_json(text: str):
    """json.loads that refuses NaN and Infinity, which Python's parser accepts but JSON lacks."""
    return json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} is not JSON"))


def test_every_json_the_cli_prints_is_valid_with_unknowns_as_null(monkeypatch):
    """A run read from a ledger written before it refused non-finite numbers (or by hand)."""
    from typer.testing import CliRunner

    import joulemeter.meter.store
    from joulemeter.integrations.cli import app
    from tests.test_cli_report import FakeLedger
    from tests.test_compare import make_run

    run = make_run("dddd1111eeee2222", "nan-metadata", energy_j=10.0,
                   metadata={"accuracy": float("nan"), "loss": float("inf"), "nested": [float("-inf")]})
    run.energy["gpu:0"].energy_j = float("inf")

    class Ledger(FakeLedger):
        location = "a fake ledger"

        def list_runs(self, **filters):
            return list(self.runs.values())

    monkeypatch.setattr(joulemeter.meter.store, "open_ledger", lambda location=None, **how: Ledger([run]))
    runner = CliRunner()
    for args in (["runs", "--json"], ["show", "dddd", "--json"], ["export", "dddd", "-f", "json"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, (args, result.output)
        data = strict_json(result.stdout)
        record = data[0] if isinstance(data, list) else data
        assert record["metadata"]["accuracy"] is None and record["metadata"]["nested"] == [None], args
        assert record["energy"]["gpu:0"]["energy_j"] is None, args
