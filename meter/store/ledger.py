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
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import sqlalchemy as sa

from joulemeter.meter.energy import summarise
from joulemeter.meter.errors import LedgerCorruptError, LedgerError, RunNotFoundError
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
from joulemeter.meter.store import schema, sqlite_file
from joulemeter.meter.store.location import resolve

log = logging.getLogger("joulemeter.ledger")

T = TypeVar("T")

STALE_HEARTBEAT_S = 300.0  # a running run on another host, silent this long, is dead
BUSY_DEADLINE_S = 120.0  # stop retrying a locked ledger after this long
_MAX_BACKOFF_S = 1.0
_LISTED_CANDIDATES = 10  # ids shown when a prefix is ambiguous
_ID_CHUNK = 500  # run ids per IN (...) when loading the parts of many runs


def open_ledger(location: str | os.PathLike[str] | None = None) -> Ledger:
    """Open (creating if needed) the ledger at a path or URL and recover runs left running."""
    target = resolve(location)
    if target.sqlite_path is not None:
        sqlite_file.check_file(target.sqlite_path)
        try:
            target.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
        except FileExistsError as exc:
            raise LedgerError(f"the ledger's folder {target.sqlite_path.parent} exists but is not a folder") from exc
        except OSError as exc:
            raise LedgerError(
                f"cannot create the ledger's folder {target.sqlite_path.parent}: {exc.strerror or exc}"
            ) from exc
    try:
        engine = sa.create_engine(target.url, json_serializer=_to_json)
    except ModuleNotFoundError as exc:
        raise LedgerError(
            f"the ledger {target.display} needs the database driver {exc.name!r}, which is not installed: "
            "pip install 'joulemeter[postgres]'"
        ) from exc
    if engine.dialect.name == "sqlite":
        sqlite_file.configure(engine)
    ledger = Ledger(engine, target.display)
    try:
        ensure = functools.partial(schema.ensure_schema, where=ledger.location)
        ledger._transaction(ensure, write=True, transient=_is_transient_at_creation)
        ledger._recover_stale_runs()
    except BaseException:
        engine.dispose()
        raise
    return ledger


def _is_transient(exc: sa.exc.DBAPIError) -> bool:
    """A lock held by another writer (SQLite) or a serialization conflict (PostgreSQL)."""
    if getattr(exc.orig, "sqlstate", None) in ("40001", "40P01"):
        return True
    message = str(exc.orig).lower()
    return "database is locked" in message or "database table is locked" in message


def _is_transient_at_creation(exc: sa.exc.DBAPIError) -> bool:
    """Also retry losing a race to create the tables: the retry finds them made."""
    duplicate = getattr(exc.orig, "sqlstate", None) in ("23505", "42P07")  # unique, duplicate table
    return duplicate or "already exists" in str(exc.orig) or _is_transient(exc)


