"""`joulemeter report | compare`: reports of runs from the ledger, and runs side by side.

Each run is accounted with the factors of where it ran (its recorded location; `--country`
overrides it and says so), defaults from joulemeter.toml where no flag is given, an hourly
intensity where one is asked for (a CSV, or a provider with --intensity-provider, cached
in the ledger), and market-based Scope 2 from --supplier-factor / [market] instruments."""

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
    fail,
    stderr,
    stdout,
)
from joulemeter.integrations.cli.selection import (
    NameOption,
    ProjectOption,
    RunFilters,
    SinceOption,
    StatusOption,
    TagOption,
    UntilOption,
    chosen_runs,
)
from joulemeter.meter.export import write_text
from joulemeter.meter.formats import REPORT, format_names, output_format
from joulemeter.meter.limits import NAME_MAX_CHARS

if TYPE_CHECKING:
    from rich.table import Table

    from joulemeter.meter.run import Run
    from joulemeter.reports.compare import Comparison
    from joulemeter.reports.factors import Factors
    from joulemeter.reports.scope2 import MarketInstruments

#: Names and metadata values in `compare`'s tables are cut to this many characters ("…")
_CELL_CHARS = 40
#: compare's tables keep run names up to this long whole; longer ones fold
_WHOLE_NAME_CHARS = 24
#: compare's verdicts ("no measurable difference (0.95–1.0×)") wrap at this width
_VERDICT_CHARS = 18
#: Report formats that are data (full values kept), not documents for people
_DATA_FORMATS = ("json", "csv")

RunsArgument = typer.Argument(None, metavar="RUN", help="Run ids, id prefixes, unique names, or `last`; or choose runs with --since, --until, --project, --tag, --name, --status.")
PerOption = typer.Option(
    None, "--per",
    help="Compare energy per unit of work: sample, token, inference, 1000 (J per 1,000 inferences or samples), "
         "or run (whole runs). Default: per 1,000 (or per token) when every run counted that unit, else whole runs.",
)
BaselineOption = typer.Option(None, "--baseline", help="Run to compare against (default: the first RUN).")
IntensityCsvOption = typer.Option(None, "--intensity-csv", help="Hourly grid intensity of the runs' time (CSV, docs/intensity.md) instead of the yearly figure.")
ZoneOption = typer.Option(None, "--zone", help="Zone of --intensity-csv or --intensity-provider (e.g. DE, CAISO_NORTH, CISO; Electricity Maps and the Carbon Intensity API default to the run's country).")
SignalOption = typer.Option("average", "--signal", help="average (inventories, Scope 2) or marginal, from --intensity-csv.")
ProviderOption = typer.Option(None, "--intensity-provider", help="Fetch hourly intensity (network!) from electricitymaps, watttime, carbonintensity or eia; cached in the ledger for offline use.")
ApiKeyOption = typer.Option(None, "--api-key", help="Key for --intensity-provider (default: its environment variable, e.g. $ELECTRICITYMAPS_API_KEY).")
SupplierFactorOption = typer.Option(None, "--supplier-factor", help="Market-based Scope 2: the supplier's emission factor, g CO2e/kWh (default: [market] in joulemeter.toml).")
CertificatesOption = typer.Option(None, "--certificates-mwh", help="Market-based Scope 2: MWh of zero-emission certificates (GOs, RECs) held for these runs.")


def register(app: typer.Typer) -> None:
    app.command("report")(report)
    app.command("compare")(compare)


