"""Helpers shared by the CLI commands: consoles, error handling, figure formatting."""

from __future__ import annotations

import functools
import math
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.console import Console

from meter.errors import JoulemeterError

if TYPE_CHECKING:
    from reports import Factors

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
    """Print an error in red and return the Exit to raise."""
    stderr.print(f"[bold red]error:[/] {message}", highlight=False)
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
    from reports import resolve_factors

    return resolve_factors(country, intensity_g_per_kwh=intensity, pue=pue, price_per_kwh=price, currency=currency)


def print_json(data: Any) -> None:
    """Machine-readable output on stdout (plain, no colour)."""
    typer.echo(json.dumps(data, indent=2, default=str))


_PREFIXES = ("k", "M", "G", "T")


def format_energy(energy_j: float | None) -> str:
    """Joules in the unit that reads best (µJ to TJ), with kWh beside large values."""
    if energy_j is None:
        return "—"
    if energy_j == 0:
        text = "0 J"
    elif energy_j < 1e-3:
        text = f"{energy_j * 1e6:.3g} µJ"
    elif energy_j < 1:
        text = f"{energy_j * 1e3:.3g} mJ"
    elif energy_j < 1e3:
        text = f"{energy_j:.2f} J"
    else:
        exponent = min(int(math.log10(energy_j)) // 3, len(_PREFIXES))
        text = f"{energy_j / 10 ** (3 * exponent):.2f} {_PREFIXES[exponent - 1]}J"
    if energy_j >= 3.6e3:
        kwh = energy_j / 3.6e6
        text += f" ({kwh:,.0f} kWh)" if kwh >= 100 else f" ({kwh:.3g} kWh)"
    return text


def format_power(power_w: float | None) -> str:
    return "—" if power_w is None else f"{power_w:.1f} W"


def format_duration(duration_s: float | None) -> str:
    if duration_s is None:
        return "—"
    if duration_s < 60:
        return f"{duration_s:.1f} s"
    minutes, seconds = divmod(duration_s, 60)
    if minutes < 60:
        return f"{int(minutes)} min {seconds:.0f} s"
    hours, minutes = divmod(minutes, 60)
    return f"{int(hours)} h {int(minutes)} min"