class Ledger:
    """Runs kept in a database; open one with `open_ledger`, one per process.

    Safe to share between threads. Every method is one transaction, written whole or
    not at all, and retried with backoff while another writer holds the lock.
    """

    def __init__(self, engine: sa.Engine, location: str) -> None:
        self.location = location
        self._engine = engine
        self._writer = engine.execution_options(joulemeter_write=True)

    def __repr__(self) -> str:
        return f"Ledger({self.location!r})"

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the database connections (a later call opens new ones)."""
        self._engine.dispose()

    # -- writing a run as it goes ------------------------------------------------------
    def begin_run(self, run: Run) -> None:
        """Record a run that starts now: status running, its domains, host, tags, metadata.

        Samples go through `append_samples`. Remembers this process (host, pid and its
        start time) so that a later `open_ledger` can tell whether the run is alive.
        """
        import psutil

        _require_json(run)
        writer = {
            "pid": os.getpid(),
            "hostname": socket.gethostname(),
            "process_started_at": psutil.Process().create_time(),
        }

        def work(conn: sa.Connection) -> None:
            self._refuse_existing(conn, run.id)
            conn.execute(sa.insert(schema.runs), _run_row(run, Status.RUNNING) | writer)
            _insert_parts(conn, run)

        self._transaction(work, write=True)

    def append_samples(self, run_id: str, samples: Sequence[Sample]) -> None:
        """Add samples to a begun run in one transaction, and mark the run alive now."""

        def work(conn: sa.Connection) -> None:
            runs = schema.runs
            alive = sa.update(runs).where(runs.c.id == run_id).values(heartbeat_at=_now_iso())
            if not conn.execute(alive).rowcount:
                raise self._not_begun(run_id)
            _insert_samples(conn, run_id, samples)

        self._transaction(work, write=True)

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

    def finish_run(self, run: Run) -> None:
        """Write the end of a begun run: status, end, energy, windows, units, gaps, metadata.

        Samples were appended while it ran and are left as they are. A run that was
        never begun is saved whole, samples included, so nothing measured is lost.
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

        self._transaction(work, write=True)

    def save_run(self, run: Run) -> None:
        """Write a whole finished run at once, samples included (imports, merged runs)."""
        self.save_runs([run])

    def save_runs(self, runs: Sequence[Run]) -> None:
        """Write several whole runs in one transaction: all of them, or none."""
        for run in runs:
            _require_json(run)

        def work(conn: sa.Connection) -> None:
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

    # -- reading -----------------------------------------------------------------------
    def existing_ids(self, run_ids: Iterable[str]) -> set[str]:
        """The ids among `run_ids` that the ledger already holds (whole ids, not prefixes)."""
        wanted = list(run_ids)
        return self._transaction(lambda conn: {run_id for run_id in wanted if _exists(conn, run_id)})

    def get_run(self, ref: str, samples: bool = True) -> Run:
        """The run named by its full id, a unique id prefix, or "last" (the newest)."""
        return self._transaction(lambda conn: _load_runs(conn, [self._find(conn, ref)], samples)[0])

    def list_runs(
        self,
        *,
        project: str | None = None,
        tag: str | None = None,
        name: str | None = None,
        status: Status | str | None = None,
        limit: int | None = None,
    ) -> list[Run]:
        """Runs newest first, with energy and windows but without samples."""
        runs = schema.runs
        query = sa.select(runs).order_by(*_NEWEST_FIRST).limit(limit)
        if project is not None:
            query = query.where(runs.c.project == project)
        if name is not None:
            query = query.where(runs.c.name == name)
        if status is not None:
            query = query.where(runs.c.status == _status(status).value)
        if tag is not None:
            tagged = sa.select(schema.tags.c.run_id).where(schema.tags.c.tag == tag)
            query = query.where(runs.c.id.in_(tagged))
        return self._transaction(lambda conn: _load_runs(conn, conn.execute(query).all(), False))

    # -- internals ---------------------------------------------------------------------
    def _find(self, conn: sa.Connection, ref: str) -> sa.Row:
        runs = schema.runs
        if ref == "last":
            row = conn.execute(sa.select(runs).order_by(*_NEWEST_FIRST).limit(1)).first()
            if row is None:
                raise RunNotFoundError(f"{self.location} holds no run yet; meter one first")
            return row
        row = conn.execute(sa.select(runs).where(runs.c.id == ref)).first()
        if row is not None:
            return row
        matches = [] if not ref else conn.execute(
            sa.select(runs)
            .where(runs.c.id.startswith(ref, autoescape=True))
            .order_by(*_NEWEST_FIRST)
            .limit(_LISTED_CANDIDATES + 1)
        ).all()
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise RunNotFoundError(
                f"no run {ref!r} in {self.location}; `joulemeter runs` lists the ids"
            )
        shown = ", ".join(f"{m.id} ({m.name})" for m in matches[:_LISTED_CANDIDATES])
        more = " and more" if len(matches) > _LISTED_CANDIDATES else ""
        raise RunNotFoundError(
            f"{ref!r} matches several runs: {shown}{more}; give more characters of the id"
        )

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
    ) -> T:
        """Run `work` in one transaction, retrying with backoff while the database is locked."""
        engine = self._writer if write else self._engine
        deadline = time.monotonic() + BUSY_DEADLINE_S
        backoff_s = 0.01
        while True:
            try:
                with engine.begin() as conn:
                    return work(conn)
            except sa.exc.DBAPIError as exc:
                if not transient(exc):
                    raise _as_ledger_error(exc, self.location) from exc
                if time.monotonic() + backoff_s > deadline:
                    raise LedgerError(
                        f"{self.location} stayed locked by another writer for over "
                        f"{BUSY_DEADLINE_S:.0f} s; find the process holding it or try again"
                    ) from exc
                log.debug("ledger busy (%s); retrying in %.2f s", exc.orig, backoff_s)
                time.sleep(backoff_s * random.uniform(0.5, 1.5))
                backoff_s = min(backoff_s * 2, _MAX_BACKOFF_S)

    def _recover_stale_runs(self) -> None:
        """Mark runs whose writer is gone `interrupted`, with energy from their flushed samples."""
        runs = schema.runs
        query = sa.select(runs).where(runs.c.status == Status.RUNNING.value)
        here, now = socket.gethostname(), datetime.now(timezone.utc)
        for row in self._transaction(lambda conn: conn.execute(query).all()):
            if _writer_is_gone(row, here, now):
                self._transaction(functools.partial(self._mark_interrupted, row=row), write=True)

    def _mark_interrupted(self, conn: sa.Connection, row: sa.Row) -> None:
        runs = schema.runs
        claim = (
            sa.update(runs)
            .where(runs.c.id == row.id, runs.c.status == Status.RUNNING.value)
            .values(status=Status.INTERRUPTED.value)
        )
        if not conn.execute(claim).rowcount:  # another process recovered it first
            return
        run = _load_runs(conn, [row], with_samples=True)[0]
        duration_s = max((s.t_s for s in run.samples), default=None)
        error = (
            f"the metering process (pid {row.pid} on {row.hostname}) ended without finishing "
            f"the run; energy recovered from {len(run.samples)} samples flushed up to "
            f"{duration_s or 0.0:.1f} s"
        )
        conn.execute(
            sa.update(runs)
            .where(runs.c.id == row.id)
            .values(ended_at=row.heartbeat_at, duration_s=duration_s, error=error)
        )
        energy = summarise(run.domains, run.samples, duration_s)
        conn.execute(sa.delete(schema.energy).where(schema.energy.c.run_id == row.id))
        _insert_rows(conn, schema.energy, row.id, (e.to_dict() for e in energy.values()))
        log.warning("run %s marked interrupted: %s", row.id, error)