@handle_errors
def report(
    run_refs: list[str] = RunsArgument,
    fmt: str = typer.Option("html", "--format", "-f", help=", ".join(format_names(REPORT)) + "."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="File to write (default: html to ./joulemeter-report-<id>.html, or ./joulemeter-report-<id>-and-<n>-more.html for the first of n + 1 runs; the other formats to stdout)."),
    baseline: Optional[str] = BaselineOption,
    per: Optional[str] = PerOption,
    title: Optional[str] = typer.Option(None, "--title", help="Title of the report."),
    country: Optional[str] = CountryOption,
    pue: Optional[str] = PueOption,
    price: Optional[float] = PriceOption,
    currency: Optional[str] = CurrencyOption,
    intensity: Optional[float] = IntensityOption,
    intensity_csv: Optional[Path] = IntensityCsvOption,
    zone: Optional[str] = ZoneOption,
    signal: str = SignalOption,
    provider: Optional[str] = ProviderOption,
    api_key: Optional[str] = ApiKeyOption,
    project: Optional[str] = ProjectOption,
    tag: Optional[str] = TagOption,
    name: Optional[str] = NameOption,
    status: Optional[str] = StatusOption,
    since: Optional[str] = SinceOption,
    until: Optional[str] = UntilOption,
    ledger: Optional[str] = LedgerOption,
) -> None:
    """A report of one run (figures, plots, windows) or several (comparison, ratios, Pareto)."""
    from joulemeter.reports.render import render

    suffix = output_format(fmt, REPORT).suffix
    runs, base = _load(run_refs or [], RunFilters(project, tag, name, status, since, until), baseline, ledger)
    hourly = _Hourly(intensity_csv, zone, signal, provider, api_key, ledger)
    by_run = _run_factors([*runs, *([base] if base else [])], country, pue, price, currency, intensity, hourly)
    factors = _one_set(runs, by_run)
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
    intensity_csv: Optional[Path] = IntensityCsvOption,
    zone: Optional[str] = ZoneOption,
    signal: str = SignalOption,
    provider: Optional[str] = ProviderOption,
    api_key: Optional[str] = ApiKeyOption,
    supplier_factor: Optional[float] = SupplierFactorOption,
    certificates_mwh: Optional[float] = CertificatesOption,
    published: Optional[str] = typer.Option(None, "--published", help="A published run to put beside RUN (see `joulemeter published`), per unit where both counted it."),
    json_output: bool = typer.Option(False, "--json", help="Machine-readable output: SI units, each figure's provenance, factors with sources."),
    project: Optional[str] = ProjectOption,
    tag: Optional[str] = TagOption,
    name: Optional[str] = NameOption,
    status: Optional[str] = StatusOption,
    since: Optional[str] = SinceOption,
    until: Optional[str] = UntilOption,
    ledger: Optional[str] = LedgerOption,
) -> None:
    """Runs side by side: energy (per unit), CO2e (location- and market-based), cost, metadata, and ratios to a baseline."""
    from joulemeter.reports.compare import compare as compare_runs

    hourly = _Hourly(intensity_csv, zone, signal, provider, api_key, ledger)
    runs, base = _load(run_refs or [], RunFilters(project, tag, name, status, since, until), baseline, ledger,
                       samples=hourly.asked)
    by_run = _run_factors([*runs, *([base] if base else [])], country, pue, price, currency, intensity, hourly)
    if published is not None:
        from joulemeter.reports.estimates import published_run

        row = published_run(published)
        runs.append(row.as_run())
        by_run[runs[-1].id] = row.factors()
        stderr.print(f"{row.model} is accounted with its source's own PUE and grid intensity "
                     f"({by_run[runs[-1].id].intensity_g_per_kwh:.4g} g CO2e/kWh, {row.citation})",
                     highlight=False, markup=False, soft_wrap=True)
    market = _market(supplier_factor, certificates_mwh)
    if not json_output:
        runs, base = _for_display(runs, base, _CELL_CHARS)
    result = compare_runs(runs, base, per=_chosen_per(per, runs, base), factors=by_run, market=market)
    if json_output:
        print_json(result.to_dict())
        return
    for table in _comparison_tables(result):
        stdout.print(table)
    for phrase in [*result.phrases, *result.notes]:
        stdout.print(f"• {phrase}", highlight=False, markup=False)
    shown = [result.factors] if result.same_factors and result.factors else list(result.factors_by_run.values())
    for f in dict.fromkeys(shown):
        stdout.print(
            f"[dim]factors{_where(f)}: {f.intensity_g_per_kwh:.4g} g CO2e/kWh {f.intensity_signal} "
            f"({escape(str(f.intensity_citation))}), PUE {f.pue:g}[/]",
            highlight=False,
        )
    stdout.print("[dim]CO2e is location-based Scope 2; market-based beside it, never added "
                 "(GHG Protocol Scope 2 Guidance, 2015)[/]", highlight=False)


