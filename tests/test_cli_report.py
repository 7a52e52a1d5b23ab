"""`joulemeter report | compare` through typer's CliRunner, against a fake ledger and a real
SQLite one."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from joulemeter.integrations.cli import app
from joulemeter.meter.errors import RunNotFoundError
from joulemeter.reports.render import formatting, frame_records
from tests.test_compare import epoch, make_run

runner = CliRunner()
FACTOR_ARGS = ["--intensity", "400", "--pue", "1.5", "--price", "0.30", "--currency", "EUR"]


def full_run():
    return make_run("aaaa1111bbbb2222", "full", energy_j=3400.0, units={"inferences": 1000},
                    metadata={"variant": "full", "accuracy": 0.91},
                    windows=[epoch(1, 0.0, 50.0, 1700.0)])


def pruned_run():
    return make_run("cccc3333dddd4444", "pruned", energy_j=1000.0, units={"inferences": 1000},
                    metadata={"variant": "pruned-50", "accuracy": 0.90})


class FakeLedger:
    """The part of meter.store's Ledger the commands use: a context manager with get_run."""

    damage = None  # a sound file

    def __init__(self, runs):
        self.runs = {run.id: run for run in runs}

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return None

    def get_run(self, ref, samples=True):
        matches = [run for run_id, run in self.runs.items() if run_id.startswith(ref)]
        if len(matches) != 1:
            raise RunNotFoundError(f"no run {ref!r} in the fake ledger; `joulemeter runs` lists the ids")
        return matches[0]


@pytest.fixture()
def fake_ledger(monkeypatch):
    import joulemeter.meter.store

    ledger = FakeLedger([full_run(), pruned_run()])
    monkeypatch.setattr(joulemeter.meter.store, "open_ledger", lambda location=None, **how: ledger)
    return ledger


@pytest.fixture()
def sqlite_ledger(tmp_path, monkeypatch):
    from joulemeter.meter.store import open_ledger

    path = tmp_path / "ledger.sqlite"
    later = pruned_run()
    later.started_at = "2026-01-05T11:00:00+00:00"  # the newest: what "last" names
    with open_ledger(path) as ledger:
        ledger.save_run(full_run())
        ledger.save_run(later)
    monkeypatch.setenv("JOULEMETER_LEDGER", str(path))
    return path


# -- report ----------------------------------------------------------------------------


def test_report_without_output_writes_html_named_after_the_run(fake_ledger, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["report", "aaaa", *FACTOR_ARGS])
    assert result.exit_code == 0, result.output
    written = tmp_path / "joulemeter-report-aaaa1111.html"
    assert written.exists()
    assert "joulemeter-report-aaaa1111.html" in result.output
    assert written.read_text().startswith("<!DOCTYPE html>")


def test_report_text_formats_go_to_stdout(fake_ledger):
    result = runner.invoke(app, ["report", "aaaa", "cccc", "-f", "md", *FACTOR_ARGS])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("# Energy comparison of 2 runs")
    assert "3.4× less" in result.stdout


def test_report_csv_to_a_file_parses(fake_ledger, tmp_path):
    import pandas

    out = tmp_path / "runs.csv"
    result = runner.invoke(app, ["report", "aaaa", "cccc", "-f", "csv", "-o", str(out), *FACTOR_ARGS])
    assert result.exit_code == 0, result.output
    frame = pandas.read_csv(out)
    assert len(frame) == 4  # two runs × two domains
    assert frame["energy_j"].sum() == pytest.approx(4400.0)


def test_report_of_an_unknown_run_exits_2_with_a_message_and_no_traceback(fake_ledger, tmp_path,
                                                                          monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["report", "zzzz", *FACTOR_ARGS])
    assert result.exit_code == 2
    assert "no run 'zzzz'" in result.stderr
    assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


def test_report_into_a_missing_folder_exits_2_and_writes_nothing(fake_ledger, tmp_path):
    result = runner.invoke(app, ["report", "aaaa", "-o", str(tmp_path / "no" / "r.html"), *FACTOR_ARGS])
    assert result.exit_code == 2
    assert "cannot write" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_report_in_an_unknown_format_exits_2(fake_ledger):
    result = runner.invoke(app, ["report", "aaaa", "-f", "pdf", *FACTOR_ARGS])
    assert result.exit_code == 2
    assert "html, md, latex, json, csv" in result.stderr


def test_report_with_an_unknown_country_exits_2_with_suggestions(fake_ledger):
    result = runner.invoke(app, ["report", "aaaa", "-f", "md", "--country", "Germny"])
    assert result.exit_code == 2
    assert "unknown country or region 'Germny'" in result.stderr


# -- compare ---------------------------------------------------------------------------


def test_compare_prints_ratios_and_phrases(fake_ledger):
    result = runner.invoke(app, ["compare", "aaaa", "cccc", "--per", "1000", *FACTOR_ARGS])
    assert result.exit_code == 0, result.output
    assert "pruned: 3.4× less energy per 1,000 inferences than full" in " ".join(result.stdout.split())
    assert "baseline" in result.stdout


