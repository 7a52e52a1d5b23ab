"""The ledger: every run with its domains, energy, windows, gaps and samples.

One code path (SQLAlchemy Core) for SQLite and PostgreSQL. A run is written while it
goes: `begin_run` at the start, `append_samples` at every flush, `finish_run` at the
end, so a killed process loses at most its last flush; opening the ledger marks such
runs `interrupted` and recovers their energy from the samples they flushed.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import operator
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles

from joulemeter.meter.energy import totals
from joulemeter.meter.errors import LedgerBusyError, LedgerCorruptError, LedgerError, RunNotFoundError
from joulemeter.meter.run import (
    Domain,
    DomainEnergy,
    Gap,
    Run,
    Sample,
    Status,
    Window,
    fields_dict,
    from_fields,
)
from joulemeter.meter.limits import check_name, check_tags
from joulemeter.meter.merge import PART_KEY, superseded_part
from joulemeter.meter.store import schema, sqlite_file, storable
from joulemeter.meter.store.period import check_period, period_bound
from joulemeter.meter.store.location import data_folder, resolve

log = logging.getLogger("joulemeter.ledger")

T = TypeVar("T")

STALE_HEARTBEAT_S = 300.0  # a running run on another host, silent this long, is dead
BUSY_DEADLINE_S = 120.0  # stop retrying a locked ledger after this long
_MAX_BACKOFF_S = 1.0
_LISTED_CANDIDATES = 10  # ids shown when a prefix is ambiguous
_ID_CHUNK = 500  # run ids per IN (...) when loading the parts of many runs
_CONNECT_TIMEOUT_S = 10  # a server that does not answer fails a write instead of hanging it


def open_ledger(
    location: str | os.PathLike[str] | None = None, *, for_reading: bool = False, recover: bool = True
) -> Ledger:
    """Open the ledger at a path or URL, creating it if needed unless `for_reading`.

    `recover`: deliver this machine's spooled runs and mark runs whose writer died
    `interrupted` (in bounded memory). `for_reading`: a SQLite ledger that cannot be
    written here (read-only file, folder or mount) is opened read-only, without recovery,
    and a ledger of an older schema is read as it is, never upgraded (nor written).
    A new ledger file is made private (0600); its folder must exist, unless it is joulemeter's
    own data folder (made 0700).
    """
    target = resolve(location)
    read_only = False
    damage: str | None = None
    connect_args: dict[str, Any] = {}
    if target.sqlite_path is not None:
        if for_reading and not target.sqlite_path.exists():  # a typo must not make a new, empty ledger
            raise LedgerError(
                f"no ledger at {target.display}: check the path ($JOULEMETER_LEDGER or --ledger); "
                "a ledger is made by the first metered run (joulemeter run -- CMD, or joulemeter demo)",
                path=target.sqlite_path,
            )
        held = _open_here(target.sqlite_path)
        if held is None:
            # read the file only where this process holds no SQLite connection to it: closing
            # any file descriptor of it drops the process's SQLite locks (sqlite.org/howtocorrupt.html §2.2)
            sqlite_file.check_file(target.sqlite_path)
            damage = _damage_of(target.sqlite_path, for_reading)
        elif held.damage is not None:  # as found when this process first opened it
            damage = held.damage
            if not for_reading:
                raise LedgerCorruptError(target.sqlite_path, f"SQLite finds damaged pages: {damage}")
        read_only = damage is not None or (for_reading and sqlite_file.cannot_write(target.sqlite_path))
        if not read_only:
            _create_private(target.sqlite_path)
    elif "connect_timeout" not in target.url.query:
        connect_args["connect_timeout"] = _CONNECT_TIMEOUT_S
    try:
        if read_only:
            assert target.sqlite_path is not None
            engine = sqlite_file.read_only_engine(target.sqlite_path, json_serializer=_to_json)
        else:
            engine = sa.create_engine(target.url, json_serializer=_to_json, connect_args=connect_args)
    except ModuleNotFoundError as exc:
        raise LedgerError(
            f"the ledger {target.display} needs the database driver {exc.name!r}, which is not installed: "
            "pip install 'joulemeter[postgres]'"
        ) from exc
    if engine.dialect.name == "sqlite":
        sqlite_file.configure(engine, read_only=read_only)
    else:
        _configure_postgres(engine)
    ledger = Ledger(engine, target.display, read_only=read_only, path=target.sqlite_path, damage=damage)
    ledger._hold_open()
    try:
        if damage is not None:
            log.warning("%s has damaged pages (%s): it is read as far as it can be and never written; "
                        "`joulemeter salvage %s NEW.sqlite` copies what can be read into a new ledger",
                        ledger.location, damage, ledger.location)
        elif read_only:
            log.info("%s cannot be written here: opened read-only, dead runs are not recovered", ledger.location)
            version = ledger._transaction(functools.partial(schema.read_schema_version, where=ledger.location))
            ledger.schema_version = schema.SCHEMA_VERSION if version is None else version
        else:
            ensure = functools.partial(schema.ensure_schema, where=ledger.location, migrate=not for_reading)
            ledger.schema_version = ledger._transaction(ensure, write=True, transient=_is_transient_at_creation)
            if ledger.schema_version < schema.SCHEMA_VERSION:
                log.info("%s has ledger schema %d: read as it is, not upgraded, dead runs not recovered",
                         ledger.location, ledger.schema_version)
            elif recover:
                ledger.recover()
    except BaseException:
        engine.dispose()
        raise
    return ledger


_OPEN_FILES: dict[str, list[Ledger]] = {}  # SQLite ledger files this process has open
_OPEN_LOCK = threading.Lock()


def _open_here(path: Path) -> Ledger | None:
    """A ledger of this SQLite file that this process has open (the file was checked then)."""
    with _OPEN_LOCK:
        held = _OPEN_FILES.get(str(path.resolve()))
        return held[0] if held else None


def _damage_of(path: Path, for_reading: bool) -> str | None:
    """What is damaged in an existing ledger file (None: sound, or nothing there yet); a damaged
    one is refused for writing, so nothing new is put where it could be lost."""
    if not path.exists() or path.stat().st_size == 0:
        return None
    damage = sqlite_file.damage(path)
    if damage is not None and not for_reading:
        raise LedgerCorruptError(path, f"SQLite finds damaged pages: {damage}")
    return damage


def _filtered(
    query: sa.Select,
    project: str | None,
    tag: str | None,
    name: str | None,
    status: Status | str | None,
    since: str | None = None,
    until: str | None = None,
) -> sa.Select:
    """`query` over the runs table narrowed to a project, tag, exact name, status, and runs
    that started in [since, until) (bounds as `period_bound` gives them)."""
    runs = schema.runs
    if project is not None:
        query = query.where(runs.c.project == project)
    if name is not None:
        query = query.where(runs.c.name == name)
    if status is not None:
        query = query.where(runs.c.status == _status(status).value)
    if tag is not None:
        query = query.where(runs.c.id.in_(sa.select(schema.tags.c.run_id).where(schema.tags.c.tag == tag)))
    if since is not None:
        query = query.where(runs.c.started_at >= since)
    if until is not None:
        query = query.where(runs.c.started_at < until)
    return query


def _counted(query: sa.Select, superseded: bool = False) -> sa.Select:
    """`query` over the runs table without the parts whose merged run the ledger holds
    (unless `superseded`): a crash between saving that run and deleting them left both."""
    return query if superseded else query.where(~superseded_part(schema.runs))


def _candidates(rows: Sequence[sa.Row]) -> str:
    """Runs an ambiguous reference matches, for its error: 'id (name), …' and whether more."""
    shown = ", ".join(f"{r.id} ({r.name})" for r in rows[:_LISTED_CANDIDATES])
    return shown + (" and more" if len(rows) > _LISTED_CANDIDATES else "")


def _create_private(path: Path) -> None:
    """Make an empty ledger file (0600) if missing, and its folder (0700) only where it is
    joulemeter's own data folder: a folder the user named must exist, so a typo is no new ledger."""
    folder = path.parent
    if folder.exists() and not folder.is_dir():
        raise LedgerError(f"the ledger's folder {folder} exists but is not a folder", path=path)
    if not folder.exists():
        if folder != data_folder():
            raise LedgerError(
                f"the ledger's folder {folder} does not exist: check the path, or create the folder "
                "first if a new ledger belongs there", path=path, parameter="ledger",
            )
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise LedgerError(f"cannot create the ledger's folder {folder}: {exc.strerror or exc}") from exc
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass  # an existing ledger keeps the mode its owner gave it
    except OSError as exc:
        raise LedgerError(
            f"cannot create the ledger {path}: {exc.strerror or exc}. Choose another ledger with "
            "JOULEMETER_LEDGER.", path=path, parameter="ledger",
        ) from exc


