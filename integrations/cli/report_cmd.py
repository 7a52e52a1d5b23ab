"""`joulemeter report | compare`: reports of runs from the ledger, and runs side by side."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.markup import escape

from joulemeter.integrations.cli._common import (
    CountryOption,
    CurrencyOption,
    echo_document,
    IntensityOption,
    LedgerOption,
    PriceOption,
    PueOption,
    handle_errors,
    print_json,
    resolve_factor_options,
    stderr,
    stdout,
)
from joulemeter.meter.export import write_text
from joulemeter.meter.formats import REPORT, format_names, output_format
from joulemeter.meter.limits import NAME_MAX_CHARS

if TYPE_CHECKING:
    from joulemeter.meter.run import Run
    from joulemeter.reports.compare import Comparison

#: Names and metadata values in `compare`'s tables are cut to this many characters ("…")
_CELL_CHARS = 40
#: Report formats that are data (full values kept), not documents for people
_DATA_FORMATS = ("json", "csv")

RunsArgument = typer.Argument(..., metavar="RUN…", help="Run ids, id prefixes, or `last`.")
PerOption = typer.Option(
    None, "--per",
    help="Compare energy per unit of work: sample, token, inference, 1000 (J per 1,000 inferences or samples), "
         "or run (whole runs). Default: per 1,000 (or per token) when every run counted that unit, else whole runs.",
)
BaselineOption = typer.Option(None, "--baseline", help="Run to compare against (default: the first RUN).")


def register(app: typer.Typer) -> None:
    app.command("report")(report)
    app.command("compare")(compare)


@handle_errors
def report(
    run_refs: list[str] = RunsArgument,
    fmt: str = typer.Option("html", "--format", "-f", help=", ".join(format_names(REPORT)) + "."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="File to write (default: html to ./joulemeter-report-<id>.html, the rest to stdout)."),
    baseline: Optional[str] = BaselineOption,
    per: Optional[str] = PerOption,
    title: Optional[str] = typer.Option(None, "--title", help="Title of the report."),
    country: Optional[str] = CountryOption,
    pue: Optional[str] = PueOption,
    price: Optional[float] = PriceOption,
    currency: Optional[str] = CurrencyOption,
    intensity: Optional[float] = IntensityOption,
    ledger: Optional[str] = LedgerOption,
) -> None:
    """A report of one run (figures, plots, windows) or several (comparison, ratios, Pareto)."""
    from joulemeter.reports.render import render

    suffix = output_format(fmt, REPORT).suffix
    factors = resolve_factor_options(country, pue, price, currency, intensity)
    runs, base = _load(run_refs, baseline, ledger)
    if fmt not in _DATA_FORMATS:  # a document for people: names past the API's bound are cut
        runs, base = _for_display(runs, base, NAME_MAX_CHARS)
    per = _chosen_per(per, runs, base)
    text = render(runs, fmt, factors=factors, baseline=base, per=per, title=title)
    if output is None and fmt != "html":
        echo_document(text)
        return
    path = output or Path(f"joulemeter-report-{_file_stem(runs)}{suffix}")
    write_text(path, text)
    stdout.print(f"report written to [bold]{escape(str(path))}[/]", highlight=False)


@handle_errors
def compare(
    run_refs: list[str] = RunsArgument,
    baseline: Optional[str] = BaselineOption,
    per: Optional[str] = PerOption,
    country: Optional[str] = CountryOption,
    pue: Optional[str] = PueOption,
    price: Optional[float] = PriceOption,
    currency: Optional[str] = CurrencyOption,
    intensity: Optional[float] = IntensityOption,
    json_output: bool = typer.Option(False, "--json", help="Machine-readable output: SI units, each figure's provenance, factors with sources."),
    ledger: Optional[str] = LedgerOption,
) -> None:
    """Runs side by side: energy (per unit), CO2e, cost, metadata, and ratios to a baseline."""
    from joulemeter.reports.compare import compare as compare_runs

    factors = resolve_factor_options(country, pue, price, currency, intensity)
    runs, base = _load(run_refs, baseline, ledger, samples=False)
    if not json_output:
        runs, base = _for_display(runs, base, _CELL_CHARS)
    result = compare_runs(runs, base, per=_chosen_per(per, runs, base), factors=factors)
    if json_output:
        print_json(result.to_dict())
        return
    for table in _comparison_tables(result):
        stdout.print(table)
    for phrase in result.phrases:
        stdout.print(f"• {phrase}", highlight=False, markup=False)
    stdout.print(
        f"[dim]factors: {factors.intensity_g_per_kwh:g} g CO2e/kWh ({escape(str(factors.intensity_citation))}), "
        f"PUE {factors.pue:g}[/]",
        highlight=False,
    )


def _chosen_per(per: str | None, runs: list[Run], base: Run | None) -> str | None:
    """--per as given ('run' meaning whole runs), or for several runs the unit every run counted."""
    from joulemeter.reports.compare import default_per

    if per == "run":
        return None
    every = runs + ([base] if base is not None and base not in runs else [])
    if per is None and len(every) > 1:
        per = default_per(every)
        if per is not None:
            unit = "1,000 inferences or samples" if per == "1000" else "token"
            stderr.print(f"comparing energy per {unit}, which every run counted (--per run compares whole runs)",
                         highlight=False, markup=False, soft_wrap=True)
    return per


def _load(
    refs: list[str], baseline: str | None, ledger: str | None, samples: bool = True
) -> tuple[list[Run], Run | None]:
    """The runs named on the command line, and the baseline run if one was named."""
    from joulemeter.meter.store import open_ledger

    with open_ledger(ledger, for_reading=True) as book:
        runs = [book.get_run(ref, samples=samples) for ref in refs]
        base = None if baseline is None else book.get_run(baseline, samples=samples)
    return runs, base


def _for_display(runs: list[Run], base: Run | None, max_chars: int) -> tuple[list[Run], Run | None]:
    """The runs and baseline with their user text cut to `max_chars` (formatting.for_display)."""
    from joulemeter.reports.render.formatting import for_display

    return [for_display(r, max_chars) for r in runs], None if base is None else for_display(base, max_chars)


def _comparison_tables(result: Comparison) -> list[object]:
    """Energy and ratios in one table, cost and duration in a second, and the runs' metadata
    in a third with a row per key, so that many keys stay readable in a terminal."""
    from rich.table import Table

    from joulemeter.reports.render import formatting, frame_records
    from joulemeter.reports.render.wording import ratio_words

    per = result.per_column
    energy = Table(title=f"Energy {result.per_label}".strip())
    details = Table(title="Cost and duration")
    for table, columns in (
        (energy, ["provenance", "energy", *([result.per_label] if per else []), "vs baseline",
                  "CO2e"]),
        (details, ["cost", "duration", "avg power"]),
    ):
        table.add_column("run", overflow="fold", min_width=10)
        for column in columns:
            table.add_column(column, overflow="fold")
    records = frame_records(result.frame)
    for row in records:
        name = _run_label(row)
        energy.add_row(
            name,
            row["provenance"],
            formatting.energy(row["energy_j"]),
            *([formatting.energy(row[per])] if per else []),
            "[bold]baseline[/]" if row["id"] == result.baseline_id else ratio_words(row["ratio"]),
            formatting.co2e(row["kg_co2e"]),
        )
        details.add_row(
            name,
            formatting.money(row["cost"], row["currency"]),
            formatting.duration(row["duration_s"]),
            formatting.power(row["avg_power_w"]),
        )
    tables: list[object] = [energy, details]
    if result.metadata_columns:
        metadata = Table(title="Metadata")
        metadata.add_column("", overflow="fold")
        for row in records:
            metadata.add_column(_run_label(row), overflow="fold")
        for key in result.metadata_columns:
            metadata.add_row(
                escape(formatting.shorten(key.replace("_", " "), _CELL_CHARS)),
                *(escape(formatting.shorten(formatting.metadata_value(key, row[key]), _CELL_CHARS)) for row in records),
            )
        tables.append(metadata)
    return tables


def _run_label(row: dict) -> str:
    """A run's name, cut to fit a column, and its short id."""
    from joulemeter.reports.render import formatting

    return f"{escape(formatting.shorten(row['name'], _CELL_CHARS))} [dim]{row['id'][:8]}[/]"


def _file_stem(runs: list[Run]) -> str:
    stem = runs[0].id[:8]
    return stem if len(runs) == 1 else f"{stem}-and-{len(runs) - 1}-more"
