"""The ledger: every metered run kept in SQLite (default) or PostgreSQL (a database URL).

    with open_ledger() as ledger:          # $JOULEMETER_LEDGER or the per-user default file
        run = ledger.get_run("last")

SQLAlchemy is imported only when a ledger is opened, so `import joulemeter` stays cheap.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from joulemeter.meter.store.location import default_location

if TYPE_CHECKING:
    from joulemeter.meter.store.ledger import Ledger

__all__ = ["Ledger", "default_location", "open_ledger"]


def open_ledger(
    location: str | os.PathLike[str] | None = None, *, for_reading: bool = False, recover: bool = True
) -> Ledger:
    """Open the ledger at a path, sqlite:/// or postgresql:// URL (None: `default_location()`).

    Creates it on first use (a private file: 0600, in a 0700 folder when it makes one) and,
    with `recover`, delivers this machine's spooled runs and marks runs whose process died
    `interrupted`. `for_reading` (listing, reports, export): a SQLite ledger that cannot be
    written here (read-only file, folder or mount) is opened read-only instead of failing.
    Raises LedgerCorruptError or ForeignLedgerError, leaving the file untouched, when the
    location holds something else.
    """
    from joulemeter.meter.store.ledger import open_ledger as _open

    return _open(location, for_reading=for_reading, recover=recover)


def __getattr__(name: str) -> Any:
    """Load `Ledger` (and with it SQLAlchemy) only when someone asks for it."""
    if name == "Ledger":
        from joulemeter.meter.store.ledger import Ledger

        return Ledger
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