def _chosen_per(per: str | None, runs: list[Run], base: Run | None) -> str | None:
    """--per as given ('run' meaning whole runs), or for several runs the unit every run counted."""
    from joulemeter.reports.compare import default_per

    if per == "run":
        return None
    every = runs + ([base] if base is not None and base not in runs else [])
    if per is None and len(every) > 1:
        per = default_per(every)
        if per is not None:
            stderr.print(f"comparing energy per {_per_words(per, every)}, which every run counted "
                         "(--per run compares whole runs)", highlight=False, markup=False, soft_wrap=True)
    return per


def _per_words(per: str, runs: list[Run]) -> str:
    """What a default `per` counts, in words: '1,000 inferences or samples', 'token', or
    'token processed (an LLM run's input + output tokens)'."""
    from joulemeter.reports.units import tokens_from_parts

    if per == "1000":
        return "1,000 inferences or samples"
    if any(tokens_from_parts(run.units) for run in runs):
        return "token processed (an LLM run's input + output tokens)"
    return "token"


def _load(
    refs: list[str], filters: RunFilters, baseline: str | None, ledger: str | None, samples: bool = True
) -> tuple[list[Run], Run | None]:
    """The runs named on the command line, or chosen by the filters (oldest first, so the
    first in time leads), and the baseline run if one was named."""
    from joulemeter.meter.store import open_ledger

    with open_ledger(ledger, for_reading=True) as book:
        runs = chosen_runs(book, refs, filters, samples=samples, what="runs to report on")
        base = None if baseline is None else book.get_run(baseline, samples=samples)
    if not refs:
        runs.reverse()
    seen: dict[str, str] = {}
    for ref, run in zip(refs, runs):
        if run.id in seen:  # `compare last last`: a run beside itself says nothing
            raise fail(f"{seen[run.id]!r} and {ref!r} are the same run ({run.id[:8]}, {run.name}): "
                       "name each run once")
        seen[run.id] = ref
    return runs, base


def _for_display(runs: list[Run], base: Run | None, max_chars: int) -> tuple[list[Run], Run | None]:
    """The runs and baseline with their user text cut to `max_chars` (formatting.for_display)."""
    from joulemeter.reports.render.formatting import for_display

    return [for_display(r, max_chars) for r in runs], None if base is None else for_display(base, max_chars)


def _comparison_tables(result: Comparison) -> list[object]:
    """Energy and ratios in one table, CO2e and cost in a second, duration and power in a
    third, each narrow enough for an 80-column terminal; then the runs' metadata with a row
    per key, so that many keys stay readable."""
    from joulemeter.reports.compare import market_per_unit_column, per_unit_columns
    from joulemeter.reports.render import formatting, frame_records
    from joulemeter.reports.render.wording import verdict_words

    per = result.per_column
    # per unit of work where every run counted one: CO2e and cost beside the energy per unit
    co2e_column, cost_column = per_unit_columns(per) if per else ("kg_co2e", "cost")
    unit = f" {result.per_label}" if per else ""
    records = frame_records(result.frame)
    whole = max(len(formatting.shorten(row["name"], _CELL_CHARS)) for row in records) <= _WHOLE_NAME_CHARS
    energy = _table(f"Energy {result.per_label}".strip(),
                    ["provenance", "energy", *([result.per_label] if per else []), "vs baseline (95 % CI)"], whole)
    energy.columns[-1].max_width = _VERDICT_CHARS  # the words wrap, leaving the runs' names whole
    market_column = market_per_unit_column(per) if per else "kg_co2e_market"
    emissions = _table("CO2e and cost", [f"CO2e location{unit}", f"CO2e market{unit}", f"cost{unit}"], whole)
    details = _table("Duration and power", ["duration", "avg power"], whole)
    for row in records:
        name = _run_label(row)
        energy.add_row(
            name,
            row["provenance"],
            formatting.energy(row["energy_j"]),
            *([formatting.energy(row[per])] if per else []),
            "[bold]baseline[/]" if row["id"] == result.baseline_id
            else verdict_words(row["ratio"], result.interval(row["id"])),
        )
        emissions.add_row(name, formatting.co2e(row[co2e_column]), formatting.co2e(row[market_column]),
                          formatting.money(row[cost_column], row["currency"]))
        details.add_row(name, formatting.duration(row["duration_s"]), formatting.power(row["avg_power_w"]))
    tables: list[object] = [energy, emissions, details]
    if result.metadata_columns:
        metadata = _table("Metadata", [_run_label(row) for row in records], first="")
        for key in result.metadata_columns:
            metadata.add_row(
                escape(formatting.shorten(formatting.metadata_label(key), _CELL_CHARS)),
                *(escape(formatting.shorten(formatting.metadata_value(key, row[key]), _CELL_CHARS)) for row in records),
            )
        tables.append(metadata)
    return tables