def _configure_postgres(engine: sa.Engine) -> None:
    """A transaction given a deadline waits for locks no longer than it (lock_timeout)."""

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        busy_ms = conn.get_execution_options().get("joulemeter_busy_ms")
        if busy_ms is not None:
            conn.exec_driver_sql(f"SET LOCAL lock_timeout = {int(busy_ms)}")


def _is_transient(exc: sa.exc.DBAPIError) -> bool:
    """A lock held by another writer (SQLite) or a serialization conflict (PostgreSQL)."""
    if getattr(exc.orig, "sqlstate", None) in ("40001", "40P01"):
        return True
    message = str(exc.orig).lower()
    return "database is locked" in message or "database table is locked" in message


def _is_transient_at_creation(exc: sa.exc.DBAPIError) -> bool:
    """Also retry losing a race to create or upgrade the tables: the retry finds them made."""
    duplicate = getattr(exc.orig, "sqlstate", None) in ("23505", "42P07", "42701")  # unique, table, column
    message = str(exc.orig)
    return duplicate or "already exists" in message or "duplicate column" in message or _is_transient(exc)


class Ledger:
    """Runs kept in a database; open one with `open_ledger`, one per process.

    Safe to share between threads. Every method is one transaction, written whole or
    not at all, and retried with backoff while another writer holds the lock.
    `schema_version` is the version of the tables read (older only when opened for reading).
    """

    schema_version: int = schema.SCHEMA_VERSION

    def __init__(
        self,
        engine: sa.Engine,
        location: str,
        *,
        read_only: bool = False,
        path: Path | None = None,
        damage: str | None = None,
    ) -> None:
        self.location = location
        self.read_only = read_only
        self.damage = damage  # what SQLite found damaged in the file (then read-only), or None
        self._held = False  # counted in _OPEN_FILES
        self._engine = engine
        self._writer = engine.execution_options(joulemeter_write=True)
        self._path = path
        self._identity = _file_identity(path)

    def __repr__(self) -> str:
        return f"Ledger({self.location!r})"

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the database connections (a later call opens new ones); a SQLite file this
        process could write is remembered as sound, as SQLite left it, so the next open skips
        reading every page to check it."""
        self._engine.dispose()
        self._let_go()
        if self._path is not None and not self.read_only and not self.replaced():
            sqlite_file.remember_sound(self._path)

    def _hold_open(self) -> None:
        """Count this SQLite file as open in this process (see `_open_here`)."""
        if self._path is not None and not self._held:
            with _OPEN_LOCK:
                _OPEN_FILES.setdefault(str(self._path.resolve()), []).append(self)
            self._held = True

    def _let_go(self) -> None:
        if self._path is not None and self._held:
            key = str(self._path.resolve())
            with _OPEN_LOCK:
                _OPEN_FILES[key].remove(self)
                if not _OPEN_FILES[key]:
                    del _OPEN_FILES[key]
            self._held = False

    def replaced(self) -> bool:
        """Whether the SQLite file opened was deleted or replaced since (always False on a server)."""
        return self._path is not None and _file_identity(self._path) != self._identity

    def recover(self) -> None:
        """Deliver this machine's spools for this ledger, then close runs whose writer died.

        Each step is its own short transaction and reads samples through SQL aggregates, so
        recovering a run of millions of samples holds the write lock briefly and little memory.
        """
        from joulemeter.meter.store import spool

        try:
            spool.deliver_all(self)
        except LedgerError as exc:
            log.warning("could not deliver spooled runs into %s: %s", self.location, exc)
        self._recover_stale_runs()

    # -- writing a run as it goes ------------------------------------------------------
    def begin_run(
        self, run: Run, *, writer: dict[str, Any] | None = None, deadline_s: float | None = None
    ) -> None:
        """Record a run that starts now: status running, its domains, host, tags, metadata.

        Samples go through `append_samples`. Remembers the writing process (`writer`, by
        default this one: host, pid and its start time) so that a later `open_ledger` can
        tell whether the run is alive. `deadline_s` bounds the wait for a locked ledger.
        """
        _require_json(run)
        writer = writer or writer_identity()

        def work(conn: sa.Connection) -> None:
            self._refuse_existing(conn, run.id)
            conn.execute(sa.insert(schema.runs).values(_run_row(run, Status.RUNNING) | writer))
            _insert_parts(conn, run)

        self._transaction(work, write=True, deadline_s=deadline_s)

    def append_samples(
        self,
        run_id: str,
        samples: Sequence[Sample],
        *,
        heartbeat: bool = True,
        deadline_s: float | None = None,
    ) -> None:
        """Add samples to a begun run in one transaction, and mark the run alive now
        (unless `heartbeat` is False: a delivery from a spool is no sign of life)."""

        def work(conn: sa.Connection) -> None:
            if heartbeat:
                runs = schema.runs
                alive = sa.update(runs).where(runs.c.id == run_id).values(heartbeat_at=_DatabaseNow())
                if not conn.execute(alive).rowcount:
                    raise self._not_begun(run_id)
            elif not _exists(conn, run_id):
                raise self._not_begun(run_id)
            _insert_samples(conn, run_id, samples)

        self._transaction(work, write=True, deadline_s=deadline_s)

    def last_sample_t(self, run_id: str) -> float | None:
        """The time of the run's latest stored sample (None if none): samples of a run are
        written in whole ticks, so every sample up to this time is stored, none after it."""
        t_s = schema.samples.c.t_s
        query = sa.select(sa.func.max(t_s)).where(schema.samples.c.run_id == run_id)
        return self._transaction(lambda conn: conn.execute(query).scalar())

    def record_gaps(self, run_id: str, gaps: Sequence[Gap]) -> None:
        """Add gaps to a begun run (kept if the process dies before `finish_run`)."""

        def work(conn: sa.Connection) -> None:
            if not _exists(conn, run_id):
                raise self._not_begun(run_id)
            position = schema.gaps.c.position
            last = conn.execute(
                sa.select(sa.func.max(position)).where(schema.gaps.c.run_id == run_id)
            ).scalar()
            rows = (g.to_dict() for g in gaps)
            _insert_rows(conn, schema.gaps, run_id, rows, start=0 if last is None else last + 1)

        self._transaction(work, write=True)

    def finish_run(self, run: Run, *, deadline_s: float | None = None) -> None:
        """Write the end of a begun run: status, end, energy, windows, units, gaps, metadata.

        Samples were appended while it ran and are left as they are. A run that was
        never begun is saved whole, samples included, so nothing measured is lost.
        `deadline_s` bounds the wait for a locked ledger.
        """
        _require_json(run)

        def work(conn: sa.Connection) -> None:
            if not _exists(conn, run.id):
                log.warning("run %s was finished without begin_run; saving it whole", run.id)
                _insert_run(conn, run)
                return
            runs = schema.runs
            values = {k: v for k, v in _run_row(run, run.status).items() if k != "id"}
            conn.execute(sa.update(runs).where(runs.c.id == run.id).values(values))
            for table in schema.RUN_PARTS:
                conn.execute(sa.delete(table).where(table.c.run_id == run.id))
            _insert_parts(conn, run)

        self._transaction(work, write=True, deadline_s=deadline_s)

    def save_run(self, run: Run) -> None:
        """Write a whole finished run at once, samples included (imports, merged runs)."""
        self.save_runs([run])

    def save_runs(self, runs: Sequence[Run], *, replacing: Sequence[str] = ()) -> None:
        """Write several whole runs in one transaction: all of them, or none; the runs
        `replacing` names (whole ids) are deleted in it, as `delete_runs` would."""
        for run in runs:
            _require_json(run)

        def work(conn: sa.Connection) -> None:
            self._delete(conn, list(dict.fromkeys(replacing)))
            for run in runs:
                self._refuse_existing(conn, run.id)
                _insert_run(conn, run)

        self._transaction(work, write=True)

    def update_metadata(self, run_id: str, metadata: dict[str, Any]) -> None:
        """Merge keys into a run's metadata (accuracy measured later, size on disk, …)."""
        _check_json(run_id, "metadata", metadata)

        def work(conn: sa.Connection) -> None:
            runs = schema.runs
            current = conn.execute(
                sa.select(runs.c.metadata).where(runs.c.id == run_id).with_for_update()
            ).first()
            if current is None:
                raise RunNotFoundError(f"no run {run_id!r} in {self.location}")
            merged = {**current.metadata, **metadata}
            conn.execute(sa.update(runs).where(runs.c.id == run_id).values(metadata=merged))

        self._transaction(work, write=True)

    # -- managing runs -----------------------------------------------------------------
    def delete_runs(self, run_ids: Sequence[str]) -> int:
        """Remove these runs (whole ids) with all their parts, in one transaction; a run still
        being written by a live process is refused, and so is the whole call. Returns how many."""
        wanted = list(dict.fromkeys(run_ids))
        return self._transaction(lambda conn: self._delete(conn, wanted), write=True)

    def _delete(self, conn: sa.Connection, wanted: list[str]) -> int:
        """`delete_runs` inside the caller's transaction."""
        if not wanted:
            return 0
        runs = schema.runs
        rows = conn.execute(self._select(runs).where(runs.c.id.in_(wanted))).all()
        missing = set(wanted) - {r.id for r in rows}
        if missing:
            raise RunNotFoundError(f"no run {sorted(missing)[0]!r} in {self.location}; nothing was deleted")
        here = socket.gethostname()
        now = datetime.fromisoformat(conn.execute(sa.select(_DatabaseNow())).scalar_one())
        live = [r for r in rows if r.status == Status.RUNNING.value and not _writer_is_gone(r, here, now)]
        if live:
            raise LedgerError(f"run {live[0].id[:8]} ({live[0].name}) is still being metered by process "
                              f"{live[0].pid} on {live[0].hostname}: stop it first; nothing was deleted")
        # parts a crash left beside a merged run go with it: else they would count again
        leftover = sa.select(runs.c.id).where(
            runs.c.metadata[(PART_KEY, "merged_run_id")].as_string().in_(wanted),
            runs.c.metadata[(PART_KEY, "part")].as_boolean(),
        )
        gone = [*wanted, *conn.execute(leftover).scalars()]
        for table in _PART_TABLES:  # explicit, not only ON DELETE CASCADE: SQLite may have it off
            conn.execute(sa.delete(table).where(table.c.run_id.in_(gone)))
        conn.execute(sa.delete(runs).where(runs.c.id.in_(gone)))
        return len(rows)

    def rename_run(self, run_id: str, name: str) -> None:
        """Give a run (whole id) a new name that no other run has, so the name still names one run."""
        check_name(name, "name")

        def work(conn: sa.Connection) -> None:
            runs = schema.runs
            others = conn.execute(
                _counted(self._select(runs)).where(runs.c.name == name, runs.c.id != run_id)
                .order_by(*_NEWEST_FIRST).limit(_LISTED_CANDIDATES + 1)
            ).all()
            if others:
                raise LedgerError(f"{name!r} is already the name of {_candidates(others)}; "
                                  "choose another name, so that each name names one run")
            if conn.execute(sa.update(runs).where(runs.c.id == run_id).values(name=name)).rowcount != 1:
                raise RunNotFoundError(f"no run {run_id!r} in {self.location}")

        self._transaction(work, write=True)

    def retag_run(self, run_id: str, add: Sequence[str] = (), remove: Sequence[str] = ()) -> list[str]:
        """Add and remove tags of one run (whole id), keeping the others in order; its tags after."""
        check_tags(add)

        def work(conn: sa.Connection) -> list[str]:
            tags = schema.tags
            if not _exists(conn, run_id):
                raise RunNotFoundError(f"no run {run_id!r} in {self.location}")
            current = conn.execute(
                sa.select(tags.c.tag).where(tags.c.run_id == run_id).order_by(tags.c.position)
            ).scalars().all()
            kept = [t for t in dict.fromkeys([*current, *add]) if t not in set(remove)]
            conn.execute(sa.delete(tags).where(tags.c.run_id == run_id))
            if kept:
                conn.execute(sa.insert(tags), [{"run_id": run_id, "position": i, "tag": t} for i, t in enumerate(kept)])
            return kept

        return self._transaction(work, write=True)

    # -- reading -----------------------------------------------------------------------
    def existing_ids(self, run_ids: Iterable[str]) -> set[str]:
        """The ids among `run_ids` that the ledger already holds (whole ids, not prefixes)."""
        wanted = list(run_ids)
        return self._transaction(lambda conn: {run_id for run_id in wanted if _exists(conn, run_id)})

    def get_run(self, ref: str, samples: bool = True) -> Run:
        """The run named by its full id, a unique id prefix, "last" (the newest) or a unique name."""
        return self._transaction(lambda conn: self._load(conn, [self._find(conn, ref)], samples)[0])

    def get_run_in_part(self, ref: str, samples: bool = True) -> tuple[Run, list[str]]:
        """For a damaged SQLite ledger: the run `ref` names (as `get_run`) read table by table,
        with each of its parts that can be read, and the names of the tables whose part of it
        cannot be ("energy", "samples", …). Raises LedgerCorruptError when its row cannot be read.

        Where an index is what is damaged, the table is read without it (not for samples,
        whose scan for every run would take hours in a big ledger)."""
        runs = schema.runs
        try:
            row = self._transaction(lambda conn: self._find(conn, ref))
        except LedgerCorruptError:
            found = self._unindexed(runs.c.id, ref, self._select(runs))
            if not found:
                raise
            row = found[0]
        run = from_fields(Run, row._mapping)
        lost = []
        for table, add in [*_PART_READERS, *([(schema.samples, _add_sample)] if samples else [])]:
            query = self._select(table).order_by(table.c.position if "position" in table.c else table.c.id)
            try:
                if table is schema.samples:
                    parts = self._transaction(lambda conn: conn.execute(query.where(table.c.run_id == run.id)).all())
                else:
                    parts = self._unindexed(table.c.run_id, run.id, query)
            except LedgerCorruptError:
                lost.append(table.name)
                continue
            for part in parts:
                add(run, part)
        return run, lost

    def list_runs(
        self,
        *,
        project: str | None = None,
        tag: str | None = None,
        name: str | None = None,
        status: Status | str | None = None,
        since: str | date | None = None,
        until: str | date | None = None,
        limit: int | None = None,
        superseded: bool = False,
    ) -> list[Run]:
        """Runs newest first, with energy and windows but without samples; `since`/`until`:
        runs that started in that period (ISO 8601; a date alone as `until` includes that day).
        Parts of a distributed job whose merged run is here too (a crash left them) are counted
        in that run and left out, unless `superseded`."""
        query = _filtered(self._select(schema.runs), project, tag, name, status, *_period(since, until))
        query = _counted(query, superseded).order_by(*_NEWEST_FIRST).limit(limit)
        return self._transaction(lambda conn: self._load(conn, conn.execute(query).all(), False))

    def count_runs(
        self,
        *,
        project: str | None = None,
        tag: str | None = None,
        name: str | None = None,
        status: Status | str | None = None,
        since: str | date | None = None,
        until: str | date | None = None,
        superseded: bool = False,
    ) -> int:
        """How many runs `list_runs` would give with these filters and no limit."""
        query = _filtered(sa.select(sa.func.count()).select_from(schema.runs), project, tag, name, status,
                          *_period(since, until))
        query = _counted(query, superseded)
        return self._transaction(lambda conn: int(conn.execute(query).scalar_one()))

    def read(self, work: Callable[[sa.Connection], T]) -> T:
        """Run `work` (reads only) in one transaction, retried while the database is locked:
        for report queries over the tables of joulemeter.meter.store.schema (an inventory)."""
        return self._transaction(work)

    # -- grid intensity cache ------------------------------------------------------------
    def save_intensity(self, rows: Sequence[dict[str, Any]]) -> None:
        """Keep the intensity spans a provider gave (columns of schema.grid_intensity), each
        replacing a cached span of the same provider, zone, signal and start."""
        table = schema.grid_intensity
        keys = [c.name for c in table.primary_key.columns]

        def work(conn: sa.Connection) -> None:
            for row in rows:
                conn.execute(sa.delete(table).where(*(table.c[k] == row[k] for k in keys)))
            if rows:
                conn.execute(sa.insert(table), [dict(r) for r in rows])

        self._transaction(work, write=True)

    def cached_intensity(self, provider: str, zone: str, signal: str, start: str, end: str) -> list[dict[str, Any]]:
        """Cached spans of (provider, zone, signal) that meet [start, end) (ISO 8601 UTC, as
        stored), in time order; none in a ledger older than the cache."""
        if self.schema_version < 2:
            return []
        t = schema.grid_intensity
        query = (
            sa.select(t)
            .where(t.c.provider == provider, t.c.zone == zone, t.c.signal == signal,
                   t.c.start < end, t.c.end > start)
            .order_by(t.c.start)
        )
        return self._transaction(lambda conn: [dict(r._mapping) for r in conn.execute(query)])

    # -- internals ---------------------------------------------------------------------
    def _select(self, table: sa.Table) -> sa.Select:
        """SELECT of the columns of `table` that this ledger's schema version has."""
        return sa.select(*schema.columns_at(table, self.schema_version))

    def _unindexed(self, column: sa.Column, value: str, query: sa.Select) -> list[sa.Row]:
        """The rows of `query` where `column` is `value`, else, where that read meets a damaged
        page, the rows of a scan that uses no index of `column` (`column || ''` hides it)."""
        try:
            return self._transaction(lambda conn: conn.execute(query.where(column == value)).all())
        except LedgerCorruptError:
            return self._transaction(lambda conn: conn.execute(query.where(column.concat("") == value)).all())

    def _load(self, conn: sa.Connection, rows: Sequence[sa.Row], with_samples: bool) -> list[Run]:
        return _load_runs(conn, rows, with_samples, self._select)

    def _find(self, conn: sa.Connection, ref: str) -> sa.Row:
        runs = schema.runs
        if ref == "last":
            row = conn.execute(_counted(self._select(runs)).order_by(*_NEWEST_FIRST).limit(1)).first()
            if row is None:
                raise RunNotFoundError(f"{self.location} holds no run yet; meter one first")
            return row
        row = conn.execute(self._select(runs).where(runs.c.id == ref)).first()
        if row is not None:
            return row
        matches = [] if not ref else conn.execute(
            self._select(runs)
            .where(runs.c.id.startswith(ref, autoescape=True))
            .order_by(*_NEWEST_FIRST)
            .limit(_LISTED_CANDIDATES + 1)
        ).all()
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise RunNotFoundError(f"{ref!r} matches several runs: {_candidates(matches)}; "
                                   "give more characters of the id")
        named = conn.execute(  # a merged run's name, not also that of the parts a crash left
            _counted(self._select(runs)).where(runs.c.name == ref).order_by(*_NEWEST_FIRST)
            .limit(_LISTED_CANDIDATES + 1)
        ).all()
        if len(named) == 1:
            return named[0]
        if named:
            raise RunNotFoundError(f"several runs are named {ref!r}: {_candidates(named)}; give an id")
        raise RunNotFoundError(f"no run {ref!r} (an id, id prefix or name) in {self.location}; "
                               "`joulemeter runs` lists them")

    def _not_begun(self, run_id: str) -> RunNotFoundError:
        return RunNotFoundError(f"no run {run_id!r} in {self.location}; call begin_run first")

    def _refuse_existing(self, conn: sa.Connection, run_id: str) -> None:
        if _exists(conn, run_id):
            raise LedgerError(
                f"run {run_id!r} is already in {self.location}; give the new run another id"
            )

    def _transaction(
        self,
        work: Callable[[sa.Connection], T],
        write: bool = False,
        transient: Callable[[sa.exc.DBAPIError], bool] = _is_transient,
        deadline_s: float | None = None,
    ) -> T:
        """Run `work` in one transaction, retrying with backoff while the database is locked,
        for up to `deadline_s` (BUSY_DEADLINE_S by default)."""
        if write and self.damage is not None:
            raise LedgerCorruptError(self.location, f"SQLite finds damaged pages: {self.damage}")
        if write and self.read_only:
            raise LedgerError(
                f"{self.location} was opened read-only (it cannot be written here); nothing was written",
                path=self.location,
            )
        if write and self.schema_version < schema.SCHEMA_VERSION:
            raise LedgerError(
                f"{self.location} was opened for reading and has ledger schema {self.schema_version}, "
                f"older than this joulemeter's {schema.SCHEMA_VERSION}: open it for writing (any "
                "metered run does) to upgrade it; nothing was written",
                path=self.location,
            )
        engine = self._writer if write else self._engine
        wait_s = BUSY_DEADLINE_S if deadline_s is None else deadline_s
        if deadline_s is not None:
            engine = engine.execution_options(joulemeter_busy_ms=max(int(deadline_s * 1000), 1))
        deadline = time.monotonic() + wait_s
        backoff_s = 0.01
        while True:
            try:
                with engine.begin() as conn:
                    return work(conn)
            except sa.exc.DBAPIError as exc:
                if not transient(exc):
                    raise _as_ledger_error(exc, self.location) from exc
                if time.monotonic() + backoff_s > deadline:
                    raise LedgerBusyError(
                        f"{self.location} stayed locked by another writer for over "
                        f"{wait_s:g} s; find the process holding it or try again",
                        path=self.location,
                    ) from exc
                log.debug("ledger busy (%s); retrying in %.2f s", exc.orig, backoff_s)
                time.sleep(backoff_s * random.uniform(0.5, 1.5))
                backoff_s = min(backoff_s * 2, _MAX_BACKOFF_S)

    def resummarise_if_interrupted(self, run_id: str) -> None:
        """Recompute an interrupted run's duration and energy from its samples (more arrived)."""
        runs = schema.runs
        query = sa.select(runs).where(runs.c.id == run_id, runs.c.status == Status.INTERRUPTED.value)
        row = self._transaction(lambda conn: conn.execute(query).first())
        if row is not None:
            self._close_from_samples(row, Status.INTERRUPTED)

    def _recover_stale_runs(self) -> None:
        """Mark runs whose writer is gone `interrupted`, with energy from their flushed samples."""
        runs = schema.runs
        query = sa.select(runs).where(runs.c.status == Status.RUNNING.value)
        here = socket.gethostname()

        def read(conn: sa.Connection) -> tuple[list[sa.Row], datetime]:
            now = datetime.fromisoformat(conn.execute(sa.select(_DatabaseNow())).scalar_one())
            return conn.execute(query).all(), now

        rows, now = self._transaction(read)
        for row in rows:
            if _writer_is_gone(row, here, now):
                self._close_from_samples(row, Status.RUNNING)

    def _close_from_samples(self, row: sa.Row, status_now: Status) -> None:
        """Mark the run of `row` interrupted, its energy summed by the database from its samples.

        The sums are read first, outside the write lock; the write claims the run only if
        its status is still `status_now`, so two recovering processes do it once.
        """
        duration_s, count, energy = self._transaction(functools.partial(_sample_totals, run_id=row.id))
        error = (
            f"the metering process (pid {row.pid} on {row.hostname}) ended without finishing "
            f"the run; energy recovered from {count} samples flushed up to {duration_s or 0.0:.1f} s"
        )
        runs = schema.runs

        def work(conn: sa.Connection) -> bool:
            claim = (
                sa.update(runs)
                .where(runs.c.id == row.id, runs.c.status == status_now.value)
                .values(status=Status.INTERRUPTED.value, ended_at=row.heartbeat_at,
                        duration_s=duration_s, error=error)
            )
            if not conn.execute(claim).rowcount:  # another process recovered it first
                return False
            conn.execute(sa.delete(schema.energy).where(schema.energy.c.run_id == row.id))
            _insert_rows(conn, schema.energy, row.id, (e.to_dict() for e in energy.values()))
            return True

        if self._transaction(work, write=True):
            log.warning("run %s marked interrupted: %s", row.id, error)


