"""Every failure joulemeter raises, in one tree.

    JoulemeterError                  base: catch this to catch anything of ours
    ├── SourceUnavailable            a power source cannot read here (carries why and the fix)
    ├── MeterStateError              the meter was used out of order (count() outside a run, …)
    ├── InvalidCountError            count() given a NaN, infinite, negative or non-numeric amount (also a ValueError)
    ├── InputLimitError              a name, tag or metadata past its size bound (also a ValueError)
    ├── ReplayTraceError             a recorded power trace is malformed
    ├── LedgerError                  the ledger cannot be used (carries its path when known)
    │   ├── LedgerCorruptError       the file is not a readable database
    │   ├── ForeignLedgerError       a database, but not a joulemeter ledger (or a newer schema)
    │   ├── RunNotFoundError         no run matches the id, prefix or name asked for
    │   └── LedgerBusyError          another writer held the ledger's lock past the deadline
    ├── FactorError                  a conversion factor cannot be resolved
    │   ├── UnknownRegionError       a country or region code nobody knows (suggests close matches)
    │   └── IntensityError           an intensity series malformed or not covering the run (reports.intensity)
    ├── ConfigError                  a joulemeter.toml that cannot be read (meter.config)
    ├── UnknownHardwareError         a hardware name missing from the hardware table
    ├── ImportFormatError            a foreign file (CodeCarbon CSV, …) is malformed; nothing imported
    ├── ExporterError                a live exporter (Prometheus) cannot serve, e.g. port in use
    └── ReportError                  a report, export, comparison or prediction cannot be built as asked
        └── UnknownFormatError       an output format that cannot write what was asked (also a ValueError)

    LedgerWriteWarning (a RuntimeWarning, not raised): a run's ledger write failed; its
    samples wait in the local spool and are delivered when the ledger takes them.

Messages say what went wrong and what to do next in the library's terms, never a
command-line flag; `parameter` names the argument that does what the message advises,
so the CLI can add its flag for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


class JoulemeterError(Exception):
    """Base of every joulemeter exception; `parameter` names the argument that the advice is about."""

    parameter: str | None = None

    def __init__(self, *args: object, parameter: str | None = None) -> None:
        super().__init__(*args)
        self.parameter = parameter


class SourceUnavailable(JoulemeterError):
    """A power source cannot read on this machine; `reason` says why and `fix` what to do.

    `absent`: the hardware it reads is not on this machine at all (no Mac, no AMD driver), so
    fallback notes leave it out; `joulemeter devices` still lists it with its reason."""

    def __init__(self, source: str, reason: str, fix: str | None = None, *, absent: bool = False) -> None:
        self.source = source
        self.reason = reason
        self.fix = fix
        self.absent = absent
        message = f"{source}: {reason}"
        if fix:
            message += f" ({fix})"
        super().__init__(message)


class InvalidCountError(JoulemeterError, ValueError):
    """`count()` was given an amount that is not a finite, non-negative number, or an empty unit."""


class MeterStateError(JoulemeterError):
    """The meter was used out of order, e.g. `count()` before the run started."""


class ReplayTraceError(JoulemeterError):
    """A recorded power trace cannot be replayed (bad columns, time going back, NaN…)."""


class LedgerError(JoulemeterError):
    """The ledger cannot be opened, read or written; `path` is its path or URL when known."""

    def __init__(
        self, *args: object, path: Path | str | None = None, parameter: str | None = None
    ) -> None:
        super().__init__(*args, parameter=parameter)
        self.path = None if path is None else str(path)


class _UnusableLedgerFile(LedgerError):
    """A ledger at `path` that is left untouched; `advice` says how to go on."""

    advice = ""

    def __init__(self, path: Path | str, detail: str) -> None:
        super().__init__(self.advice.format(path=path, detail=detail), path=path, parameter="ledger")


class LedgerCorruptError(_UnusableLedgerFile):
    """The ledger file exists but is not a readable database; it is left untouched."""

    advice = (
        "{path} is not a readable joulemeter ledger ({detail}). It was left untouched: "
        "`joulemeter salvage {path} NEW.sqlite` copies every run that can still be read into a new "
        "ledger; or move it aside, or point JOULEMETER_LEDGER at another file."
    )


class ForeignLedgerError(_UnusableLedgerFile):
    """The database exists but belongs to something else, or to a newer joulemeter."""

    advice = (
        "{path} is not a joulemeter ledger this version can use ({detail}). It was left "
        "untouched; choose another path with JOULEMETER_LEDGER."
    )


class PeriodError(JoulemeterError, ValueError):
    """A --since/--until bound that is not a date or time, or a period that ends before it starts."""


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
        message += (
            " Run `joulemeter factors --list` to see every known code, "
            "or give the grid intensity yourself."
        )
        super().__init__(message, parameter="intensity_g_per_kwh")


class UnknownHardwareError(JoulemeterError):
    """A hardware name that the hardware table does not list."""

    def __init__(self, name: str, suggestions: list[str] | None = None) -> None:
        self.name = name
        self.suggestions = list(suggestions or [])
        message = f"unknown hardware {name!r}"
        if self.suggestions:
            message += f"; did you mean {', '.join(self.suggestions)}?"
        message += " Pick a known name (the CLI's estimate command lists them) or give the board power in watts yourself."
        super().__init__(message, parameter="power_w")


class ImportFormatError(JoulemeterError):
    """A foreign file could not be imported; nothing from it was written.

    `path`, `line` and `column` locate the fault where the importer knows them."""

    def __init__(
        self,
        *args: object,
        path: Path | str | None = None,
        line: int | None = None,
        column: str | None = None,
    ) -> None:
        super().__init__(*args)
        self.path = None if path is None else str(path)
        self.line = line
        self.column = column


class ExporterError(JoulemeterError):
    """A live exporter (Prometheus endpoint) cannot start, e.g. its port is taken."""


class ReportError(JoulemeterError):
    """A report, export, comparison or prediction cannot be built from the runs and options given."""


class UnknownFormatError(ReportError, ValueError):
    """An output format that cannot write `product` ("export" or "report"); `choices` can."""

    def __init__(self, name: str, product: str, choices: Sequence[str]) -> None:
        self.name = name
        self.product = product
        self.choices = tuple(choices)
        super().__init__(
            f"unknown {product} format {name!r}; choose one of {', '.join(self.choices)}",
            parameter="fmt",
        )

    def __reduce__(self) -> tuple[type, tuple[str, str, tuple[str, ...]]]:
        """Rebuilt from its fields, so it crosses process boundaries (DDP, multiprocessing)."""
        return type(self), (self.name, self.product, self.choices)


# -- durability (issue 18): kept together, at the end ------------------------------------
class LedgerBusyError(LedgerError):
    """The ledger stayed locked by another writer past the deadline; trying again later may work."""


class LedgerWriteWarning(RuntimeWarning):
    """A run could not be written to its ledger; what was measured is kept in the local spool."""


class InputLimitError(JoulemeterError, ValueError):
    """A name, tag or metadata past its size bound (joulemeter.meter.limits); `parameter` names it."""
