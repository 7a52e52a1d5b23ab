"""`joulemeter factors | estimate | published`: cited factors, hardware × time estimates, published runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import typer
from rich.markup import escape

from joulemeter.integrations.cli._common import (
    CountryOption,
    CurrencyOption,
    IntensityOption,
    PriceOption,
    PueOption,
    fail,
    handle_errors,
    print_json,
    resolve_factor_options,
    stdout,
)
from joulemeter.meter.run import Provenance
from joulemeter.meter.units import J_PER_KWH, KWH_PER_MWH

if TYPE_CHECKING:
    from joulemeter.reports import Citation, Factors, Footprint

JsonOption = typer.Option(False, "--json", help="Machine-readable output: J and kWh, kg CO2e, cost, each factor with its source.")


def register(app: typer.Typer) -> None:
    app.command("factors")(factors)
    app.command("estimate")(estimate)
    app.command("published")(published)


def _configured(
    country: str | None, pue: str | None, price: float | None, currency: str | None
) -> tuple[str | None, str | None, float | None, str | None]:
    """The flags, with joulemeter.toml's country (or region), PUE and price where a flag is absent."""
    from joulemeter.meter.config import load_config

    config = load_config()
    if price is None and config.price is not None:
        price, currency = config.price, currency or config.currency
    return (country or config.region or config.country,
            pue if pue is not None else (None if config.pue is None else str(config.pue)), price, currency)


def _cite(citation: Citation | None) -> str:
    return "—" if citation is None else str(citation)


def _factor_rows(f: Factors) -> list[tuple[str, str, str]]:
    price = "—" if f.price_per_kwh is None else f"{f.price_per_kwh:g} {f.currency or ''}/kWh".strip()
    return [
        ("region", f"{f.region} ({f.region_name})", ""),
        ("grid intensity", f"{f.intensity_g_per_kwh:.1f} g CO2e/kWh", _cite(f.intensity_citation)),
        ("PUE", f"{f.pue:g}", _cite(f.pue_citation) if f.pue_citation else "measured at the device / given"),
        ("price", price, _cite(f.price_citation) if f.price_citation else "given"),
        ("household comparisons", f.household_country, "equivalences.csv"),
    ]


@handle_errors
def factors(
    country: Optional[str] = CountryOption,
    pue: Optional[str] = PueOption,
    price: Optional[float] = PriceOption,
    currency: Optional[str] = CurrencyOption,
    intensity: Optional[float] = IntensityOption,
    list_regions: bool = typer.Option(False, "--list", help="List every known region code instead."),
    json_output: bool = JsonOption,
) -> None:
    """The grid intensity, PUE and price that reports will use, each with its source."""
    from rich.table import Table

    from joulemeter.reports import known_regions, pue_presets

    if list_regions:
        regions = known_regions()
        if json_output:
            print_json({"regions": [{"code": c, "name": n} for c, n in regions],
                        "pue_presets": {k: v[0] for k, v in pue_presets().items()}})
            return
        table = Table("code", "name", title=f"{len(regions)} known regions")
        for code, name in regions:
            table.add_row(escape(code), escape(name))
        stdout.print(table)
        return
    f = resolve_factor_options(*_configured(country, pue, price, currency), intensity)
    if json_output:
        print_json(f.to_dict())
        return
    table = Table("factor", "value", "source", title="Factors")
    for row in _factor_rows(f):
        table.add_row(*(escape(cell) for cell in row))
    stdout.print(table)


def _footprint_table(fp: Footprint, title: str) -> object:
    from rich.table import Table

    from joulemeter.reports.render import formatting as fmt

    table = Table("figure", "value", title=title)  # each figure in one scaled unit, its range in that unit
    table.add_row("energy at the device", fmt.kwh(fp.energy_j / J_PER_KWH))
    table.add_row("facility energy (× PUE)", fmt.kwh(fp.energy_kwh, fp.energy_kwh_range))
    table.add_row("emissions", fmt.co2e(fp.kg_co2e, fp.kg_co2e_range))
    table.add_row("cost", fmt.money(fp.cost, fp.currency))
    table.add_row("provenance", fp.provenance)
    return table


def _print_equivalences(fp: Footprint, n: int = 3) -> None:
    from rich.table import Table

    table = Table("that is about", "source", title="In everyday terms")
    for eq in fp.ranked_equivalences()[:n]:
        table.add_row(escape(eq.text), escape(str(eq.citation)))
    stdout.print(table)