def _sample_totals(conn: sa.Connection, run_id: str) -> tuple[float | None, int, dict[str, DomainEnergy]]:
    """A run's last sample time, sample count and energy per domain, summed by the database."""
    s = schema.samples
    per_domain = conn.execute(
        sa.select(s.c.domain, sa.func.max(s.c.energy_j), sa.func.max(s.c.power_w),
                  sa.func.max(s.c.t_s), sa.func.count())
        .where(s.c.run_id == run_id)
        .group_by(s.c.domain)
    ).all()
    d = schema.domains
    domains = [
        from_fields(Domain, r._mapping)
        for r in conn.execute(sa.select(d).where(d.c.run_id == run_id).order_by(d.c.position))
    ]
    duration_s = max((r[3] for r in per_domain), default=None)
    last_energy = {r[0]: r[1] for r in per_domain if r[1] is not None}
    peak = {r[0]: r[2] for r in per_domain if r[2] is not None}
    count = sum(r[4] for r in per_domain)
    return duration_s, count, totals(domains, last_energy, peak, duration_s)


_NEWEST_FIRST = (schema.runs.c.started_at.desc(), schema.runs.c.id.desc())
# every table of a run's parts, removed with it
_PART_TABLES = tuple(t for t in schema.tables.sorted_tables if t is not schema.runs and "run_id" in t.c)


