"""Parts a crash left beside their merged run (issue 12, item 1) are counted once, in that run,
by every reader of the ledger: listings, counts, names, `last`, inventories and deletion."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from joulemeter.integrations.cli import app
from joulemeter.meter.merge import merge_parts
from joulemeter.meter.run import Status
from joulemeter.meter.store import open_ledger
from joulemeter.reports.inventory import inventory
from tests.test_distributed_sigkill import part
from tests.test_ledger import make_run

runner = CliRunner()


@pytest.fixture
def crashed(ledger_location):
    """A ledger holding a merged run, the two parts it replaced (rank 0 died before deleting
    them), an earlier unrelated run, and the parts of a job whose merged run was never saved."""
    parts = [part(r, "j", Status.COMPLETED, started_at="2026-01-02T00:00:00.000+00:00") for r in range(2)]
    merged = merge_parts(parts, "j-merged")
    orphans = [part(r, "k", started_at="2026-01-03T00:00:00.000+00:00") for r in range(2)]
    with open_ledger(ledger_location) as book:
        book.save_runs([make_run("other", name="other", started_at="2026-01-01T00:00:00+00:00"),
                        *parts, merged, *orphans])
    return ledger_location, merged


def test_listings_and_counts_leave_out_superseded_parts_unless_asked(crashed):
    location, merged = crashed
    with open_ledger(location, for_reading=True) as book:
        listed = [r.id for r in book.list_runs()]
        assert "j-merged" in listed and not any(i.startswith("j-part") for i in listed)
        assert sum(i.startswith("k-part") for i in listed) == 2  # no merged run yet: the parts are what there is
        assert book.count_runs() == len(listed) == 4
        assert book.count_runs(superseded=True) == len(book.list_runs(superseded=True)) == 6


def test_a_name_or_last_names_the_merged_run_not_a_part_it_replaced(ledger_location):
    parts = [part(r, "j", Status.COMPLETED) for r in range(2)]
    merged = merge_parts(parts, "j-merged")
    with open_ledger(ledger_location) as book:
        book.save_runs([*parts, merged])
    with open_ledger(ledger_location, for_reading=True) as book:
        assert book.get_run("job", samples=False).id == "j-merged"  # parts share its name
        assert book.get_run("last", samples=False).id == "j-merged"


def test_an_inventory_counts_a_crashed_jobs_energy_once_and_says_so(crashed):
    location, merged = crashed
    with open_ledger(location, for_reading=True) as book:
        report = inventory(book, since="2026-01-02", until="2026-01-02")
        whole = inventory(book)
    assert report.totals.runs == 1
    assert report.totals.device_energy_j.value == pytest.approx(merged.total_energy_j)
    assert any("2 part(s) of distributed jobs" in note for note in report.notes)
    assert whole.totals.runs == 4


def test_deleting_a_merged_run_takes_the_parts_a_crash_left_and_no_other_run(crashed):
    location, _ = crashed
    with open_ledger(location) as book:
        assert book.delete_runs(["j-merged"]) == 1
        left = sorted(r.id for r in book.list_runs(superseded=True))
    assert left == ["k-part0-2026-01-03", "k-part1-2026-01-03", "other"]


def test_runs_lists_superseded_parts_only_with_its_flag(crashed):
    location, _ = crashed
    plain = runner.invoke(app, ["runs", "--ledger", location])
    every = runner.invoke(app, ["runs", "--ledger", location, "--superseded"])
    assert plain.exit_code == every.exit_code == 0, plain.output + every.output
    assert "4 run(s)" in plain.output and "6 run(s)" in every.output