@handle_errors
def estimate(
    hardware: Optional[str] = typer.Option(None, "--hardware", help="Accelerator name, e.g. V100, A100, H100-PCIe, TPU v3 (case, spaces and hyphens do not matter; --list-hardware lists them)."),
    count: int = typer.Option(1, "--count", help="How many devices."),
    hours: Optional[float] = typer.Option(None, "--hours", help="Wall-clock hours."),
    days: Optional[float] = typer.Option(None, "--days", help="Wall-clock days (instead of --hours)."),
    utilization: float = typer.Option(1.0, "--utilization", help="Average fraction of board power drawn, 0–1."),
    power_w: Optional[float] = typer.Option(None, "--power-w", help="Board power per device in W (instead of the table's)."),
    pue: Optional[str] = PueOption,
    country: Optional[str] = CountryOption,
    price: Optional[float] = PriceOption,
    currency: Optional[str] = CurrencyOption,
    intensity: Optional[float] = IntensityOption,
    list_hardware: bool = typer.Option(False, "--list-hardware", help="List the known hardware, its board power and source, instead."),
    json_output: bool = JsonOption,
) -> None:
    """Estimate energy, CO2e and cost from hardware × count × time (provenance: estimated)."""
    from joulemeter.reports import estimate as estimate_energy
    from joulemeter.reports import footprint
    from joulemeter.reports.accounting import uncertainty_bands

    if list_hardware:
        _print_hardware(json_output)
        return
    if (hours is None) == (days is None):
        raise fail("give exactly one of --hours or --days")
    total_hours = hours if hours is not None else days * 24  # type: ignore[operator]
    est = estimate_energy(hardware, count=count, hours=total_hours, utilization=utilization, power_w=power_w)
    f = resolve_factor_options(*_configured(country, pue, price, currency), intensity)
    fp = footprint(est, f)
    if json_output:
        print_json({
            "estimate": {
                "hardware": est.hardware, "count": est.count, "hours": est.hours, "power_w": est.power_w,
                "utilization": est.utilization, "energy_j": est.energy_j, "method": est.method,
                "power_citation": est.power_citation.to_dict() if est.power_citation else None,
            },
            "footprint": fp.to_dict(),
        })
        return
    power_source = _cite(est.power_citation) if est.power_citation else "given with --power-w"
    stdout.print(f"{est.count:,} × {escape(est.hardware)} at {est.power_w:g} W × {est.hours:,g} h at "
                 f"{est.utilization:.0%} utilization [dim]({escape(power_source)})[/]")
    stdout.print(_footprint_table(fp, "Estimate"))
    _print_equivalences(fp)
    low, high, citation = uncertainty_bands()["estimated"]
    stdout.print(f"[dim]Range × {low:g}–{high:g}: measured over board power in published runs ({escape(str(citation))}).[/]")


def _print_hardware(json_output: bool) -> None:
    """The hardware table (reports/data/hardware.csv): names, aliases, board power, source."""
    from rich.table import Table

    from joulemeter.reports.estimates import hardware_table

    rows = list(hardware_table().values())
    if json_output:
        print_json({"hardware": [{"name": hw.name, "aliases": list(hw.aliases), "power_w": hw.power_w,
                                  "vendor": hw.vendor, "citation": hw.citation.to_dict(), "note": hw.note}
                                 for hw in rows]})
        return
    table = Table("name", "also called", "board power", "source", title=f"{len(rows)} known accelerators")
    for hw in rows:
        table.add_row(escape(hw.name), escape(", ".join(hw.aliases)), f"{hw.power_w:g} W", escape(str(hw.citation)))
    stdout.print(table)
    stdout.print("[dim]--hardware takes a name or any alias; case, spaces and hyphens do not matter. "
                 "--power-w gives another board's power.[/]")


@handle_errors
def published(json_output: bool = JsonOption) -> None:
    """Published training runs with what their papers or model cards reported, each with its source."""
    from rich.table import Table

    from joulemeter.reports import footprint, published_runs
    from joulemeter.reports.render import formatting as fmt

    runs = published_runs()
    if json_output:
        rows = []
        for r in runs:
            fp = footprint(r)
            rows.append({
                "name": r.name, "model": r.model, "hardware": r.hardware, "count": r.count, "hours": r.hours,
                "device_hours": r.device_hours, "power_w": r.power_w,
                "reported_energy_mwh": r.reported_energy_mwh, "energy_includes_pue": r.energy_includes_pue,
                "reported_co2e_t": r.reported_co2e_t, "pue": r.pue, "intensity_g_per_kwh": r.intensity_g_per_kwh,
                "energy_j": r.energy_j, "provenance": r.provenance, "notes": r.notes,
                "citation": r.citation.to_dict(), "footprint": fp.to_dict(),
            })
        print_json({"published_runs": rows})
        return
    table = Table("run", "hardware", "device-hours", "energy (MWh)", "CO2e (t)", "source", title="Published training runs")
    for r in runs:
        fp = footprint(r)
        energy = f"{fmt.number(fp.energy_kwh / KWH_PER_MWH)}" + ("" if r.provenance is Provenance.PUBLISHED else " (est.)")
        co2 = fmt.number(r.reported_co2e_t)
        hours = fmt.number(r.device_hours)
        count = f"{r.count:,} × " if r.count else ""
        short_source = f"{r.citation.source.split(',')[0]} ({r.citation.year})"
        table.add_row(escape(r.model), escape(f"{count}{r.hardware}"), hours, energy, co2, escape(short_source))
    stdout.print(table)
    stdout.print("[dim]Energy is facility energy (with the source's PUE where it gave one); (est.) = "
                 "device-hours × board power, where the source reported no energy.[/]")