def _period(since: str | date | None, until: str | date | None) -> tuple[str | None, str | None]:
    """The bounds of a period as comparable UTC text, refusing an empty period."""
    bounds = period_bound(since, end=False), period_bound(until, end=True)
    check_period(*bounds)
    return bounds


def writer_identity() -> dict[str, Any]:
    """This process as the ledger remembers a run's writer: pid, host, and when it started."""
    import psutil

    return {
        "pid": os.getpid(),
        "hostname": socket.gethostname(),
        "process_started_at": psutil.Process().create_time(),
    }


def _file_identity(path: Path | None) -> tuple[int, int] | None:
    """(device, inode) of a ledger file, None for none: tells the same file from a new one."""
    if path is None:
        return None
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


class _DatabaseNow(sa.sql.expression.FunctionElement):
    """The database's clock as ISO 8601 UTC text. Heartbeats are written and judged by it, so
    writers on hosts whose clocks disagree share one clock on a server (PostgreSQL)."""

    type = sa.String()
    inherit_cache = True


@compiles(_DatabaseNow, "postgresql")
def _postgres_now(element: _DatabaseNow, compiler: Any, **kw: Any) -> str:
    return """to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')"""


@compiles(_DatabaseNow)
def _sqlite_now(element: _DatabaseNow, compiler: Any, **kw: Any) -> str:
    return "strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')"  # https://www.sqlite.org/lang_datefunc.html


