"""Every failure joulemeter raises, in one tree.

    JoulemeterError                  base: catch this to catch anything of ours
    ├── SourceUnavailable            a power source cannot read here (carries why and the fix)
    ├── MeterStateError              the meter was used out of order (count() outside a run, …)
    ├── ReplayTraceError             a recorded power trace is malformed
    ├── LedgerError                  the ledger cannot be used
    │   ├── LedgerCorruptError       the file is not a readable database
    │   ├── ForeignLedgerError       a database, but not a joulemeter ledger (or a newer schema)
    │   └── RunNotFoundError         no run matches the id, prefix or name asked for
    ├── FactorError                  a conversion factor cannot be resolved
    │   └── UnknownRegionError       a country or region code nobody knows (suggests close matches)
    ├── UnknownHardwareError         a hardware name missing from the hardware table
    ├── ImportFormatError            a foreign file (CodeCarbon CSV, …) is malformed; nothing imported
    ├── ExporterError                a live exporter (Prometheus) cannot serve, e.g. port in use
    └── ReportError                  a report, comparison or prediction cannot be built as asked

Messages say what went wrong and what to do next.
"""

from __future__ import annotations

from pathlib import Path


class JoulemeterError(Exception):
    """Base of every joulemeter exception."""


class SourceUnavailable(JoulemeterError):
    """A power source cannot read on this machine; `reason` says why and `fix` what to do."""

    def __init__(self, source: str, reason: str, fix: str | None = None) -> None:
        self.source = source
        self.reason = reason
        self.fix = fix
        message = f"{source}: {reason}"
        if fix:
            message += f" ({fix})"
        super().__init__(message)


class MeterStateError(JoulemeterError):
    """The meter was used out of order, e.g. `count()` before the run started."""


class ReplayTraceError(JoulemeterError):
    """A recorded power trace cannot be replayed (bad columns, time going back, NaN…)."""


class LedgerError(JoulemeterError):
    """The ledger cannot be opened, read or written."""


class LedgerCorruptError(LedgerError):
    """The ledger file exists but is not a readable database; it is left untouched."""

    def __init__(self, path: Path | str, detail: str) -> None:
        self.path = str(path)
        super().__init__(
            f"{path} is not a readable joulemeter ledger ({detail}). It was left untouched; "
            "move it aside or point JOULEMETER_LEDGER at another file."
        )


class ForeignLedgerError(LedgerError):
    """The database exists but belongs to something else, or to a newer joulemeter."""

    def __init__(self, path: Path | str, detail: str) -> None:
        self.path = str(path)
        super().__init__(
            f"{path} is not a joulemeter ledger this version can use ({detail}). It was left "
            "untouched; choose another path with JOULEMETER_LEDGER or --ledger."
        )


class RunNotFoundError(LedgerError):
    """No run in the ledger matches what was asked for."""


class FactorError(JoulemeterError):
    """A conversion factor (intensity, PUE, price, equivalence) cannot be resolved."""


class UnknownRegionError(FactorError):
    """A country or region code that the grid data does not know."""

    def __init__(self, code: str, suggestions: list[str] | None = None) -> None:
        self.code = code
        self.suggestions = list(suggestions or [])
        message = f"unknown country or region {code!r}"
        message += f"; did you mean {', '.join(self.suggestions)}?" if self.suggestions else "."
        message += " Run `joulemeter factors --list` to see every known code, or pass --intensity."
        super().__init__(message)


class UnknownHardwareError(JoulemeterError):
    """A hardware name that the hardware table does not list."""

    def __init__(self, name: str, suggestions: list[str] | None = None) -> None:
        self.name = name
        self.suggestions = list(suggestions or [])
        message = f"unknown hardware {name!r}"
        if self.suggestions:
            message += f"; did you mean {', '.join(self.suggestions)}?"
        message += " Pass --power-w to give the board power yourself."
        super().__init__(message)


class ImportFormatError(JoulemeterError):
    """A foreign file could not be imported; nothing from it was written."""


class ExporterError(JoulemeterError):
    """A live exporter (Prometheus endpoint) cannot start, e.g. its port is taken."""


class ReportError(JoulemeterError):
    """A report, comparison or prediction cannot be built from the runs and options given."""
