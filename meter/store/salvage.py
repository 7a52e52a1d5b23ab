"""Reading what a damaged SQLite ledger still holds: listing its readable runs, and copying
every one into a new ledger.

A run is read table by table: one whose samples, energy, windows (or any part) sit in damaged
pages is kept without that part, and its metadata names what was lost ("salvaged" in words,
LOST_KEY as a list); a run whose own row cannot be read is listed as lost.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import sqlalchemy as sa

from joulemeter.meter.errors import LedgerCorruptError, LedgerError
from joulemeter.meter.merge import counted_runs
from joulemeter.meter.run import Run, Status
from joulemeter.meter.store import schema
from joulemeter.meter.store.ledger import Ledger, open_ledger
from joulemeter.meter.store.period import check_period, period_bound

log = logging.getLogger("joulemeter.ledger")

T = TypeVar("T")

_ROWID_CHUNK = 256  # runs rows read at once when the runs table itself is damaged
WHOLE_RUNS_TABLE = "the whole runs table"  # an entry of `unreadable`: no run id could be read
LOST_KEY = "salvaged_lost"  # metadata: the tables whose part of the run was in damaged pages


@dataclass
class Salvage:
    """What was copied: run ids, and of them those without some part (and which), and what was lost."""

    copied: list[str] = field(default_factory=list)
    partial: dict[str, list[str]] = field(default_factory=dict)  # run id -> tables of its lost parts
    lost: list[str] = field(default_factory=list)  # ids of runs that could not be read
    unreadable: list[str] = field(default_factory=list)  # rows of the runs table that could not be read


@dataclass
class Readable:
    """The runs a damaged ledger lets `readable_runs` read, newest first and without samples,
    those read without some part, and what could not be read at all."""

    runs: list[Run]
    partial: dict[str, list[str]]  # run id -> tables of its parts in damaged pages
    lost: list[str]  # ids of runs whose own row cannot be read
    unreadable: list[str]  # rows of the runs table that cannot be read, or WHOLE_RUNS_TABLE

    @property
    def unreadable_runs(self) -> int | None:
        """How many runs could not be read; None when the runs table itself cannot be (unknown)."""
        return None if WHOLE_RUNS_TABLE in self.unreadable else len(self.lost) + len(self.unreadable)


def salvage(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> Salvage:
    """Copy what can be read of the ledger at `source` into a new ledger file at `target`
    (which must not exist yet, or be empty); `source` is only read."""
    target_path = Path(target)
    if target_path.exists() and target_path.stat().st_size > 0:
        raise LedgerError(f"{target_path} already exists: give the salvaged ledger a new file name",
                          parameter="target")
    result = Salvage()
    with open_ledger(source, for_reading=True, recover=False) as damaged, open_ledger(target_path) as fresh:
        for run_id in _run_ids(damaged, result.unreadable):
            run = read_what_can_be_read(damaged, run_id, result)
            if run is not None:
                fresh.save_run(run)
                result.copied.append(run_id)
    return result


def read_what_can_be_read(book: Ledger, ref: str, salvage: Salvage | None = None) -> Run | None:
    """The run whole, else each of its parts that can be read (naming the others in its
    metadata), else None: its own row is in damaged pages (lost)."""
    try:
        return book.get_run(ref)
    except LedgerCorruptError:
        pass
    try:
        run, lost = book.get_run_in_part(ref)
    except LedgerCorruptError:
        log.warning("run %s is in damaged pages of %s and cannot be read", ref, book.location)
        if salvage is not None:
            salvage.lost.append(ref)
        return None
    if lost:
        log.warning("run %s: its %s are in damaged pages of %s; read without them",
                    run.id[:8], words(lost), book.location)
        _mark(run, lost, book.location)
        if salvage is not None:
            salvage.partial[run.id] = lost
    return run


def readable_runs(
    book: Ledger,
    *,
    project: str | None = None,
    tag: str | None = None,
    name: str | None = None,
    status: Status | str | None = None,
    since: str | None = None,
    until: str | None = None,
    superseded: bool = False,
) -> Readable:
    """What `book.list_runs` would give (no limit), where a damaged page stops its query: every
    run id that can be read, each run read on its own, table by table (see module doc)."""
    bounds = period_bound(since, end=False), period_bound(until, end=True)
    check_period(*bounds)
    unreadable: list[str] = []
    found: list[Run] = []
    partial: dict[str, list[str]] = {}
    lost: list[str] = []
    for run_id in _run_ids(book, unreadable):
        try:
            run, missing = book.get_run_in_part(run_id, samples=False)
        except LedgerCorruptError:
            lost.append(run_id)
            continue
        if missing:
            _mark(run, missing, book.location)
            partial[run.id] = missing
        found.append(run)
    chosen = [r for r in (found if superseded else counted_runs(found))
              if _matches(r, project, tag, name, None if status is None else Status(status), *bounds)]
    chosen.sort(key=lambda r: (r.started_at, r.id), reverse=True)
    shown = {r.id for r in chosen}
    return Readable(chosen, {i: p for i, p in partial.items() if i in shown}, lost, unreadable)


def _matches(run: Run, project: str | None, tag: str | None, name: str | None, status: Status | None,
             since: str | None, until: str | None) -> bool:
    """Whether the run passes the filters of `Ledger.list_runs` (bounds as `period_bound` gives them)."""
    return ((project is None or run.project == project) and (tag is None or tag in run.tags)
            and (name is None or run.name == name) and (status is None or run.status is status)
            and (since is None or run.started_at >= since) and (until is None or run.started_at < until))


def _mark(run: Run, lost: list[str], location: str) -> None:
    """Name in the run's metadata the parts of it that were in damaged pages."""
    run.metadata["salvaged"] = f"its {words(lost)} were in damaged pages of {location} and are lost"
    run.metadata[LOST_KEY] = list(lost)