def _exists(conn: sa.Connection, run_id: str) -> bool:
    runs = schema.runs
    return conn.execute(sa.select(runs.c.id).where(runs.c.id == run_id)).first() is not None


def _status(value: Status | str) -> Status:
    try:
        return Status(value)
    except ValueError:
        known = ", ".join(s.value for s in Status)
        raise LedgerError(f"unknown run status {value!r}; use one of {known}") from None


def _writer_is_gone(row: sa.Row, here: str, now: datetime) -> bool:
    """This host: its process no longer exists. Other hosts: silent for STALE_HEARTBEAT_S."""
    if row.hostname == here and row.pid is not None:
        return not _process_alive(row.pid, row.process_started_at)
    try:
        heartbeat = datetime.fromisoformat(row.heartbeat_at)
    except (TypeError, ValueError):
        return True  # no readable heartbeat: nothing is writing it
    if heartbeat.tzinfo is None:
        heartbeat = heartbeat.replace(tzinfo=timezone.utc)
    return now - heartbeat > timedelta(seconds=STALE_HEARTBEAT_S)


def _process_alive(pid: int, started_at: float | None) -> bool:
    """Whether process `pid` still runs and is the same one (not a later one given its pid)."""
    import psutil

    try:
        process = psutil.Process(pid)
        return started_at is None or abs(process.create_time() - started_at) < 1.0
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:  # exists but cannot be inspected (another user's): assume alive
        return True


