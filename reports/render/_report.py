"""What every report format shows, assembled once: per run its footprint and figures
(each with its provenance), the comparison when there are several runs, and the factors
with their sources."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from joulemeter.meter.run import Provenance, Run, Status
from joulemeter.reports.accounting import Equivalence, Footprint, footprint, scope2
from joulemeter.reports.compare import Comparison, compare
from joulemeter.reports.factors import Citation, Factors, resolve_factors
from joulemeter.reports.render import formatting as fmt


@dataclass(frozen=True)
class Figure:
    """One printed figure: label, formatted value, provenance, and the SI value behind it."""

    label: str
    text: str
    provenance: str  # counter / sampled / estimated / replayed, or how else it was obtained
    value: float | None
    unit: str  # SI unit of `value`: "J", "kWh", "kg", "s", "W", or a currency
    detail: str | None = None  # e.g. the uncertainty range, "range 51.0 – 54.3 g CO2e"

    @property
    def full_text(self) -> str:
        return f"{self.text} ({self.detail})" if self.detail else self.text


@dataclass(frozen=True)
class FactorLine:
    """A conversion factor as printed at the bottom of a report, with its source."""

    label: str
    text: str
    source: str
    url: str | None = None


@dataclass
class RunReport:
    run: Run
    footprint: Footprint
    figures: list[Figure]
    best: Equivalence | None
    notes: list[str]  # status, gaps, defaults a reader must know about


@dataclass
class Report:
    title: str
    generated_at: str  # ISO 8601 UTC
    runs: list[RunReport]
    comparison: Comparison | None
    factors: Factors
    factor_lines: list[FactorLine] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # said once for the page, not per run


def build_report(
    runs: Sequence[Run],
    *,
    factors: Factors | None = None,
    baseline: Run | str | None = None,
    per: str | None = None,
    title: str | None = None,
) -> Report:
    """Footprints, figures and (for several runs) the comparison, ready to render."""
    factors = factors or resolve_factors()
    run_reports = [_run_report(run, factors) for run in runs]
    notes = _page_notes(run_reports, factors)
    comparison = None
    if len(runs) > 1:
        comparison = compare(runs, baseline, per=per, factors=factors)
    equivalences = [r.best for r in run_reports if r.best is not None]
    return Report(
        title=title or _default_title(runs),
        generated_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        runs=run_reports,
        comparison=comparison,
        factors=factors,
        factor_lines=factor_lines(factors, equivalences),
        notes=notes,
    )


def _page_notes(run_reports: list[RunReport], factors: Factors) -> list[str]:
    """Notes about the factors, and notes every run shares, lifted out of the runs so the
    page says each once."""
    notes = []
    if factors.intensity_is_default:
        notes.append("no location recorded or given: emissions use the world-average grid intensity")
    if len(run_reports) > 1:
        shared = [n for n in run_reports[0].notes if all(n in rr.notes for rr in run_reports[1:])]
        notes += shared
        for rr in run_reports:
            rr.notes = [n for n in rr.notes if n not in shared]
    return notes


def factor_lines(factors: Factors, equivalences: Sequence[Equivalence] = ()) -> list[FactorLine]:
    """The factors used, each with its source: intensity, PUE, price, equivalences."""
    intensity = f"{fmt.number(factors.intensity_g_per_kwh)} g CO2e/kWh ({factors.region_name})"
    if factors.intensity_is_default:
        intensity += ", world average: no country was given"
    lines = [FactorLine("Grid carbon intensity", intensity, *_cite(factors.intensity_citation))]
    if factors.location_basis:
        lines.append(FactorLine("Location", factors.location_basis, "docs/intensity.md: a run's recorded location, or --country over it", None))
    method = factors.intensity_method or "as its source states"
    lines.append(FactorLine("Intensity method", f"{factors.intensity_signal}, {method}", "docs/intensity.md", None))
    pue_source = _cite(factors.pue_citation) if factors.pue_citation else (factors.pue_basis, None)
    lines.append(FactorLine("PUE", fmt.number(factors.pue), *pue_source))
    if factors.price_per_kwh is not None:
        price_source = _cite(factors.price_citation) if factors.price_citation else ("as given", None)
        price = f"{fmt.number(factors.price_per_kwh)} {factors.currency or ''}/kWh"
        lines.append(FactorLine("Electricity price", price, *price_source))
    seen = set()
    for eq in equivalences:
        if eq.key in seen:
            continue
        seen.add(eq.key)
        lines.append(
            FactorLine(
                f"Equivalence: {eq.key}", f"{fmt.number(eq.factor)} {eq.factor_unit}",
                *_cite(eq.citation),
            )
        )
    return lines


def _cite(citation: Citation | None) -> tuple[str, str | None]:
    if citation is None:
        return "unknown source", None
    return str(citation), citation.url


def _peak_provenance(run: Run) -> str:
    """Peak power comes from power readings: at best `sampled`, else as weak as the run's."""
    weakest = max((run.provenance, Provenance.SAMPLED), key=lambda p: p.rank if p else -1)
    return weakest.value


