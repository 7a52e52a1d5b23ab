"""A ledger with damaged pages (issue 12, item 6) is found out once on open and treated the same
by every command: read as far as it can be, never written, and salvaged into a new file."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from joulemeter.integrations.cli import app
from joulemeter.meter import EnergyMeter
from joulemeter.meter.errors import LedgerCorruptError
from joulemeter.meter.store import open_ledger, sqlite_file
from joulemeter.meter.store.salvage import salvage
from tests.doubles import LinearCounterSource
from tests.test_ledger import make_run

RUNS = 40
runner = CliRunner()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def damaged(tmp_path: Path) -> Path:
    """A ledger of RUNS runs whose samples fill most pages, two pages in its middle overwritten."""
    path = tmp_path / "ledger.sqlite"
    with open_ledger(path) as book:
        book.save_runs([make_run(f"{i:032x}", name=f"run-{i}", samples=300) for i in range(RUNS)])
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    pages, page_size = db.execute("PRAGMA page_count").fetchone()[0], db.execute("PRAGMA page_size").fetchone()[0]
    db.close()
    with path.open("r+b") as f:
        f.seek((pages // 2) * page_size)
        f.write(b"\xde\xad\xbe\xef" * (2 * page_size // 4))
    return path


def test_a_damaged_ledger_is_refused_for_writing_and_left_untouched(damaged: Path) -> None:
    before = _sha(damaged)
    with pytest.raises(LedgerCorruptError, match="damaged pages") as caught:
        open_ledger(damaged)
    assert "joulemeter salvage" in str(caught.value)
    with pytest.raises(LedgerCorruptError):  # a metered run does not start writing into it
        EnergyMeter("new", sources=[LinearCounterSource(10.0)], ledger=damaged).start()
    assert _sha(damaged) == before


def test_run_on_a_damaged_ledger_says_the_command_was_not_run(damaged: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("JOULEMETER_LEDGER", str(damaged))
    marker = tmp_path / "ran"
    result = subprocess.run(
        [sys.executable, "-m", "joulemeter.integrations.cli", "run", "--", "touch", str(marker)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2 and not marker.exists()
    assert result.stderr.rstrip().endswith(f"`touch {marker}` was not run"), result.stderr


def test_reading_commands_list_and_show_what_can_be_read_and_write_nothing(damaged: Path, monkeypatch) -> None:
    before = _sha(damaged)
    monkeypatch.setenv("JOULEMETER_LEDGER", str(damaged))
    listing = runner.invoke(app, ["runs", "--limit", str(RUNS)])
    assert listing.exit_code == 0, listing.output
    assert f"{RUNS} run(s)" in listing.output
    shown = [runner.invoke(app, ["show", f"run-{i}"]) for i in range(RUNS)]
    assert all(r.exit_code == 0 for r in shown), [r.output for r in shown if r.exit_code]
    assert any("samples are in damaged pages" in r.output for r in shown)
    with open_ledger(damaged, for_reading=True) as book:
        assert book.read_only and book.damage
        with pytest.raises(LedgerCorruptError):
            book.rename_run(f"{0:032x}", "renamed")
    assert _sha(damaged) == before


def test_salvage_copies_every_readable_run_and_says_which_lost_their_samples(damaged: Path, tmp_path: Path) -> None:
    before = _sha(damaged)
    result = salvage(damaged, tmp_path / "new.sqlite")
    assert len(result.copied) == RUNS and not result.lost
    without_samples = [i for i, lost in result.partial.items() if lost == ["samples"]]
    assert 1 <= len(without_samples) == len(result.partial) < RUNS
    with open_ledger(tmp_path / "new.sqlite", for_reading=True) as book:
        assert book.damage is None and book.count_runs() == RUNS
        partial = book.get_run(without_samples[0])
        whole = book.get_run(next(i for i in result.copied if i not in without_samples))
    assert partial.samples == [] and "damaged pages" in partial.metadata["salvaged"]
    assert partial.total_energy_j == whole.total_energy_j == make_run().total_energy_j  # its figures kept
    assert len(whole.samples) == 600
    assert _sha(damaged) == before


def test_salvage_never_overwrites_an_existing_file(damaged: Path, tmp_path: Path) -> None:
    existing = tmp_path / "other.sqlite"
    existing.write_bytes(b"precious")
    result = runner.invoke(app, ["salvage", str(damaged), str(existing)])
    assert result.exit_code == 2 and "already exists" in result.output
    assert existing.read_bytes() == b"precious"


def test_pages_are_checked_once_until_the_file_changes_outside_joulemeter(tmp_path: Path, monkeypatch) -> None:
    checks: list[Path] = []
    real = sqlite_file._quick_check
    monkeypatch.setattr(sqlite_file, "_quick_check", lambda path, immutable: checks.append(path) or real(path, immutable))
    path = tmp_path / "ledger.sqlite"
    with open_ledger(path) as book:  # new: nothing to check
        book.save_run(make_run("first"))
    with open_ledger(path) as book:  # as joulemeter closed it: not read again
        book.save_run(make_run("second"))
    with open_ledger(path, for_reading=True) as book:
        assert book.count_runs() == 2
    assert checks == []
    os.utime(path, ns=(0, 0))  # touched by something else: checked again, once
    for _ in range(2):
        with open_ledger(path, for_reading=True) as book:
            assert book.damage is None
    assert checks == [path]


def test_a_file_this_process_has_open_is_not_read_again_so_its_sqlite_locks_stay(tmp_path: Path, monkeypatch) -> None:
    # closing any descriptor of the file would drop the process's SQLite locks (sqlite.org/howtocorrupt.html §2.2)
    checked: list[Path] = []
    real = sqlite_file.check_file
    monkeypatch.setattr(sqlite_file, "check_file", lambda path: checked.append(path) or real(path))
    path = tmp_path / "ledger.sqlite"
    with open_ledger(path) as writer:
        writer.save_run(make_run("one"))
        with open_ledger(path, for_reading=True) as reader:  # e.g. the writer thread's second ledger
            assert reader.count_runs() == 1
    with open_ledger(path, for_reading=True):
        pass
    assert checked == [path, path]  # the first open and the one after every ledger was closed


def test_a_second_open_remembers_the_damage_found_by_the_first(damaged: Path) -> None:
    with open_ledger(damaged, for_reading=True) as first:
        assert first.damage
        with pytest.raises(LedgerCorruptError, match="damaged pages"):
            open_ledger(damaged)


def _overwrite_page_of(path: Path, table: str) -> None:
    """Overwrite the root page of `table` (all of it in a small ledger) with garbage."""
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    [root] = db.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()
    page_size = db.execute("PRAGMA page_size").fetchone()[0]
    db.close()
    with path.open("r+b") as f:
        f.seek((root - 1) * page_size)
        f.write(b"\xde\xad\xbe\xef" * (page_size // 4))


@pytest.fixture
def energy_damaged(tmp_path: Path) -> Path:
    """A small ledger whose energy table (one page) is overwritten: no listing can join it."""
    path = tmp_path / "ledger.sqlite"
    with open_ledger(path) as book:
        book.save_runs([make_run(f"{i:032x}", name=f"run-{i}") for i in range(5)])
    _overwrite_page_of(path, "energy")
    return path


def test_runs_on_a_ledger_whose_energy_table_is_damaged_lists_each_run_and_says_what_is_lost(
    energy_damaged: Path,
) -> None:
    before = _sha(energy_damaged)
    with open_ledger(energy_damaged, for_reading=True) as book:
        with pytest.raises(LedgerCorruptError):  # a listing in one query meets the damaged page
            book.list_runs()
    listing = subprocess.run([sys.executable, "-m", "joulemeter.integrations.cli", "runs", "--ledger",
                              str(energy_damaged)], capture_output=True, text=True, timeout=60,
                             env=os.environ | {"COLUMNS": "200"})
    assert listing.returncode == 0, listing.stderr
    assert "5 run(s)" in listing.stdout and all(f"run-{i}" in listing.stdout for i in range(5))
    assert "J" not in listing.stdout.split("energy", 1)[1]  # no energy figure for runs that lost theirs
    assert "damaged pages" in listing.stderr and "5 run(s) were read without their energy" in listing.stderr
    assert f"joulemeter salvage {energy_damaged} NEW.sqlite" in " ".join(listing.stderr.split())
    assert _sha(energy_damaged) == before


def test_salvage_keeps_the_runs_whose_energy_table_is_damaged_and_names_the_lost_part(
    energy_damaged: Path, tmp_path: Path,
) -> None:
    result = salvage(energy_damaged, tmp_path / "new.sqlite")
    assert len(result.copied) == 5 and not result.lost
    assert set(result.partial) == set(result.copied) and all(p == ["energy"] for p in result.partial.values())
    with open_ledger(tmp_path / "new.sqlite", for_reading=True) as book:
        runs = book.list_runs()
    assert len(runs) == 5
    kept = runs[0]
    assert kept.energy == {} and len(kept.windows) == len(make_run().windows) and kept.samples == []
    assert kept.metadata["salvaged_lost"] == ["energy"] and "energy were in damaged pages" in kept.metadata["salvaged"]


def test_a_damaged_index_alone_loses_nothing_the_table_is_read_without_it(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    with open_ledger(path) as book:
        book.save_runs([make_run(f"{i:032x}", name=f"run-{i}") for i in range(3)])
    _overwrite_page_of(path, "sqlite_autoindex_energy_1")
    result = salvage(path, tmp_path / "new.sqlite")
    assert len(result.copied) == 3 and "energy" not in {t for p in result.partial.values() for t in p}
    with open_ledger(tmp_path / "new.sqlite", for_reading=True) as book:
        assert [r.total_energy_j for r in book.list_runs()] == [make_run().total_energy_j] * 3


def test_salvage_says_which_runs_lost_which_parts(energy_damaged: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["salvage", str(energy_damaged), str(tmp_path / "new.sqlite")])
    assert result.exit_code == 0, result.output
    assert "copied 5 of 5 runs" in result.output and "5 of them without their energy" in result.output
