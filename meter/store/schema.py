"""The ledger's tables in SQLAlchemy Core, one definition for SQLite and PostgreSQL.

Raise SCHEMA_VERSION with every change to the tables and add the migration to
`ensure_schema` (a column added to a table goes in ADDED_COLUMNS); a ledger written by a
newer version is refused, never altered, and one opened only for reading is read at the
version it has.

Versions: 1 the first; 2 adds domains.vendor, runs.location and the grid_intensity cache.
"""

from __future__ import annotations

import sqlalchemy as sa

from joulemeter.meter.errors import ForeignLedgerError

SCHEMA_VERSION = 2

tables = sa.MetaData()


def _run_id(**kwargs: object) -> sa.Column:
    """The column tying a child row to its run (removed with the run)."""
    return sa.Column(
        "run_id", sa.String, sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False, **kwargs
    )


def _run_part(name: str, *columns: sa.Column) -> sa.Table:
    """A table of one kind of part of a run, kept in order: keyed by (run_id, position)."""
    return sa.Table(
        name,
        tables,
        _run_id(primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        *columns,
    )


meta = sa.Table(
    "joulemeter_meta",
    tables,
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("value", sa.String, nullable=False),
)

runs = sa.Table(
    "runs",
    tables,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("project", sa.String, nullable=False, index=True),
    sa.Column("status", sa.String, nullable=False, index=True),
    sa.Column("started_at", sa.String, nullable=False, index=True),  # ISO 8601 UTC
    sa.Column("ended_at", sa.String),
    sa.Column("duration_s", sa.Double),
    sa.Column("interval_s", sa.Double, nullable=False),
    sa.Column("host", sa.JSON, nullable=False),  # hostname, os, cpu, gpus, …
    sa.Column("units", sa.JSON, nullable=False),
    sa.Column("metadata", sa.JSON, nullable=False),
    sa.Column("error", sa.Text),
    # who is writing the run, to tell a live run from one whose process was killed
    sa.Column("pid", sa.Integer),
    sa.Column("hostname", sa.String),
    sa.Column("process_started_at", sa.Double),  # epoch s; tells a reused pid from the writer
    sa.Column("heartbeat_at", sa.String),  # ISO 8601 UTC of the last write
    sa.Column("location", sa.JSON),  # Location.to_dict(); NULL: not recorded (schema 1 runs)
)

tags = _run_part("tags", sa.Column("tag", sa.String, nullable=False, index=True))

# The devices a run measured: one row per domain.
domains = _run_part(
    "domains",
    sa.Column("name", sa.String, nullable=False),
    sa.Column("kind", sa.String, nullable=False),
    sa.Column("device", sa.String, nullable=False),
    sa.Column("provenance", sa.String, nullable=False),
    sa.Column("method", sa.String, nullable=False),
    sa.Column("counter_range_j", sa.Double),
    sa.Column("note", sa.Text),
    sa.Column("vendor", sa.String),  # "nvidia", "amd", …; NULL for CPU/RAM and schema 1 runs
)

energy = _run_part(
    "energy",
    sa.Column("domain", sa.String, nullable=False),
    sa.Column("energy_j", sa.Double, nullable=False),
    sa.Column("provenance", sa.String, nullable=False),
    sa.Column("avg_power_w", sa.Double),
    sa.Column("peak_power_w", sa.Double),
    sa.Column("idle_power_w", sa.Double),
)

windows = _run_part(
    "windows",
    sa.Column("name", sa.String, nullable=False),
    sa.Column("path", sa.String, nullable=False),
    sa.Column("start_s", sa.Double, nullable=False),
    sa.Column("end_s", sa.Double),
    sa.Column("energy_j", sa.JSON, nullable=False),  # domain -> J
    sa.Column("units", sa.JSON, nullable=False),  # unit -> count
    sa.Column("note", sa.Text),
)

gaps = _run_part(
    "gaps",
    sa.Column("domain", sa.String, nullable=False),
    sa.Column("start_s", sa.Double, nullable=False),
    sa.Column("end_s", sa.Double),
    sa.Column("reason", sa.Text, nullable=False),
)

samples = sa.Table(
    "samples",
    tables,
    # insertion order is time order within a run; SQLite needs INTEGER for autoincrement
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    _run_id(index=True),
    sa.Column("t_s", sa.Double, nullable=False),
    sa.Column("domain", sa.String, nullable=False),
    sa.Column("power_w", sa.Double),
    sa.Column("energy_j", sa.Double),
)

# Grid carbon intensity per hour as a provider or a user's CSV gave it, kept so that a
# report made later, offline, uses the same figures. Average and marginal are separate rows.
grid_intensity = sa.Table(
    "grid_intensity",
    tables,
    sa.Column("provider", sa.String, primary_key=True),  # "electricitymaps", "csv:<name>", …
    sa.Column("zone", sa.String, primary_key=True),  # the provider's zone, e.g. "DE", "CAISO_NORTH"
    sa.Column("signal", sa.String, primary_key=True),  # "average" or "marginal"
    sa.Column("start", sa.String, primary_key=True),  # ISO 8601 UTC start of the hour
    sa.Column("end", sa.String, nullable=False),  # ISO 8601 UTC end of the span
    sa.Column("intensity_g_per_kwh", sa.Double, nullable=False),
    sa.Column("method", sa.String),  # e.g. "lifecycle", "direct" (operational), as the provider says
    sa.Column("source", sa.Text, nullable=False),  # where it came from: URL without key, or file
    sa.Column("fetched_at", sa.String, nullable=False),  # ISO 8601 UTC
)

# Columns added after version 1, by the version that added them: a ledger at an older
# version lacks them (ensure_schema adds them; a reader leaves them out).
ADDED_COLUMNS: dict[int, tuple[sa.Column, ...]] = {
    2: (domains.c.vendor, runs.c.location),
}
# Tables added after version 1, by the version that added them.
ADDED_TABLES: dict[int, tuple[sa.Table, ...]] = {2: (grid_intensity,)}

# Child tables replaced whole when a run is finished (samples are only ever appended).
RUN_PARTS = (tags, domains, energy, windows, gaps)


def read_schema_version(conn: sa.Connection, where: str) -> int | None:
    """The ledger's schema version; None for a database with no tables yet.

    Raises ForeignLedgerError for a database that holds other tables but no joulemeter
    meta table, or one written by a newer joulemeter. Reads only.
    """
    names = set(sa.inspect(conn).get_table_names())
    if not names:
        return None
    if meta.name not in names:
        shown = ", ".join(sorted(names)[:5]) + (", …" if len(names) > 5 else "")
        raise ForeignLedgerError(where, f"it holds other tables ({shown}) and no {meta.name}")
    value = conn.execute(sa.select(meta.c.value).where(meta.c.key == "schema_version")).scalar()
    try:
        version = int(value)
    except (TypeError, ValueError):
        raise ForeignLedgerError(where, f"its schema_version is {value!r}, not a number") from None
    if version > SCHEMA_VERSION:
        raise ForeignLedgerError(
            where,
            f"it was written with ledger schema {version}, this joulemeter knows up to "
            f"{SCHEMA_VERSION}; upgrade joulemeter to read it",
        )
    return version


def ensure_schema(conn: sa.Connection, where: str, *, migrate: bool = True) -> int:
    """Create the tables in an empty database; bring an older ledger up to SCHEMA_VERSION
    (unless `migrate` is False: then it is left as it is). Returns the version it is at."""
    version = read_schema_version(conn, where)
    if version is None:
        tables.create_all(conn)
        conn.execute(sa.insert(meta).values(key="schema_version", value=str(SCHEMA_VERSION)))
        return SCHEMA_VERSION
    if version == SCHEMA_VERSION or not migrate:
        return version
    # Lock the version row, then read it again: a writer that migrated meanwhile is seen
    # (PostgreSQL re-reads a row locked FOR UPDATE; SQLite writers are already serialised).
    locked = sa.select(meta.c.value).where(meta.c.key == "schema_version").with_for_update()
    version = int(conn.execute(locked).scalar_one())
    for step in range(version + 1, SCHEMA_VERSION + 1):
        for column in ADDED_COLUMNS.get(step, ()):
            _add_column(conn, column)
        for table in ADDED_TABLES.get(step, ()):
            table.create(conn, checkfirst=True)
    conn.execute(sa.update(meta).where(meta.c.key == "schema_version").values(value=str(SCHEMA_VERSION)))
    return SCHEMA_VERSION


def _add_column(conn: sa.Connection, column: sa.Column) -> None:
    """ALTER TABLE … ADD COLUMN for a nullable column, in the connection's dialect."""
    preparer = conn.dialect.identifier_preparer
    kind = column.type.compile(dialect=conn.dialect)
    conn.exec_driver_sql(
        f"ALTER TABLE {preparer.format_table(column.table)} ADD COLUMN {preparer.format_column(column)} {kind}"
    )


def columns_at(table: sa.Table, version: int) -> list[sa.Column]:
    """The columns of `table` that a ledger at schema `version` has."""
    later = {c for step, added in ADDED_COLUMNS.items() if step > version for c in added}
    return [c for c in table.columns if c not in later]
