"""A ledger location that holds something else is refused with a clear error and left untouched."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from joulemeter.meter.errors import ForeignLedgerError, LedgerCorruptError, LedgerError
from joulemeter.meter.store import open_ledger
from joulemeter.meter.store.location import resolve
from joulemeter.meter.store.schema import SCHEMA_VERSION
from tests.test_ledger import make_run


def _fingerprint(directory: Path) -> dict[str, str]:
    """The sha256 of every file in a directory, so changed bytes and new files both show.

    A WAL database's -shm file is SQLite's shared-memory index, which any reader updates;
    it holds no data, so only its presence counts. Folders (the tests' spool) are not the ledger's.
    """
    return {
        p.name: "present" if p.name.endswith("-shm") else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.iterdir()) if not p.is_dir()
    }


def _ledger_with_runs(path: Path, runs: int = 20) -> None:
    with open_ledger(path) as ledger:
        for i in range(runs):
            ledger.save_run(make_run(f"run-{i}", samples=50))
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every page into the main file
    db.close()


def test_random_bytes_are_refused_as_corrupt_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    path.write_bytes(os.urandom(8192))
    before = _fingerprint(tmp_path)
    with pytest.raises(LedgerCorruptError) as caught:
        open_ledger(path)
    assert caught.value.path == str(path) and str(path) in str(caught.value)
    assert _fingerprint(tmp_path) == before


@pytest.mark.parametrize("keep", [0.5, 0.3], ids=["half", "mid-page"])
def test_a_truncated_ledger_is_refused_as_corrupt_and_left_untouched(
    tmp_path: Path, keep: float
) -> None:
    path = tmp_path / "ledger.sqlite"
    _ledger_with_runs(path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep) + (7 if keep == 0.3 else 0)])
    before = _fingerprint(tmp_path)
    with pytest.raises(LedgerCorruptError, match="truncated"):
        open_ledger(path)
    assert _fingerprint(tmp_path) == before


@pytest.mark.parametrize("journal_mode", ["wal", "delete"])
def test_a_ledger_with_a_damaged_first_page_is_refused_as_corrupt_and_left_untouched(
    tmp_path: Path, journal_mode: str
) -> None:
    path = tmp_path / "ledger.sqlite"
    _ledger_with_runs(path, runs=3)
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA journal_mode = {journal_mode}")
    db.close()
    data = bytearray(path.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)  # the table list after the 100-byte header
    path.write_bytes(bytes(data))
    before = _fingerprint(tmp_path)
    with pytest.raises(LedgerCorruptError, match="malformed"):
        open_ledger(path)
    assert _fingerprint(tmp_path) == before


def test_a_file_shorter_than_the_sqlite_header_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    path.write_bytes(b"SQLite format 3\x00" + b"\x10\x00")
    with pytest.raises(LedgerCorruptError, match="header"):
        open_ledger(path)


def test_a_foreign_sqlite_database_is_refused_and_gets_no_tables(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        db.execute("INSERT INTO users (name) VALUES ('ada')")
    db.close()
    before = _fingerprint(tmp_path)
    with pytest.raises(ForeignLedgerError, match="users") as caught:
        open_ledger(path)
    assert caught.value.path == str(path)
    assert _fingerprint(tmp_path) == before


def test_a_ledger_from_a_newer_joulemeter_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    _ledger_with_runs(path, runs=1)
    with sqlite3.connect(path) as db:
        db.execute(
            "UPDATE joulemeter_meta SET value = ? WHERE key = 'schema_version'",
            (str(SCHEMA_VERSION + 1),),
        )
    db.close()
    before = _fingerprint(tmp_path)
    with pytest.raises(ForeignLedgerError, match="upgrade joulemeter"):
        open_ledger(path)
    assert _fingerprint(tmp_path) == before


def test_an_empty_file_and_an_empty_sqlite_database_become_ledgers(tmp_path: Path) -> None:
    empty_file = tmp_path / "empty.sqlite"
    empty_file.touch()
    empty_db = tmp_path / "empty.db"
    db = sqlite3.connect(empty_db)
    db.execute("PRAGMA user_version = 7")  # a valid database file with no table
    db.close()
    assert empty_db.stat().st_size > 0
    for path in (empty_file, empty_db):
        with open_ledger(path) as ledger:
            ledger.save_run(make_run("first"))
        with open_ledger(path) as ledger:
            assert [r.id for r in ledger.list_runs()] == ["first"]


def test_a_directory_is_refused_with_a_hint_to_name_a_file(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match="directory"):
        open_ledger(tmp_path)


def test_a_folder_that_cannot_be_made_is_a_ledger_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    with pytest.raises(LedgerError, match="a-file exists but is not a folder"):
        open_ledger(tmp_path / "a-file" / "ledger.sqlite")


def test_a_postgres_url_without_its_driver_says_which_extra_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg now raises ModuleNotFoundError
    with pytest.raises(LedgerError, match=r"joulemeter\[postgres\]"):
        open_ledger("postgresql://user@127.0.0.1:1/none")


def test_a_foreign_database_on_either_backend_is_refused_without_new_tables(
    ledger_location: str,
) -> None:
    users = sa.Table("users", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True))
    engine = sa.create_engine(resolve(ledger_location).url)
    users.create(engine)
    with pytest.raises(ForeignLedgerError):
        open_ledger(ledger_location)
    assert sa.inspect(engine).get_table_names() == ["users"]
    engine.dispose()


def test_a_newer_schema_on_either_backend_is_refused(ledger_location: str) -> None:
    open_ledger(ledger_location).close()
    meta = sa.table("joulemeter_meta", sa.column("key"), sa.column("value"))
    engine = sa.create_engine(resolve(ledger_location).url)
    with engine.begin() as conn:
        conn.execute(sa.update(meta).values(value=str(SCHEMA_VERSION + 1)))
    engine.dispose()
    with pytest.raises(ForeignLedgerError, match=f"schema {SCHEMA_VERSION + 1}"):
        open_ledger(ledger_location)


def test_a_ledger_path_in_a_folder_that_does_not_exist_is_refused_and_makes_no_folder(tmp_path: Path) -> None:
    typo = tmp_path / "nonexistent" / "dir"
    with pytest.raises(LedgerError, match=f"folder {typo} does not exist") as caught:
        open_ledger(typo / "l.sqlite")
    assert "create the folder first" in str(caught.value) and "--" not in str(caught.value)
    assert not (tmp_path / "nonexistent").exists()
    open_ledger(tmp_path / "l.sqlite").close()  # in a folder that exists, the file is made
    assert (tmp_path / "l.sqlite").is_file()


def test_the_default_ledger_gets_its_own_private_folder_made(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("JOULEMETER_LEDGER", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)  # no joulemeter.toml above it names another ledger
    with open_ledger() as ledger:
        assert ledger.location == str(tmp_path / "data" / "joulemeter" / "ledger.sqlite")
    assert (tmp_path / "data" / "joulemeter").stat().st_mode & 0o777 == 0o700
