"""`joulemeter delete | rename | tag` and the period filters (issue 12, item 9): the runs that
would change are shown first, a deletion is asked about (or refused without a terminal),
and no other run is touched."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from joulemeter.integrations.cli import app, manage_cmd
from joulemeter.meter.store import open_ledger
from tests.test_ledger import make_run

runner = CliRunner()


@pytest.fixture
def ledger(tmp_path, monkeypatch) -> str:
    path = str(tmp_path / "ledger.sqlite")
    with open_ledger(path) as book:
        book.save_runs([
            make_run("a" * 32, name="nov-30", project="vision", started_at="2026-11-30T10:00:00.000+00:00"),
            make_run("b" * 32, name="dec-01", project="vision", started_at="2026-12-01T10:00:00.000+00:00"),
            make_run("c" * 32, name="dec-02", project="nlp", started_at="2026-12-02T10:00:00.000+00:00"),
        ])
    monkeypatch.setenv("JOULEMETER_LEDGER", path)
    return path


def names(path: str) -> list[str]:
    with open_ledger(path, for_reading=True) as book:
        return [r.name for r in book.list_runs()]


def test_runs_and_export_choose_by_period(ledger) -> None:
    listing = runner.invoke(app, ["runs", "--since", "2026-12-01", "--until", "2026-12-01"])
    assert listing.exit_code == 0, listing.output
    assert "dec-01" in listing.output and "nov-30" not in listing.output and "dec-02" not in listing.output
    exported = runner.invoke(app, ["export", "--since", "2026-12-02", "-f", "csv", "--table", "domains"])
    assert exported.exit_code == 0, exported.output
    assert {line.split(",")[0] for line in exported.stdout.splitlines()[1:]} == {"c" * 32}


def test_export_wants_runs_or_filters_not_both_nor_neither(ledger) -> None:
    neither = runner.invoke(app, ["export"])
    both = runner.invoke(app, ["export", "last", "--project", "nlp"])
    assert neither.exit_code == both.exit_code == 2
    assert "which runs to export" in neither.output and "not both" in both.output


def test_a_bad_period_names_its_flag(ledger) -> None:
    result = runner.invoke(app, ["runs", "--since", "last tuesday"])
    assert result.exit_code == 2 and "(--since)" in result.output


def test_delete_shows_the_runs_and_refuses_without_a_terminal_or_yes(ledger) -> None:
    result = runner.invoke(app, ["delete", "--project", "vision"])
    assert result.exit_code == 2
    assert "nov-30" in result.output and "dec-01" in result.output and "--yes" in result.output
    assert names(ledger) == ["dec-02", "dec-01", "nov-30"]


@pytest.mark.parametrize(("answer", "left"), [("n\n", ["dec-02", "dec-01", "nov-30"]), ("y\n", ["dec-02"])])
def test_delete_asks_on_a_terminal_and_does_only_what_was_answered(ledger, monkeypatch, answer, left) -> None:
    monkeypatch.setattr(manage_cmd, "_can_ask", lambda: True)
    result = runner.invoke(app, ["delete", "--project", "vision"], input=answer)
    assert "This cannot be undone" in result.output
    assert result.exit_code == (0 if answer == "y\n" else 1)
    assert names(ledger) == left


def test_declining_a_deletion_says_nothing_changed_plainly_not_as_an_error(ledger, monkeypatch) -> None:
    monkeypatch.setattr(manage_cmd, "_can_ask", lambda: True)
    result = runner.invoke(app, ["delete", "dec-01"], input="n\n")
    assert "nothing was changed" in result.output and "error" not in result.output
    assert result.exit_code == 1  # not 0: a script's `delete … && next-step` must not go on as if deleted
    assert names(ledger) == ["dec-02", "dec-01", "nov-30"]


def test_rename_refuses_a_name_another_run_has_naming_it(ledger) -> None:
    result = runner.invoke(app, ["rename", "nov-30", "dec-01"])
    assert result.exit_code == 2
    assert f"already the name of {'b' * 32} (dec-01)" in result.output
    assert names(ledger) == ["dec-02", "dec-01", "nov-30"]
    assert runner.invoke(app, ["show", "dec-01"]).exit_code == 0  # still one run by that name


def test_delete_with_yes_removes_only_the_named_run(ledger) -> None:
    result = runner.invoke(app, ["delete", "dec-01", "--yes"])
    assert result.exit_code == 0, result.output
    assert "deleted 1 run" in result.output
    assert names(ledger) == ["dec-02", "nov-30"]


def test_rename_changes_one_run_and_says_how_to_undo(ledger) -> None:
    result = runner.invoke(app, ["rename", "nov-30", "resnet baseline"])
    assert result.exit_code == 0, result.output
    assert "undo: joulemeter rename aaaaaaaa nov-30" in result.output
    assert names(ledger) == ["dec-02", "dec-01", "resnet baseline"]


def test_tag_one_run_without_asking_and_many_with_yes(ledger) -> None:
    one = runner.invoke(app, ["tag", "dec-02", "--add", "paper", "--remove", "fp32"])
    assert one.exit_code == 0, one.output
    assert "[baseline, fp32] → [baseline, paper]" in one.output
    many = runner.invoke(app, ["tag", "--project", "vision", "-a", "q4"])
    assert many.exit_code == 2 and "--yes" in many.output  # several runs: asked first
    many = runner.invoke(app, ["tag", "--project", "vision", "-a", "q4", "--yes"])
    assert many.exit_code == 0, many.output
    with open_ledger(ledger, for_reading=True) as book:
        tags = {r.name: r.tags for r in book.list_runs()}
    assert tags == {"dec-02": ["baseline", "paper"], "dec-01": ["baseline", "fp32", "q4"],
                    "nov-30": ["baseline", "fp32", "q4"]}


def test_tag_refuses_no_change_and_a_tag_added_and_removed(ledger) -> None:
    assert "nothing to change" in runner.invoke(app, ["tag", "last"]).output
    assert "both added and removed" in runner.invoke(app, ["tag", "last", "-a", "x", "-r", "x"]).output


def test_compare_and_report_choose_runs_by_filters_oldest_first(ledger) -> None:
    import json

    compared = runner.invoke(app, ["compare", "--project", "vision", "--intensity", "400", "--json"])
    assert compared.exit_code == 0, compared.output
    result = json.loads(compared.stdout)
    assert result["baseline_id"] == "a" * 32  # nov-30: the first in time leads
    assert {row["id"] for row in result["rows"]} == {"a" * 32, "b" * 32}
    report = runner.invoke(app, ["report", "--since", "2026-12-02", "-f", "json", "--intensity", "400"])
    assert report.exit_code == 0, report.output
    assert "dec-02" in report.stdout and "dec-01" not in report.stdout
    assert "which runs to report on" in runner.invoke(app, ["report"]).output