def _run_report(run: Run, factors: Factors) -> RunReport:
    fp = footprint(run, factors)
    market = scope2(fp)  # beside the location-based figure, never added to it
    prov = fp.provenance
    figures = [
        Figure("Energy at the devices", fmt.energy_with_kwh(fp.energy_j), prov, fp.energy_j, "J"),
        Figure(f"Electricity incl. facility (PUE {fmt.number(factors.pue)})",
               fmt.kwh(fp.energy_kwh), prov, fp.energy_kwh, "kWh",
               _range(fp.energy_kwh_range, fmt.kwh)),
        Figure("Emissions", fmt.co2e(fp.kg_co2e), prov, fp.kg_co2e, "kg CO2e",
               _range(fp.kg_co2e_range, fmt.co2e)),
        Figure("Emissions, market-based (GHG Protocol Scope 2)", fmt.co2e(market.market_kg),
               prov, market.market_kg, "kg CO2e", _range(market.market_kg_range, fmt.co2e)),
        Figure("Cost", fmt.money(fp.cost, fp.currency), prov, fp.cost, fp.currency or ""),
        Figure("Duration", fmt.duration(run.duration_s), "monotonic clock", run.duration_s, "s"),
        Figure("Average power", fmt.power(run.avg_power_w), prov, run.avg_power_w, "W"),
        Figure("Peak power", fmt.power(run.peak_power_w), _peak_provenance(run), run.peak_power_w, "W"),
    ]
    if run.idle_energy_j is not None:  # only runs metered with an idle baseline have these
        figures += [
            Figure("Idle baseline energy", fmt.energy(run.idle_energy_j), prov, run.idle_energy_j, "J"),
            Figure("Attributable energy (above idle)", fmt.energy(run.attributable_energy_j), prov,
                   run.attributable_energy_j, "J"),
        ]
    notes = [*_notes(run), f"market-based emissions: {market.market_basis}"]
    return RunReport(run, fp, figures, _best_equivalence(fp), notes)


def _range(bounds: tuple[float, float] | None, unit_format: Callable[[float], str]) -> str | None:
    """'range 51.0 g CO2e – 54.3 g CO2e', or None where no uncertainty band applies."""
    if not bounds:
        return None
    low, high = bounds
    return f"range {unit_format(low)} – {unit_format(high)}"


def _best_equivalence(fp: Footprint) -> Equivalence | None:
    """The equivalence that reads best; None for a run that used no energy."""
    return fp.best_equivalence() if fp.energy_kwh > 0 else None


def _notes(run: Run) -> list[str]:
    notes = []
    if run.status is not Status.COMPLETED:
        notes.append(
            f"status {run.status.value}: figures cover only what was measured before it ended"
            + (f" ({run.error})" if run.error else "")
        )
    for gap in run.gaps:
        end = "the end" if gap.end_s is None else f"{gap.end_s:.1f} s"
        notes.append(
            f"{gap.domain} not read from {gap.start_s:.1f} s to {end}: {gap.reason}; "
            "no energy is counted in that span"
        )
    for domain in run.domains:
        if domain.note:
            notes.append(f"{domain.name}: {domain.note}")
    return notes


def _default_title(runs: Sequence[Run]) -> str:
    if len(runs) == 1:
        return f"Energy report: {runs[0].name}"
    return f"Energy comparison of {len(runs)} runs"
