"""SQLite specifics: checking a file before writing to it, the connection settings, and
reading a ledger that cannot be written (read-only file, folder or mount).

The check reads the file without a write (header bytes, then a read-only connection), so
a corrupt or foreign file is refused before WAL mode or tables could change a byte of it.
Its pages are checked once (`damage`): again only when the file changed since joulemeter
last verified it or last closed it after writing.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from joulemeter.meter.errors import LedgerCorruptError, LedgerError
from joulemeter.meter.store.schema import read_schema_version

_HEADER = b"SQLite format 3\x00"
_HEADER_SIZE = 100  # https://www.sqlite.org/fileformat.html#the_database_header
BUSY_TIMEOUT_MS = 10_000
# Error names SQLite gives a damaged file (https://www.sqlite.org/rescode.html).
_CORRUPT_ERRORS = {"SQLITE_CORRUPT", "SQLITE_NOTADB"}
_PROBLEMS_SHOWN = 3  # of quick_check's findings, in a damaged ledger's message
_VERIFIED_FILE = "verified-ledgers.json"  # in this machine's spool folder (store.location)
_VERIFIED_KEPT = 64  # ledgers remembered


def check_file(path: Path) -> None:
    """Refuse a file that is not a SQLite database or not a ledger; a missing or empty one is fine.

    Raises LedgerCorruptError or ForeignLedgerError; never writes to the file.
    """
    if path.is_dir():
        raise LedgerError(
            f"{path} is a directory; give the ledger a file name, e.g. {path / 'ledger.sqlite'}"
        )
    if not path.exists() or path.stat().st_size == 0:
        return
    if Path(f"{path}-wal").exists():
        # In use, or left by a crash or a full disk: the WAL holds pages the main file may
        # lack (a checkpoint that could not grow it), so only SQLite reading through it can tell.
        _check_header(path, whole=False)
        _read_version(path, immutable=False)
        return
    wal_mode = _check_header(path)
    try:  # no WAL in use: read without locks, which creates no -wal or -shm file
        _read_version(path, immutable=True)
    except LedgerCorruptError:
        if wal_mode:  # its main file changes only at checkpoints, which need a -wal file
            raise
        _read_version(path, immutable=False)  # confirm: a writer may have been mid-commit


def damage(path: Path) -> str | None:
    """What SQLite's `PRAGMA quick_check` finds wrong in the file's pages, or None when it is
    sound (or exactly as joulemeter last verified or wrote it). Reads only; an existing,
    non-empty SQLite file (check_file first)."""
    if _identity(path) == _verified().get(_key(path)):
        return None
    wal_in_use = Path(f"{path}-wal").exists()
    problems = _quick_check(path, immutable=not wal_in_use)
    if problems is not None and not wal_in_use:
        problems = _quick_check(path, immutable=False)  # confirm: a writer may have been mid-commit
    if problems is None:
        remember_sound(path)
    return problems


def remember_sound(path: Path) -> None:
    """Record the file as it is now as sound: verified, or just closed after SQLite wrote it,
    so the next open need not read every page again. Best effort: a failure means a recheck."""
    identity = _identity(path)
    if identity is None:
        return
    known = _verified()
    known.pop(_key(path), None)
    known[_key(path)] = identity
    kept = dict(list(known.items())[-_VERIFIED_KEPT:])
    record = _verified_path()
    try:
        record.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=record.parent, delete=False, suffix=".tmp") as f:
            json.dump(kept, f)
        os.replace(f.name, record)
    except OSError:
        pass


def _quick_check(path: Path, immutable: bool) -> str | None:
    """quick_check's first findings through a read-only connection, or None if it says ok."""
    uri = f"{path.as_uri()}?mode=ro" + ("&immutable=1" if immutable else "")
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
        try:
            rows = [r[0] for r in conn.execute(f"PRAGMA quick_check({_PROBLEMS_SHOWN})")]
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:  # too damaged to finish the check
        return str(exc)
    return None if rows == ["ok"] else "; ".join(rows)


def _identity(path: Path) -> list[int] | None:
    """The file and its WAL as (device, inode, size, mtime ns) each: what changes with any write."""
    parts: list[int] = []
    for part in (path, Path(f"{path}-wal")):
        try:
            st = part.stat()
        except FileNotFoundError:
            parts += [-1, -1, -1, -1]
            continue
        except OSError:
            return None
        parts += [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]
    return parts


