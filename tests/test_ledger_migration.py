"""A ledger of schema version 1 is upgraded when opened for writing, read as it is when opened
for reading, and never loses a run either way (SQLite and PostgreSQL).

The SQLite version-1 ledger is the dump of one written by joulemeter before schema 2
(tests/fakes/ledger_v1.sql); on PostgreSQL a version-2 ledger is taken back to version 1 by
dropping what version 2 added.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from joulemeter.meter.errors import LedgerError
from joulemeter.meter.run import Location
from joulemeter.meter.store import open_ledger, schema, sqlite_file
from joulemeter.meter.store.location import resolve
from tests.test_ledger import make_run

V1_DUMP = Path(__file__).parent / "fakes" / "ledger_v1.sql"


def _v1_ledger(location: str) -> None:
    """Make `location` a version-1 ledger holding run "v1-run"."""
    target = resolve(location)
    if target.sqlite_path is not None:
        with sqlite3.connect(target.sqlite_path) as conn:
            conn.executescript(V1_DUMP.read_text())
        return
    with open_ledger(location) as ledger:
        ledger.save_run(make_run("v1-run"))
    engine = sa.create_engine(target.url)
    with engine.begin() as conn:
        for column in schema.ADDED_COLUMNS[2]:
            conn.exec_driver_sql(f"ALTER TABLE {column.table.name} DROP COLUMN {column.name}")
        for table in schema.ADDED_TABLES[2]:
            conn.exec_driver_sql(f"DROP TABLE {table.name}")
        conn.execute(sa.update(schema.meta).values(value="1"))
    engine.dispose()


def _state(location: str) -> tuple[str, set[str], set[str]]:
    """(stored schema_version, columns of domains, tables), read straight from the database."""
    engine = sa.create_engine(resolve(location).url)
    with engine.connect() as conn:
        version = conn.execute(sa.select(schema.meta.c.value)).scalar_one()
        inspector = sa.inspect(conn)
        columns = {c["name"] for c in inspector.get_columns("domains")}
        names = set(inspector.get_table_names())
    engine.dispose()
    return version, columns, names


def test_a_version_1_ledger_opened_for_writing_is_upgraded_and_keeps_its_runs(ledger_location):
    _v1_ledger(ledger_location)
    with open_ledger(ledger_location) as ledger:
        assert ledger.schema_version == schema.SCHEMA_VERSION
        old = ledger.get_run("v1-run")
        assert old.location is None and all(d.vendor is None for d in old.domains)
        assert old.total_energy_j == make_run().total_energy_j
        assert len(old.samples) == len(make_run().samples)
        new = make_run("v2-run")
        new.location = Location(country="DE", source="api")
        new.domains = [dataclasses.replace(new.domains[0], vendor="nvidia"), *new.domains[1:]]
        ledger.save_run(new)
        back = ledger.get_run("v2-run")
    assert back.location == Location(country="DE", source="api")
    assert [d.vendor for d in back.domains] == ["nvidia", None]
    version, columns, names = _state(ledger_location)
    assert version == str(schema.SCHEMA_VERSION)
    assert "vendor" in columns and "grid_intensity" in names


def test_a_version_1_ledger_opened_for_reading_is_read_as_it_is_and_not_written(ledger_location):
    _v1_ledger(ledger_location)
    before = _state(ledger_location)
    with open_ledger(ledger_location, for_reading=True) as ledger:
        assert ledger.schema_version == 1
        assert [r.id for r in ledger.list_runs()] == ["v1-run"]
        run = ledger.get_run("v1")
        assert run.location is None and len(run.samples) == len(make_run().samples)
        with pytest.raises(LedgerError, match="schema 1.*open it for writing"):
            ledger.save_run(make_run("refused"))
    assert _state(ledger_location) == before
    assert before[0] == "1" and "vendor" not in before[1] and "grid_intensity" not in before[2]


def test_a_version_1_ledger_that_cannot_be_written_is_read(tmp_path, monkeypatch):
    path = tmp_path / "ledger.sqlite"
    _v1_ledger(str(path))
    path.chmod(0o444)
    # as root every file is writable: say this one is not, as a read-only mount would
    monkeypatch.setattr(sqlite_file, "cannot_write", lambda p: True)
    with open_ledger(path, for_reading=True) as ledger:
        assert ledger.read_only and ledger.schema_version == 1
        assert ledger.get_run("last").id == "v1-run"


def test_two_processes_upgrading_at_once_both_open_the_upgraded_ledger(ledger_location):
    _v1_ledger(ledger_location)
    errors: list[BaseException] = []
    versions: list[int] = []
    start = threading.Barrier(2)

    def upgrade() -> None:
        start.wait()
        try:
            with open_ledger(ledger_location, recover=False) as ledger:
                versions.append(ledger.schema_version)
        except BaseException as exc:  # reported below with the thread's failure
            errors.append(exc)

    threads = [threading.Thread(target=upgrade) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and versions == [schema.SCHEMA_VERSION] * 2
    assert _state(ledger_location)[0] == str(schema.SCHEMA_VERSION)


def test_columns_at_leaves_out_what_a_later_version_added():
    names = {c.name for c in schema.columns_at(schema.domains, 1)}
    assert "vendor" not in names and "note" in names
    assert schema.columns_at(schema.domains, schema.SCHEMA_VERSION) == list(schema.domains.columns)


def test_a_location_with_a_nul_character_is_made_storable_not_lost(tmp_path):
    from joulemeter.meter.store.storable import make_storable, problems

    run = make_run("nul")
    run.location = Location(country="D\x00E", source="config")
    assert problems(run) == ["its location country contains a NUL character"]
    make_storable(run)
    with open_ledger(tmp_path / "l.sqlite") as ledger:
        ledger.save_run(run)
        assert ledger.get_run("nul").location.country == "D\ufffdE"
