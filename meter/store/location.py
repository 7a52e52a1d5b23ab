"""Where the ledger lives: the default per-user file, and turning a path or URL into a target."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from joulemeter.meter.errors import LedgerError

if TYPE_CHECKING:
    import sqlalchemy as sa

LEDGER_ENV = "JOULEMETER_LEDGER"
LEDGER_FILE_NAME = "ledger.sqlite"
SPOOL_ENV = "JOULEMETER_SPOOL"


def default_location() -> str:
    """$JOULEMETER_LEDGER if set, else the `ledger` of a joulemeter.toml (meter.config), else
    `ledger.sqlite` in the platform's per-user data directory."""
    from joulemeter.meter.config import load_config

    configured = os.environ.get(LEDGER_ENV)
    if configured:
        return configured
    config = load_config()
    if config.ledger:
        return _from_config(config.ledger, config.origin["ledger"])
    return str(data_folder() / LEDGER_FILE_NAME)


def _from_config(ledger: str, config_file: Path) -> str:
    """A config's ledger: a URL as it is, a relative path from the config file's folder."""
    if "://" in ledger:
        return ledger
    path = Path(ledger).expanduser()
    return str(path if path.is_absolute() else config_file.parent / path)


def spool_dir() -> Path:
    """$JOULEMETER_SPOOL if set, else `spool/` beside the default ledger file.

    Samples the ledger could not take wait there, on this machine, whatever ledger they are for.
    """
    configured = os.environ.get(SPOOL_ENV)
    if configured:
        return Path(configured).expanduser().absolute()
    return data_folder() / "spool"


def data_folder() -> Path:
    """joulemeter's folder in the per-user data directory: the only ledger folder it creates."""
    return (_user_data_dir() / "joulemeter").absolute()


def _user_data_dir() -> Path:
    """XDG_DATA_HOME (or ~/.local/share) on Linux, the platform's own folder elsewhere."""
    home = Path.home()
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA") or home / "AppData" / "Local")
    if sys.platform == "darwin":
        return home / "Library" / "Application Support"
    return Path(os.environ.get("XDG_DATA_HOME") or home / ".local" / "share")


@dataclass(frozen=True)
class LedgerTarget:
    """A resolved ledger location: SQLAlchemy URL, printable name, and the SQLite file if any."""

    url: sa.URL
    display: str  # passwords hidden
    sqlite_path: Path | None


def resolve(location: str | os.PathLike[str] | None) -> LedgerTarget:
    """A path or sqlite:/// URL -> SQLite file; postgresql://… -> PostgreSQL through psycopg 3."""
    import sqlalchemy as sa

    if location is None:
        location = default_location()
    text = os.fspath(location)
    if "://" not in text:
        return _sqlite_target(Path(text))
    try:
        url = sa.make_url(text)
    except sa.exc.ArgumentError as exc:
        raise LedgerError(f"cannot read the ledger URL {text!r}: {exc}") from exc
    backend = url.get_backend_name()
    if backend == "sqlite":
        if not url.database or url.database == ":memory:" or url.database.startswith("file:"):
            raise LedgerError(
                f"{text!r} names no ledger file; "
                "give a file path or sqlite:///path/to/ledger.sqlite"
            )
        return _sqlite_target(Path(url.database))
    if backend in ("postgresql", "postgres"):
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+psycopg")
        return LedgerTarget(url, url.render_as_string(hide_password=True), None)
    raise LedgerError(
        f"unsupported ledger URL {url.render_as_string(hide_password=True)!r}: use a file path, "
        "sqlite:///path/to/ledger.sqlite or postgresql://user@host/database"
    )


def _sqlite_target(path: Path) -> LedgerTarget:
    import sqlalchemy as sa

    path = path.expanduser().absolute()
    return LedgerTarget(sa.URL.create("sqlite", database=str(path)), str(path), path)