def _verified() -> dict[str, list[int]]:
    try:
        known = json.loads(_verified_path().read_text())
    except (OSError, ValueError):
        return {}
    return known if isinstance(known, dict) else {}


def _verified_path() -> Path:
    from joulemeter.meter.store.location import spool_dir

    return spool_dir() / _VERIFIED_FILE


def _key(path: Path) -> str:
    return str(path.resolve())


def _read_version(path: Path, immutable: bool) -> None:
    """Read the schema version through a read-only connection, translating SQLite's errors."""
    uri = f"{path.as_uri()}?mode=ro" + ("&immutable=1" if immutable else "")
    engine = sa.create_engine(
        "sqlite://",
        creator=lambda: sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000),
        poolclass=sa.pool.NullPool,
    )
    try:
        with engine.connect() as conn:
            read_schema_version(conn, str(path))
    except sa.exc.DBAPIError as exc:
        if is_corrupt(exc):
            raise LedgerCorruptError(path, str(exc.orig)) from exc
        raise LedgerError(f"cannot read the ledger {path}: {exc.orig}") from exc
    finally:
        engine.dispose()


def _check_header(path: Path, whole: bool = True) -> bool:
    """Compare the header with the file (magic string, page size, and if `whole` its length);
    True if in WAL mode."""
    size = path.stat().st_size
    with path.open("rb") as f:
        header = f.read(_HEADER_SIZE)
    if len(header) < _HEADER_SIZE or not header.startswith(_HEADER):
        raise LedgerCorruptError(path, "it does not start with the SQLite file header")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    if page_size < 512 or page_size & (page_size - 1):
        raise LedgerCorruptError(path, f"its header gives an impossible page size {page_size}")
    if not whole:
        return header[18] == 2
    if size % page_size:
        raise LedgerCorruptError(
            path, f"it is truncated: {size} bytes, not a whole number of {page_size}-byte pages"
        )
    pages = int.from_bytes(header[28:32], "big")
    pages_valid = header[24:28] == header[92:96]  # the page count is valid when these match
    if pages_valid and pages and size < pages * page_size:
        raise LedgerCorruptError(
            path, f"it is truncated: {size} bytes where its header promises {pages * page_size}"
        )
    return header[18] == 2  # file format write version: 2 means WAL


def cannot_write(path: Path) -> bool:
    """Whether an existing ledger file cannot be written here: the file, or its folder (where
    SQLite keeps its -wal and -shm files), is read-only for us or on a read-only mount."""
    if not path.exists():
        return False
    return not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK)


def read_only_engine(path: Path, **options: Any) -> sa.Engine:
    """An engine that reads `path` without ever writing it, nor creating a -wal or -shm file.

    A read-only connection of a WAL ledger needs its -shm file; where that cannot be made
    (a read-only folder or mount, where nothing can change the file either) it reads the
    file as immutable.
    """

    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000,
                               check_same_thread=False)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.OperationalError:
            conn.close()
        return sqlite3.connect(f"{path.as_uri()}?mode=ro&immutable=1", uri=True, check_same_thread=False)

    return sa.create_engine("sqlite://", creator=connect, **options)


def is_corrupt(exc: sa.exc.DBAPIError) -> bool:
    """Whether SQLite said the file is damaged or not a database."""
    name = getattr(exc.orig, "sqlite_errorname", "")
    message = str(exc.orig)
    return name in _CORRUPT_ERRORS or "malformed" in message or "not a database" in message


def configure(engine: sa.Engine, read_only: bool = False) -> None:
    """WAL mode, a busy timeout, foreign keys; BEGIN IMMEDIATE for writes so writers queue.

    A transaction given `joulemeter_busy_ms` waits that long for a lock instead of the
    default; a read-only engine leaves the journal mode as the file has it.
    """

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        dbapi_connection.isolation_level = None  # let the begin hook below emit BEGIN
        cursor = dbapi_connection.cursor()
        if not read_only:
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")  # durable across a killed process in WAL
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        options = conn.get_execution_options()
        conn.exec_driver_sql(f"PRAGMA busy_timeout = {int(options.get('joulemeter_busy_ms', BUSY_TIMEOUT_MS))}")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get("joulemeter_write", False) else "BEGIN")
