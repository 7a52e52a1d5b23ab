"""`joulemeter inventory`: a period and scope of the ledger added up, for a sustainability report.

Each run takes the grid of where it ran (`--country` or `--intensity` overrides it for every run,
and the inventory says so); market-based Scope 2 from --supplier-factor / --certificates-mwh or
the [market] table of joulemeter.toml, as `joulemeter compare` takes them."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from joulemeter.integrations.cli import report_cmd
from joulemeter.integrations.cli._common import (
    CountryOption,
    CurrencyOption,
    IntensityOption,
    LedgerOption,
    PriceOption,
    PueOption,
    echo_document,
    fail,
    handle_errors,
    resolve_factor_options,
    stdout,
)
from joulemeter.meter.export import write_text
from joulemeter.meter.formats import REPORT, format_names, output_format


def register(app: typer.Typer) -> None:
    app.command("inventory")(inventory)


@handle_errors
def inventory(
    since: Optional[str] = typer.Option(None, "--since", help="First day (ISO 8601, e.g. 2025-01-01); runs that started then or later."),
    until: Optional[str] = typer.Option(None, "--until", help="Last day, included (ISO 8601, e.g. 2025-12-31), or a time, excluded."),
    project: Optional[str] = typer.Option(None, "--project", help="Only runs of this project."),
    tag: Optional[str] = typer.Option(None, "--tag", help="Only runs with this tag."),
    group_by: str = typer.Option("month", "--group-by", "-g", help="month, project, hardware, host or user."),
    fmt: str = typer.Option("md", "--format", "-f", help=", ".join(format_names(REPORT)) + "."),
    output: Optional[Path] = typer.Option(None, "--output", "--out", "-o", help="File to write (default: stdout; html to ./joulemeter-inventory.html)."),
    json_output: bool = typer.Option(False, "--json", help="The same as --format json: SI units, every figure with its range and source."),
    largest: int = typer.Option(10, "--largest", help="How many of the largest runs to list."),
    life_years: Optional[float] = typer.Option(None, "--life-years", help="Service life of the hardware for embodied CO2e (default: each footprint's own)."),
    utilization: Optional[float] = typer.Option(None, "--utilization", help="Average utilization 0–1 over that life (default: each footprint's own)."),
    embodied_kg: Optional[list[str]] = typer.Option(None, "--embodied-kg", metavar="HARDWARE=KG", help="Manufacturing footprint per device, e.g. H100-SXM=1500 (repeatable; needs --life-years and --utilization for hardware without a cited footprint)."),
    wue: Optional[str] = typer.Option(None, "--wue", help="On-site water: L per kWh of IT energy, or a preset: aws-2021, industry. Default: not estimated."),
    title: Optional[str] = typer.Option(None, "--title", help="Title of the inventory."),
    country: Optional[str] = CountryOption,
    pue: Optional[str] = PueOption,
    price: Optional[float] = PriceOption,
    currency: Optional[str] = CurrencyOption,
    intensity: Optional[float] = IntensityOption,
    supplier_factor: Optional[float] = report_cmd.SupplierFactorOption,
    certificates_mwh: Optional[float] = report_cmd.CertificatesOption,
    ledger: Optional[str] = LedgerOption,
) -> None:
    """Totals of energy, CO2e (location- and market-based, side by side), embodied CO2e, water and
    cost, each with its range; groups; the largest runs; the measured share; and every factor's source."""
    from joulemeter.meter.store import open_ledger
    from joulemeter.reports.embodied import Assumptions
    from joulemeter.reports.inventory import inventory as build
    from joulemeter.reports.render.inventory import render_inventory

    if json_output:
        fmt = "json"
    suffix = output_format(fmt, REPORT).suffix
    # runs that recorded no place take where this inventory is made (JOULEMETER_COUNTRY,
    # joulemeter.toml, cloud variables), as `report` does, else the world average: the notes say which
    factors = resolve_factor_options(country or _here(), pue, price, currency, intensity, warn_if_default=False)
    market = report_cmd._market(supplier_factor, certificates_mwh)
    assumptions = Assumptions(life_years=life_years, utilization=utilization,
                              kg_co2e_per_device=_footprints(embodied_kg or []))
    with open_ledger(ledger, for_reading=True) as book:
        inv = build(book, since=since, until=until, project=project, tag=tag, group_by=group_by,
                    factors=factors, override_location=country is not None or intensity is not None,
                    market=market, assumptions=assumptions, wue=wue, largest=largest, title=title)
    text = render_inventory(inv, fmt)
    if output is None and fmt != "html":
        echo_document(text)
        return
    path = output or Path(f"joulemeter-inventory{suffix}")
    write_text(path, text)
    stdout.print(f"inventory written to [bold]{escape(str(path))}[/]", highlight=False)


def _here() -> str | None:
    """The grid of where this command runs, if the environment or joulemeter.toml says."""
    from joulemeter.meter.place import resolve_location
    from joulemeter.reports.factors import location_grid

    return location_grid(resolve_location())[0]


def _footprints(pairs: list[str]) -> dict[str, float]:
    """--embodied-kg H100-SXM=1500 … as {hardware.csv name: kg}."""
    from joulemeter.reports.estimates import find_hardware

    out = {}
    for pair in pairs:
        name, sep, kg = pair.partition("=")
        try:
            value = float(kg)
        except ValueError:
            value = None
        if not sep or value is None:
            raise fail(f"--embodied-kg {pair!r}: write HARDWARE=KG, e.g. H100-SXM=1500")
        out[find_hardware(name.strip()).name] = value
    return out