def test_compare_per_unit_gives_co2e_and_cost_per_unit_and_a_single_measurement_says_so():
    from joulemeter.integrations.cli.report_cmd import _comparison_tables
    from joulemeter.reports.compare import compare
    from joulemeter.reports.factors import resolve_factors

    result = compare([full_run(), pruned_run()], per="1000", factors=resolve_factors(intensity_g_per_kwh=400))
    energy, emissions = _comparison_tables(result)[:2]
    headers = [str(c.header) for c in emissions.columns]
    assert headers[1:] == ["CO2e location per 1,000 inferences", "CO2e market per 1,000 inferences", "cost per 1,000 inferences"]
    rows = frame_records(result.frame)
    co2e_cells = list(emissions.columns[1].cells)
    assert co2e_cells == [formatting.co2e(r["kg_co2e_per_1000"]) for r in rows]
    assert "3.4× less (one measurement)" in list(energy.columns[4].cells)  # no trials: no interval claimed


def test_compare_defaults_to_the_unit_every_run_counted_and_says_so(fake_ledger):
    result = runner.invoke(app, ["compare", "aaaa", "cccc", *FACTOR_ARGS])
    assert result.exit_code == 0, result.output
    assert "comparing energy per 1,000 inferences or samples, which every run counted" in result.stderr
    assert "3.4× less energy per 1,000 inferences" in " ".join(result.stdout.split())


def test_compare_per_run_compares_whole_runs(fake_ledger):
    result = runner.invoke(app, ["compare", "aaaa", "cccc", "--per", "run", "--json", *FACTOR_ARGS])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["per"] is None


def test_compare_json_with_a_baseline_gives_ratios_to_it(fake_ledger):
    result = runner.invoke(app, ["compare", "aaaa", "cccc", "--baseline", "cccc", "--json",
                                 *FACTOR_ARGS])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["baseline_id"] == "cccc3333dddd4444"
    ratios = {row["id"]: row["ratio"] for row in data["rows"]}
    assert ratios == {"aaaa1111bbbb2222": pytest.approx(3.4), "cccc3333dddd4444": pytest.approx(1.0)}


def test_compare_per_a_unit_nobody_counted_exits_2(fake_ledger):
    result = runner.invoke(app, ["compare", "aaaa", "cccc", "--per", "token", *FACTOR_ARGS])
    assert result.exit_code == 2
    assert "none of the runs counted tokens" in result.stderr


# -- a real ledger ---------------------------------------------------------------------


def test_report_json_from_a_real_sqlite_ledger(sqlite_ledger):
    result = runner.invoke(app, ["report", "last", "aaaa", "-f", "json", *FACTOR_ARGS])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    names = [entry["run"]["name"] for entry in data["runs"]]
    assert names == ["pruned", "full"]
    assert data["runs"][1]["footprint"]["kg_co2e"] == pytest.approx(3400.0 * 1.5 / 3.6e6 * 0.4)
    assert data["comparison"]["rows"][1]["ratio"] == pytest.approx(3.4)


def test_compare_from_a_real_sqlite_ledger_by_id_prefix(sqlite_ledger):
    result = runner.invoke(app, ["compare", "aaaa", "cccc", "--per", "inference", "--json",
                                 *FACTOR_ARGS])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["rows"]
    assert [row["energy_per_inference_j"] for row in rows] == pytest.approx([3.4, 1.0])


def test_report_html_from_a_real_sqlite_ledger_draws_its_samples(sqlite_ledger, tmp_path):
    out = tmp_path / "report.html"
    result = runner.invoke(app, ["report", "aaaa", "-o", str(out), *FACTOR_ARGS])
    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert html.count('<figure class="plot"') == 2  # power over time needs the samples
    assert "<script" not in html


MARKUP_NAME = "x[/]y [bold]z[/b] [link=http://e.test]w"  # 40 characters: whole in `runs`


def test_markup_in_names_and_metadata_is_printed_literally_by_every_command(tmp_path, monkeypatch):
    from joulemeter.meter.store import open_ledger

    run = make_run("eeee5555ffff6666", MARKUP_NAME, energy_j=500.0, units={"inferences": 10},
                   metadata={"variant": "v", "tuning": "[red]v[/]", "accuracy": 0.5},
                   windows=[epoch(1, 0.0, 5.0, 500.0)])
    run.windows[0].path = run.windows[0].name = "[/]epoch"
    path = tmp_path / "ledger.sqlite"
    with open_ledger(path) as ledger:
        ledger.save_run(run)
    monkeypatch.setenv("JOULEMETER_LEDGER", str(path))
    monkeypatch.setenv("COLUMNS", "400")  # wide enough that no cell is folded
    for args in (["runs"], ["show", "last"], ["compare", "last", *FACTOR_ARGS]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, (args, result.output)
        assert MARKUP_NAME in result.output, args
    shown = runner.invoke(app, ["show", "last"]).output
    assert "[/]epoch" in shown and "tuning [red]v[/]" in shown
    compared = runner.invoke(app, ["compare", "last", *FACTOR_ARGS]).output
    assert "[red]v[/]" in compared and "Metadata" in compared
