"""Copying every run that can still be read out of a damaged SQLite ledger into a new one.

A run whose samples sit in damaged pages is copied without them (its energy, windows and
gaps are kept and it says so in its metadata); a run that cannot be read at all is listed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import sqlalchemy as sa

from joulemeter.meter.errors import LedgerCorruptError, LedgerError
from joulemeter.meter.run import Run
from joulemeter.meter.store import schema
from joulemeter.meter.store.ledger import Ledger, open_ledger

log = logging.getLogger("joulemeter.ledger")

T = TypeVar("T")

_ROWID_CHUNK = 256  # runs rows read at once when the runs table itself is damaged


@dataclass
class Salvage:
    """What was copied: run ids whole, ids copied without their samples, and what was lost."""

    copied: list[str] = field(default_factory=list)
    without_samples: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)  # ids of runs that could not be read
    unreadable: list[str] = field(default_factory=list)  # rows of the runs table that could not be read


def salvage(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> Salvage:
    """Copy what can be read of the ledger at `source` into a new ledger file at `target`
    (which must not exist yet, or be empty); `source` is only read."""
    target_path = Path(target)
    if target_path.exists() and target_path.stat().st_size > 0:
        raise LedgerError(f"{target_path} already exists: give the salvaged ledger a new file name",
                          parameter="target")
    result = Salvage()
    with open_ledger(source, for_reading=True, recover=False) as damaged, open_ledger(target_path) as fresh:
        for run_id in _run_ids(damaged, result):
            run = read_what_can_be_read(damaged, run_id, result)
            if run is not None:
                fresh.save_run(run)
                result.copied.append(run_id)
    return result


def read_what_can_be_read(book: Ledger, ref: str, salvage: Salvage | None = None) -> Run | None:
    """The run whole, else without its samples (saying so in its metadata), else None (lost)."""
    try:
        return book.get_run(ref)
    except LedgerCorruptError:
        pass
    try:
        run = book.get_run(ref, samples=False)
    except LedgerCorruptError:
        log.warning("run %s is in damaged pages of %s and cannot be read", ref, book.location)
        if salvage is not None:
            salvage.lost.append(ref)
        return None
    log.warning("run %s: its samples are in damaged pages of %s; read without them", run.id[:8], book.location)
    run.metadata["salvaged"] = f"its samples were in damaged pages of {book.location} and are lost"
    if salvage is not None:
        salvage.without_samples.append(run.id)
    return run


def _run_ids(book: Ledger, result: Salvage) -> list[str]:
    """Every run id that can be read: all at once, else by rowid ranges around damaged pages."""
    runs = schema.runs
    everything = _or_none(book, lambda conn: list(conn.execute(sa.select(runs.c.id)).scalars()))
    if everything is not None:
        return everything
    top = _or_none(book, lambda conn: conn.execute(sa.select(sa.func.max(sa.column("rowid"))).select_from(runs)).scalar())
    if top is None:
        result.unreadable.append("the whole runs table")
        return []
    ids: list[str] = []
    for start in range(1, int(top) + 1, _ROWID_CHUNK):
        chunk = _rowids(book, start, start + _ROWID_CHUNK - 1)
        if chunk is None:  # one row at a time, to keep every readable one
            for rowid in range(start, start + _ROWID_CHUNK):
                one = _rowids(book, rowid, rowid)
                if one is None:
                    result.unreadable.append(f"runs row {rowid}")
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