def _table(title: str, columns: list[str], whole_first: bool = False, first: str = "run") -> Table:
    """A compare table: a first column naming the runs (or the metadata keys), kept whole
    if `whole_first`, then `columns`; headers and cells fold rather than being cut, no side
    borders (80 columns go far). No column has a minimum width: rich cannot fit a table
    that has one."""
    from rich import box
    from rich.table import Table

    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, title_justify="left")
    table.add_column(first, overflow="fold", no_wrap=whole_first)
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def _run_label(row: dict) -> str:
    """A run's name, cut to fit a column, and its short id (a published run has none)."""
    from joulemeter.reports.estimates import PUBLISHED_ID_PREFIX
    from joulemeter.reports.render import formatting

    name = escape(formatting.shorten(row["name"], _CELL_CHARS))
    return name if row["id"].startswith(PUBLISHED_ID_PREFIX) else f"{name}\n[dim]{row['id'][:8]}[/]"


def _file_stem(runs: list[Run]) -> str:
    """The default report's name after joulemeter-report-: '<id>' or '<id>-and-<n>-more' (--output's help)."""
    stem = runs[0].id[:8]
    return stem if len(runs) == 1 else f"{stem}-and-{len(runs) - 1}-more"


#: the provider's API at another address: a proxy, a sandbox or a mirror (docs/intensity.md)
INTENSITY_URL_ENV = "JOULEMETER_INTENSITY_URL"


class _Hourly:
    """What the hourly-intensity options ask for: a CSV, or a provider (network, cached)."""

    def __init__(self, csv: Path | None, zone: str | None, signal: str, provider: str | None,
                 api_key: str | None, ledger: str | None) -> None:
        if csv is not None and provider is not None:
            raise fail("give --intensity-csv or --intensity-provider, not both")
        if signal not in ("average", "marginal"):
            raise fail(f"--signal {signal!r}: use average or marginal")
        self.csv, self.zone, self.signal, self.provider, self.api_key, self.ledger = (
            csv, zone, signal, provider, api_key, ledger)
        self._series = None

    @property
    def asked(self) -> bool:
        return self.csv is not None or self.provider is not None

    def factors(self, run: Run, base: Factors) -> Factors:
        """`base` with the run's hourly intensity in place of the yearly one."""
        from joulemeter.reports.intensity import parse_time, read_intensity_csv, run_intensity

        if self.csv is not None:
            if self._series is None:
                self._series = read_intensity_csv(self.csv, zone=self.zone, signal=self.signal)  # type: ignore[arg-type]
            return run_intensity(run, self._series).factors(base)
        import os
        from datetime import timedelta

        from joulemeter.meter.store import open_ledger
        from joulemeter.reports.intensity_providers import fetch_intensity, provider_named

        spec = provider_named(self.provider or "")
        zone = self.zone or self._zone_of(run, spec.name)
        key = self.api_key or (os.environ.get(spec.key_env) if spec.key_env else None)
        start = parse_time(run.started_at, f"run {run.id[:8]}'s start")
        end = start + timedelta(seconds=run.duration_s or 0.0)
        with open_ledger(self.ledger) as book:  # written: the fetched series is cached there
            series = fetch_intensity(spec.name, zone, start, end, api_key=key, ledger=book,
                                     allow_network=True, base_url=os.environ.get(INTENSITY_URL_ENV))
        return run_intensity(run, series).factors(base)

    @staticmethod
    def _zone_of(run: Run, provider: str) -> str:
        """The provider's zone for where the run ran, or a clear error asking for --zone."""
        from joulemeter.reports.factors import location_grid
        from joulemeter.reports.intensity_providers import default_zone

        grid, where = location_grid(run.location)
        zone = None if grid is None else default_zone(provider, grid)
        if zone is None:
            said = f"{where}: {grid}" if grid else where
            raise fail(f"--intensity-provider {provider} needs --zone, the provider's name for the grid "
                       f"(e.g. DE, CISO): run {run.id[:8]}'s place ({said}) does not give one")
        return zone


