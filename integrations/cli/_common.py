"""Helpers shared by the CLI commands: consoles, options, error handling, JSON output.

Figures are written with joulemeter.reports.render.formatting, the same as in reports."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from joulemeter.meter.errors import JoulemeterError

if TYPE_CHECKING:
    from joulemeter.reports import Factors

F = TypeVar("F", bound=Callable[..., Any])

#: Human output goes to stderr when stdout carries --json, so pipes stay clean.
stdout = Console()
stderr = Console(stderr=True)

LedgerOption = typer.Option(
    None, "--ledger", help="Ledger path or database URL (default: $JOULEMETER_LEDGER or the user data dir)."
)
JsonOption = typer.Option(False, "--json", help="Machine-readable output: SI units, with each figure's provenance.")
CountryOption = typer.Option(None, "--country", help="ISO code (US, USA), name, or region (US-CA, CA-QC, quebec). Default: world average.")
PueOption = typer.Option(None, "--pue", help="A number ≥ 1.0 or a preset: device (default), industry, hyperscale.")
PriceOption = typer.Option(None, "--price", help="Electricity price per kWh (overrides the country's).")
CurrencyOption = typer.Option(None, "--currency", help="Currency of --price, e.g. EUR.")
IntensityOption = typer.Option(None, "--intensity", help="Grid intensity in g CO2e/kWh (overrides the country's).")


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print an error in red, on one line and with its text taken literally, and return the Exit to raise."""
    stderr.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def handle_errors(fn: F) -> F:
    """Turn joulemeter's own errors into a red message and exit code 2, no traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except JoulemeterError as exc:
            raise fail(str(exc)) from None

    return wrapper  # type: ignore[return-value]


def resolve_factor_options(
    country: str | None, pue: str | None, price: float | None, currency: str | None, intensity: float | None
) -> Factors:
    """The factors that --country, --pue, --price, --currency and --intensity ask for."""
    from joulemeter.reports import resolve_factors

    return resolve_factors(country, intensity_g_per_kwh=intensity, pue=pue, price_per_kwh=price, currency=currency)


def print_json(data: Any) -> None:
    """Machine-readable output on stdout (plain, no colour)."""
    typer.echo(json.dumps(data, indent=2, default=str))