def _as_ledger_error(exc: sa.exc.DBAPIError, location: str) -> LedgerError:
    if isinstance(exc, sa.exc.IntegrityError):
        return LedgerError(f"{location} refused the write ({exc.orig}); nothing was written")
    if sqlite_file.is_corrupt(exc):
        return LedgerCorruptError(location, str(exc.orig))
    return LedgerError(
        f"cannot use the ledger {location}: {exc.orig}. Check that the file or server is "
        "reachable and writable, or choose another ledger with JOULEMETER_LEDGER.",
        path=location,
        parameter="ledger",
    )


# -- JSON fields -----------------------------------------------------------------------
def _to_json(value: Any) -> str:
    """Strict JSON (no NaN or Infinity), which both backends accept alike."""
    return json.dumps(value, allow_nan=False)


def _require_json(run: Run) -> None:
    """Refuse, before writing anything, a run that either backend could not store whole."""
    found = storable.problems(run)
    if found:
        raise LedgerError(
            f"run {run.id!r} cannot be stored: {'; '.join(found)}. Use plain JSON numbers (not NaN "
            "or infinity), strings without NUL characters, lists and dicts. Nothing was written."
        )


def _check_json(run_id: str, field: str, value: Any) -> None:
    try:
        _to_json(value)
    except (TypeError, ValueError) as exc:
        raise LedgerError(
            f"run {run_id!r}: its {field} cannot be stored ({exc}); use plain numbers (not NaN "
            "or infinity), strings, lists and dicts. Nothing was written."
        ) from None