def _run_factors(
    runs: list[Run], country: str | None, pue: str | None, price: float | None, currency: str | None,
    intensity: float | None, hourly: _Hourly,
) -> dict[str, Factors]:
    """Each run's factors: where it ran (or --country, said), joulemeter.toml defaults, hourly."""
    from joulemeter.meter.config import load_config
    from joulemeter.reports.factors import factors_for_run, location_grid

    config = load_config()
    pue = pue if pue is not None else (None if config.pue is None else str(config.pue))
    if price is None and config.price is not None:
        price, currency = config.price, currency or config.currency
    out: dict[str, Factors] = {}
    for run in runs:
        f = factors_for_run(run, country, intensity_g_per_kwh=intensity, pue=pue, price_per_kwh=price,
                            currency=currency)
        recorded, _ = location_grid(run.location)
        if country is not None and recorded is not None:
            stderr.print(f"--country {country} overrides where run {run.id[:8]} ran ({recorded})",
                         highlight=False, markup=False, soft_wrap=True)
        out[run.id] = hourly.factors(run, f) if hourly.asked else f
    return out


def _one_set(runs: list[Run], by_run: dict[str, Factors]) -> Factors:
    """The factors a one-set report uses: the runs' own when they share them, else the first
    run's, said on stderr (a report accounts every run alike; compare accounts each its own)."""
    first = by_run[runs[0].id]
    others = {by_run[r.id].region for r in runs if by_run[r.id] != first}
    if others:
        stderr.print(
            f"these runs were accounted differently ({', '.join(sorted(others | {first.region}))}); the report "
            f"uses the first run's factors ({first.region}) for all: pass --country, or use `joulemeter compare`, "
            "which accounts each run with its own",
            highlight=False, markup=False, soft_wrap=True,
        )
    return first


def _market(supplier_factor: float | None, certificates_mwh: float | None) -> MarketInstruments | None:
    """Market-based instruments from the flags, else the [market] table of joulemeter.toml."""
    from joulemeter.meter.config import load_config
    from joulemeter.reports.scope2 import Certificate, MarketInstruments

    config = load_config()
    market = MarketInstruments.from_config(config.market) if config.market else None
    if supplier_factor is None and certificates_mwh is None:
        return market
    certificates = (Certificate("certificates (--certificates-mwh)", certificates_mwh),) if certificates_mwh else ()
    return MarketInstruments(
        supplier_factor_g_per_kwh=supplier_factor if supplier_factor is not None else (market and market.supplier_factor_g_per_kwh),
        supplier="--supplier-factor" if supplier_factor is not None else (market and market.supplier),
        residual_mix_g_per_kwh=market and market.residual_mix_g_per_kwh,
        residual_mix_source=market and market.residual_mix_source,
        certificates=certificates or (market.certificates if market else ()),
    )


def _where(f: Factors) -> str:
    return f" for {escape(f.region_name)}" + (f" ({escape(f.location_basis)})" if f.location_basis else "")
