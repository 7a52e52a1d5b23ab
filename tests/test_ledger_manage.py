"""Managing runs in the ledger: choosing them by period, deleting, renaming and re-tagging,
each touching only the runs named (SQLite, and PostgreSQL when a server is given)."""

from __future__ import annotations

import sqlalchemy as sa
import pytest

from joulemeter.meter.errors import InputLimitError, LedgerError, PeriodError, RunNotFoundError
from joulemeter.meter.run import Status
from joulemeter.meter.store import open_ledger, schema
from tests.test_ledger import make_run


def _three_runs(ledger_location: str) -> None:
    with open_ledger(ledger_location) as ledger:
        ledger.save_runs([
            make_run("a" * 32, name="nov-30", started_at="2026-11-30T23:59:59.999+00:00"),
            make_run("b" * 32, name="dec-01", started_at="2026-12-01T00:00:00.000+00:00"),
            make_run("c" * 32, name="dec-02", started_at="2026-12-02T08:30:00.000+00:00"),
        ])


def _rows_of(ledger_location: str, run_id: str) -> dict[str, int]:
    """How many rows each part table holds for `run_id`, read straight from the tables."""
    with open_ledger(ledger_location) as ledger:
        def count(conn: sa.Connection) -> dict[str, int]:
            return {
                t.name: conn.execute(sa.select(sa.func.count()).select_from(t).where(t.c.run_id == run_id)).scalar_one()
                for t in schema.tables.sorted_tables if "run_id" in t.c
            }
        return ledger.read(count)


@pytest.mark.parametrize(
    ("since", "until", "names"),
    [
        ("2026-12-01", None, ["dec-02", "dec-01"]),
        (None, "2026-11-30", ["nov-30"]),  # a date alone as the end: that whole day is in
        ("2026-12-01", "2026-12-01", ["dec-01"]),
        ("2026-12-02T08:30", "2026-12-02T08:31", ["dec-02"]),  # a time as the end is excluded
        (None, "2026-12-02T08:30:00+00:00", ["dec-01", "nov-30"]),
        ("2026-12-02T09:30+01:00", None, ["dec-02"]),  # offsets are converted to UTC
    ],
)
def test_list_and_count_choose_runs_by_when_they_started(ledger_location, since, until, names) -> None:
    _three_runs(ledger_location)
    with open_ledger(ledger_location) as ledger:
        assert [r.name for r in ledger.list_runs(since=since, until=until)] == names
        assert ledger.count_runs(since=since, until=until) == len(names)


@pytest.mark.parametrize(("since", "until"), [("yesterday", None), ("2026-12-02", "2026-12-01")])
def test_a_bad_or_empty_period_is_refused_naming_the_bound(ledger_location, since, until) -> None:
    _three_runs(ledger_location)
    with open_ledger(ledger_location) as ledger, pytest.raises(PeriodError) as raised:
        ledger.list_runs(since=since, until=until)
    assert raised.value.parameter == ("since" if since == "yesterday" else "until")


def test_deleting_a_run_removes_all_its_rows_and_no_other_runs(ledger_location) -> None:
    _three_runs(ledger_location)
    assert all(_rows_of(ledger_location, "b" * 32).values())  # every part table has rows to lose
    with open_ledger(ledger_location) as ledger:
        assert ledger.delete_runs(["b" * 32]) == 1
        assert [r.name for r in ledger.list_runs()] == ["dec-02", "nov-30"]
        kept = ledger.get_run("c" * 32)
    assert set(_rows_of(ledger_location, "b" * 32).values()) == {0}
    assert kept == make_run("c" * 32, name="dec-02", started_at="2026-12-02T08:30:00.000+00:00")


def test_deleting_an_unknown_id_deletes_nothing(ledger_location) -> None:
    _three_runs(ledger_location)
    with open_ledger(ledger_location) as ledger:
        with pytest.raises(RunNotFoundError, match="nothing was deleted"):
            ledger.delete_runs(["a" * 32, "missing"])
        assert ledger.count_runs() == 3


def test_a_run_still_being_metered_is_not_deleted(ledger_location) -> None:
    with open_ledger(ledger_location) as ledger:
        ledger.begin_run(make_run("live", status=Status.RUNNING))  # written by this live process
        ledger.save_run(make_run("done"))
        with pytest.raises(LedgerError, match="still being metered"):
            ledger.delete_runs(["done", "live"])
        assert ledger.count_runs() == 2


def test_rename_and_retag_change_one_run_only(ledger_location) -> None:
    _three_runs(ledger_location)
    with open_ledger(ledger_location) as ledger:
        ledger.rename_run("a" * 32, "resnet-baseline")
        assert ledger.retag_run("a" * 32, add=["paper", "baseline"], remove=["fp32"]) == ["baseline", "paper"]
        changed, other = ledger.get_run("a" * 32), ledger.get_run("b" * 32)
    assert (changed.name, changed.tags) == ("resnet-baseline", ["baseline", "paper"])
    assert (other.name, other.tags) == ("dec-01", ["baseline", "fp32"])


def test_renaming_or_tagging_checks_limits_and_the_run(ledger_location) -> None:
    _three_runs(ledger_location)
    with open_ledger(ledger_location) as ledger:
        with pytest.raises(InputLimitError):
            ledger.rename_run("a" * 32, "x" * 10_000)
        with pytest.raises(RunNotFoundError):
            ledger.retag_run("missing", add=["x"])
        assert ledger.get_run("a" * 32).name == "nov-30"


def test_a_name_another_run_has_is_refused_naming_that_run_so_names_stay_unique(ledger_location) -> None:
    _three_runs(ledger_location)
    with open_ledger(ledger_location) as ledger:
        with pytest.raises(LedgerError, match=rf"'dec-01' is already the name of {'b' * 32} \(dec-01\)"):
            ledger.rename_run("a" * 32, "dec-01")
        ledger.rename_run("b" * 32, "dec-01")  # its own name again is no clash
        assert ledger.get_run("dec-01").id == "b" * 32
        assert ledger.get_run("a" * 32).name == "nov-30"


def test_saving_runs_that_replace_another_deletes_it_in_the_same_transaction(ledger_location):
    with open_ledger(ledger_location) as book:
        book.save_runs([make_run("span"), make_run("kept")])
        with pytest.raises(LedgerError):  # "kept" exists: nothing is saved, and "span" stays
            book.save_runs([make_run("cut-a"), make_run("kept")], replacing=["span"])
        assert sorted(r.id for r in book.list_runs()) == ["kept", "span"]
        book.save_runs([make_run("cut-a"), make_run("cut-b")], replacing=["span"])
        assert sorted(r.id for r in book.list_runs()) == ["cut-a", "cut-b", "kept"]
        assert set(_rows_of(ledger_location, "span").values()) == {0}