# -- data model -> rows ----------------------------------------------------------------
#: The fields of Run that the runs table holds, matched by name (the others have tables).
_RUN_COLUMNS = tuple(f.name for f in dataclasses.fields(Run) if f.name in schema.runs.c)


def _run_row(run: Run, status: Status) -> dict[str, Any]:
    """The runs-table row of a run with `status`, marked alive now."""
    return fields_dict(run, _RUN_COLUMNS) | {"status": status.value, "heartbeat_at": _DatabaseNow()}


def _insert_run(conn: sa.Connection, run: Run) -> None:
    conn.execute(sa.insert(schema.runs).values(_run_row(run, run.status)))
    _insert_parts(conn, run)
    _insert_samples(conn, run.id, run.samples)


def _insert_parts(conn: sa.Connection, run: Run) -> None:
    """Tags, domains, energy, windows and gaps of a run (everything but samples)."""
    _insert_rows(conn, schema.tags, run.id, ({"tag": t} for t in run.tags))
    _insert_rows(conn, schema.domains, run.id, (d.to_dict() for d in run.domains))
    _insert_rows(conn, schema.energy, run.id, (e.to_dict() for e in run.energy.values()))
    _insert_rows(conn, schema.windows, run.id, (w.to_dict() for w in run.windows))
    _insert_rows(conn, schema.gaps, run.id, (g.to_dict() for g in run.gaps))