def words(tables: Sequence[str]) -> str:
    """Names in words: "energy", "energy and windows", "domains, energy and windows"."""
    return tables[0] if len(tables) == 1 else ", ".join(tables[:-1]) + " and " + tables[-1]


def _run_ids(book: Ledger, unreadable: list[str]) -> list[str]:
    """Every run id that can be read: all at once, else by rowid ranges around damaged pages
    (adding to `unreadable` the rows, or WHOLE_RUNS_TABLE, that cannot be read)."""
    runs = schema.runs
    everything = _or_none(book, lambda conn: list(conn.execute(sa.select(runs.c.id)).scalars()))
    if everything is not None:
        return everything
    top = _or_none(book, lambda conn: conn.execute(sa.select(sa.func.max(sa.column("rowid"))).select_from(runs)).scalar())
    if top is None:
        unreadable.append(WHOLE_RUNS_TABLE)
        return []
    ids: list[str] = []
    for start in range(1, int(top) + 1, _ROWID_CHUNK):
        chunk = _rowids(book, start, start + _ROWID_CHUNK - 1)
        if chunk is None:  # one row at a time, to keep every readable one
            for rowid in range(start, start + _ROWID_CHUNK):
                one = _rowids(book, rowid, rowid)
                if one is None:
                    unreadable.append(f"runs row {rowid}")
                ids += one or []
        else:
            ids += chunk
    return ids


def _rowids(book: Ledger, first: int, last: int) -> list[str] | None:
    rowid = sa.column("rowid")
    query = sa.select(schema.runs.c.id).where(rowid >= first, rowid <= last)
    return _or_none(book, lambda conn: list(conn.execute(query).scalars()))


def _or_none(book: Ledger, work: Callable[[sa.Connection], T]) -> T | None:
    """`work` read from the ledger, or None where it reaches a damaged page."""
    try:
        return book.read(work)
    except LedgerCorruptError:
        return None