_NEWEST_FIRST = (schema.runs.c.started_at.desc(), schema.runs.c.id.desc())


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


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
    """Refuse, before writing anything, a run whose free-form fields are not plain JSON."""
    _check_json(run.id, "host", run.host)
    _check_json(run.id, "units", run.units)
    _check_json(run.id, "metadata", run.metadata)
    for w in run.windows:
        _check_json(run.id, f"window {w.path!r}", {"energy_j": w.energy_j, "units": w.units})


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
    return fields_dict(run, _RUN_COLUMNS) | {"status": status.value, "heartbeat_at": _now_iso()}


def _insert_run(conn: sa.Connection, run: Run) -> None:
    conn.execute(sa.insert(schema.runs), _run_row(run, run.status))
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
def _load_runs(conn: sa.Connection, rows: Sequence[sa.Row], with_samples: bool) -> list[Run]:
    """Build Runs from their rows, reading each child table once per chunk of run ids."""
    runs = {row.id: from_fields(Run, row._mapping) for row in rows}
    ids = list(runs)
    for chunk in (ids[i : i + _ID_CHUNK] for i in range(0, len(ids), _ID_CHUNK)):
        for table, add in _PART_READERS:
            query = sa.select(table).where(table.c.run_id.in_(chunk)).order_by(table.c.position)
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


#: Each child table and how its rows (fields matched by name) join their run.
_PART_READERS: tuple[tuple[sa.Table, Callable[[Run, sa.Row], None]], ...] = (
    (schema.tags, lambda run, r: run.tags.append(r.tag)),
    (schema.domains, _add_domain),
    (schema.energy, _add_energy),
    (schema.windows, _add_window),
    (schema.gaps, _add_gap),
)