def _insert_rows(
    conn: sa.Connection,
    table: sa.Table,
    run_id: str,
    rows: Iterable[dict[str, Any]],
    start: int = 0,
) -> None:
    """Insert a run's child rows numbered from `start`, which keeps their order."""
    numbered = [{**r, "run_id": run_id, "position": start + i} for i, r in enumerate(rows)]
    if numbered:
        conn.execute(sa.insert(table), numbered)


#: Sample's fields, in order: its values are plain (floats, a name), so rows map them as
#: they are; the hot path of a long run, kept free of per-value conversion.
_SAMPLE_FIELDS = tuple(f.name for f in dataclasses.fields(Sample))
_sample_values = operator.attrgetter(*_SAMPLE_FIELDS)


def _insert_samples(conn: sa.Connection, run_id: str, samples: Sequence[Sample]) -> None:
    rows = [{**dict(zip(_SAMPLE_FIELDS, _sample_values(s))), "run_id": run_id} for s in samples]
    if rows:
        conn.execute(sa.insert(schema.samples), rows)


# -- rows -> data model ----------------------------------------------------------------
def _load_runs(
    conn: sa.Connection,
    rows: Sequence[sa.Row],
    with_samples: bool,
    select: Callable[[sa.Table], sa.Select] = sa.select,
) -> list[Run]:
    """Build Runs from their rows, reading each child table once per chunk of run ids
    (its columns chosen by `select`, which leaves out those an older ledger lacks)."""
    runs = {row.id: from_fields(Run, row._mapping) for row in rows}
    ids = list(runs)
    for chunk in (ids[i : i + _ID_CHUNK] for i in range(0, len(ids), _ID_CHUNK)):
        for table, add in _PART_READERS:
            query = select(table).where(table.c.run_id.in_(chunk)).order_by(table.c.position)
            for part in conn.execute(query):
                add(runs[part.run_id], part)
        if with_samples:
            s = schema.samples
            columns = [s.c[name] for name in _SAMPLE_FIELDS]
            query = sa.select(s.c.run_id, *columns).where(s.c.run_id.in_(chunk)).order_by(s.c.id)
            for run_id, *values in conn.execute(query):
                runs[run_id].samples.append(Sample(*values))
    return list(runs.values())


def _add_domain(run: Run, r: sa.Row) -> None:
    run.domains.append(from_fields(Domain, r._mapping))


def _add_energy(run: Run, r: sa.Row) -> None:
    energy = from_fields(DomainEnergy, r._mapping)
    run.energy[energy.domain] = energy


def _add_window(run: Run, r: sa.Row) -> None:
    run.windows.append(from_fields(Window, r._mapping))


def _add_gap(run: Run, r: sa.Row) -> None:
    run.gaps.append(from_fields(Gap, r._mapping))


def _add_sample(run: Run, r: sa.Row) -> None:
    run.samples.append(Sample(*(r._mapping[name] for name in _SAMPLE_FIELDS)))


#: Each child table and how its rows (fields matched by name) join their run.
_PART_READERS: tuple[tuple[sa.Table, Callable[[Run, sa.Row], None]], ...] = (
    (schema.tags, lambda run, r: run.tags.append(r.tag)),
    (schema.domains, _add_domain),
    (schema.energy, _add_energy),
    (schema.windows, _add_window),
    (schema.gaps, _add_gap),
)
