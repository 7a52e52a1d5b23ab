"""Helpers shared by the CLI commands: consoles, options, error handling, JSON output.

Figures are written with joulemeter.reports.render.formatting, the same as in reports."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from joulemeter.meter.errors import JoulemeterError, UnknownFormatError
from joulemeter.meter.export import json_text
from joulemeter.reports.render.terminal import visible, visible_lines

if TYPE_CHECKING:
    from joulemeter.reports import Factors

F = TypeVar("F", bound=Callable[..., Any])


class SafeConsole(Console):
    """A rich Console that shows every control character in the text it prints as an escape
    (reports.render.terminal.visible), so user text (a run name holding `\x1b]0;…`) never acts
    on the terminal. Line breaks and tabs are kept; the escapes are made before layout, so
    tables keep their widths."""

    def render_str(self, text: str, **options: Any) -> Text:
        return super().render_str(visible(text, keep="\n\t"), **options)


class SafeFormatter(logging.Formatter):
    """Log lines with their control characters visible, as SafeConsole prints."""

    def format(self, record: logging.LogRecord) -> str:
        return visible(super().format(record), keep="\n\t")


#: Human output goes to stderr when stdout carries --json, so pipes stay clean. No automatic
#: highlighting: its patterns colour user text as if it were numbers or URLs, and take
#: quadratic time on long names (14 s for a 50 kB one).
stdout = SafeConsole(highlight=False)
stderr = SafeConsole(stderr=True, highlight=False)

LedgerOption = typer.Option(
    None, "--ledger", metavar="PATH|URL", help="Ledger path or database URL (default: $JOULEMETER_LEDGER or the user data dir)."
)
JsonOption = typer.Option(False, "--json", help="Machine-readable output: SI units, with each figure's provenance.")
CountryOption = typer.Option(None, "--country", help="ISO code (US, USA), name, or region (US-CA, CA-QC, quebec). Overrides where the run ran (its recorded location, JOULEMETER_COUNTRY or joulemeter.toml); default: that, else the world average.")
PueOption = typer.Option(None, "--pue", help="A number ≥ 1.0 or a preset: device (default), industry, hyperscale.")
PriceOption = typer.Option(None, "--price", help="Electricity price per kWh (overrides the country's).")
CurrencyOption = typer.Option(None, "--currency", help="Currency of --price, e.g. EUR.")
IntensityOption = typer.Option(None, "--intensity", help="Grid intensity in g CO2e/kWh (overrides the country's).")


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print an error in red, on one line and with its text taken literally, and return the Exit to raise."""
    stderr.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


#: the library argument an error's advice is about (JoulemeterError.parameter) -> its flag here
FLAG_HINTS = {
    "intensity_g_per_kwh": "--intensity",
    "power_w": "--power-w",
    "per": "--per run",
    "ledger": "or --ledger",
    "port": "--prometheus-port",
    "output": "--output",
    "since": "--since",
    "until": "--until",
}


def error_message(exc: JoulemeterError) -> str:
    """The library's message with the flag that does what it advises, before its final full stop."""
    if isinstance(exc, UnknownFormatError):
        return f"unknown format {exc.name!r}: --format takes {', '.join(exc.choices)}"
    message = str(exc)
    flag = FLAG_HINTS.get(exc.parameter or "")
    if flag is None:
        return message
    body, stop = (message[:-1], ".") if message.endswith(".") else (message, "")
    return f"{body} ({flag}){stop}"


def handle_errors(fn: F) -> F:
    """Turn joulemeter's own errors into a red message with its flag hint and exit code 2, no traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except JoulemeterError as exc:
            raise fail(error_message(exc)) from None

    return wrapper  # type: ignore[return-value]


def resolve_factor_options(
    country: str | None, pue: str | None, price: float | None, currency: str | None, intensity: float | None,
    *, warn_if_default: bool = True,
) -> Factors:
    """The factors that --country, --pue, --price, --currency and --intensity ask for."""
    from joulemeter.reports import resolve_factors

    return resolve_factors(country, intensity_g_per_kwh=intensity, pue=pue, price_per_kwh=price, currency=currency,
                           warn_if_default=warn_if_default)


def print_json(data: Any) -> None:
    """Machine-readable output on stdout (plain, no colour): always valid JSON, an unknown
    (NaN, infinite) figure as null, control characters escaped."""
    typer.echo(json_text(data))


def echo_document(text: str) -> None:
    """A whole report or export (Markdown, LaTeX, CSV, JSON) on stdout, its control characters
    other than line breaks and tabs shown as escapes."""
    typer.echo(visible_lines(text), nl=False)
