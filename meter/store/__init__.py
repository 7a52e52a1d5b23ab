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


def open_ledger(location: str | os.PathLike[str] | None = None) -> Ledger:
    """Open the ledger at a path, sqlite:/// or postgresql:// URL (None: `default_location()`).

    Creates it on first use and marks runs whose process died `interrupted`. Raises
    LedgerCorruptError or ForeignLedgerError, leaving the file untouched, when the
    location holds something else.
    """
    from joulemeter.meter.store.ledger import open_ledger as _open

    return _open(location)


def __getattr__(name: str) -> Any:
    """Load `Ledger` (and with it SQLAlchemy) only when someone asks for it."""
    if name == "Ledger":
        from joulemeter.meter.store.ledger import Ledger

        return Ledger
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
