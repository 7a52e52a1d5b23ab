"""Footprint = energy × factors: facility kWh, kg CO2e, cost and everyday equivalences.

Device energy (from a Run, an Estimate, a published run or plain joules) is multiplied
by the PUE to get facility energy; every figure below uses facility energy. Estimated,
sampled and replayed figures carry an uncertainty range whose bands and sources are
in `reports/data/uncertainty.csv`:

- counter: no range shown (the ~±5 % steady-state sensor gain error per board that
  Yang et al. 2024 report is not shown);
- sampled and replayed: ±39 %, the average error of naive sampled GPU energy (Yang,
  Adámek & Armour, SC'24, arXiv 2312.02741);
- estimated: × 0.54 to × 1.10, the spread of measured average power over board power
  in the published runs that measured it (published_runs.csv: Switch Transformer 245/450 W
  to GPT-3 330/300 W, Patterson et al. 2021, Table 4; BERT-base 0.627, Strubell et al. 2019);
- published: no range (the publication's own figure).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from joulemeter.meter.errors import FactorError
from joulemeter.meter.run import Provenance, Run
from joulemeter.meter.tables import Citation
from joulemeter.meter.units import (
    G_PER_KG,
    HOURS_PER_DAY,
    HOURS_PER_YEAR,
    J_PER_KWH,
    J_PER_WH,
    MINUTES_PER_HOUR,
    S_PER_HOUR,
)
from joulemeter.reports.factors import (
    EquivalenceFactor,
    Factors,
    data_table,
    factors_for_run,
    resolve_factors,
)
from joulemeter.reports.render.formatting import format_number
from joulemeter.reports.scope2 import MarketInstruments, Scope2, scope2_of

if TYPE_CHECKING:
    from joulemeter.reports.estimates import Estimate, PublishedRun

PROVENANCES = tuple(Provenance)
READABLE_RANGE = (0.1, 1000.0)  # values a reader grasps at once


@dataclass(frozen=True)
class Equivalence:
    """One everyday comparison, e.g. 2.1 × the yearly electricity of an average US household.

    `value` = facility kWh / `factor` (basis "energy") or kg CO2e / `factor` (basis "co2").
    """

    key: str
    value: float
    text: str
    factor: float
    factor_unit: str
    citation: Citation
    basis: str = "energy"
    style: str = "times"  # how it is written: times, count or duration (equivalences.csv)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["citation"] = self.citation.to_dict()
        return d


@dataclass(frozen=True)
class Footprint:
    """Energy of some work turned into facility kWh, kg CO2e and cost, with its provenance."""

    energy_j: float  # at the device(s)
    facility_energy_j: float  # × PUE
    energy_kwh: float  # facility energy in kWh
    kg_co2e: float
    cost: float | None
    currency: str | None
    provenance: Provenance
    factors: Factors
    energy_kwh_range: tuple[float, float] | None  # facility kWh, None where no band applies
    kg_co2e_range: tuple[float, float] | None

    def equivalences(self) -> list[Equivalence]:
        """Every equivalence in equivalences.csv, in file order."""
        return [self._equivalence(factor) for factor in _equivalence_factors()]

    def equivalence(self, key: str) -> Equivalence:
        """The equivalence named `key` (e.g. "household_us", "car_km")."""
        for factor in _equivalence_factors():
            if factor.key == key:
                return self._equivalence(factor)
        keys = ", ".join(factor.key for factor in _equivalence_factors())
        raise FactorError(f"unknown equivalence {key!r}; known: {keys}")

    def ranked_equivalences(self) -> list[Equivalence]:
        """Equivalences for the preferred household country and the country-free ones,
        those that read best first: readable values (0.1–1000) by preference, then the
        closest to readable."""
        factors = [
            factor for factor in _equivalence_factors()
            if factor.country in (None, self.factors.household_country)
        ]
        ranked = sorted(
            ((self._equivalence(factor), factor) for factor in factors),
            key=lambda pair: (_distance_from_readable(_shown_number(pair[0].value, pair[1].style)),
                              pair[1].rank),
        )
        return [equivalence for equivalence, _ in ranked]

    def best_equivalence(self) -> Equivalence | None:
        """The comparison that reads best (household electricity first, then car km, …), or
        None when none of the report country's reads as a sensible number (0.1–1000):
        "0.000539 seconds of a television" tells a reader nothing."""
        best = next(iter(self.ranked_equivalences()), None)
        if best is None or _distance_from_readable(_shown_number(best.value, best.style)) > 0:
            return None
        return best

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: energy in J and kWh, kg CO2e, cost with currency, factors and
        equivalences each with its source."""
        return {
            "energy_j": self.energy_j,
            "facility_energy_j": self.facility_energy_j,
            "energy_kwh": self.energy_kwh,
            "kg_co2e": self.kg_co2e,
            "cost": self.cost,
            "currency": self.currency,
            "provenance": self.provenance.value,
            "energy_kwh_range": list(self.energy_kwh_range) if self.energy_kwh_range else None,
            "kg_co2e_range": list(self.kg_co2e_range) if self.kg_co2e_range else None,
            "factors": self.factors.to_dict(),
            "best_equivalence": None if (best := self.best_equivalence()) is None else best.to_dict(),
            "equivalences": [e.to_dict() for e in self.equivalences()],
        }

    def _equivalence(self, factor: EquivalenceFactor) -> Equivalence:
        amount = self.energy_kwh if factor.basis == "energy" else self.kg_co2e
        value = amount / factor.factor
        return Equivalence(
            key=factor.key,
            value=value,
            text=_equivalence_text(value, factor.style, factor.phrase),
            factor=factor.factor,
            factor_unit=factor.factor_unit,
            citation=factor.citation,
            basis=factor.basis,
            style=factor.style,
        )


def _equivalence_factors() -> tuple[EquivalenceFactor, ...]:
    return data_table("equivalences.csv", EquivalenceFactor)


def _distance_from_readable(value: float) -> float:
    """0 inside the readable range, else how many decades outside it."""
    low, high = READABLE_RANGE
    if value <= 0:
        return math.inf
    if value < low:
        return math.log10(low / value)
    if value > high:
        return math.log10(value / high)
    return 0.0


# Units a duration equivalence (value in hours) is written in, largest first.
_TIME_UNITS = (("years", HOURS_PER_YEAR), ("days", HOURS_PER_DAY), ("hours", 1.0),
               ("minutes", 1 / MINUTES_PER_HOUR), ("seconds", 1 / S_PER_HOUR))


def _in_time_unit(hours: float) -> tuple[float, str]:
    """Hours in the largest unit that keeps the number at 1 or more (seconds below a second)."""
    for name, size in _TIME_UNITS:
        if hours >= size:
            return hours / size, name
    return hours * S_PER_HOUR, "seconds"


def _shown_number(value: float, style: str) -> float:
    """The number a reader sees: durations are written in the unit that suits them."""
    return _in_time_unit(value)[0] if style == "duration" else value


def _equivalence_text(value: float, style: str, phrase: str) -> str:
    """ "2.1 × phrase", "0.03 % of phrase" for tiny shares, "120 phrase" for counts, or
    "0.44 seconds of phrase" for durations (value in hours)."""
    if style == "times":
        if value < READABLE_RANGE[0]:
            return f"{format_number(value * 100)} % of {phrase}"
        return f"{format_number(value)} × {phrase}"
    if style == "duration":
        number, unit = _in_time_unit(value)
        return f"{format_number(number)} {unit} of {phrase}"
    return f"{format_number(value)} {phrase}"


# -- uncertainty bands -------------------------------------------------------------
@dataclass(frozen=True)
class UncertaintyBand:
    """A row of uncertainty.csv: true energy lies within low_factor–high_factor × the figure."""

    provenance: Provenance
    low_factor: float
    high_factor: float
    citation: Citation


@functools.cache
def uncertainty_bands() -> dict[str, tuple[float, float, Citation]]:
    """Provenance -> (low factor, high factor, citation) from uncertainty.csv."""
    return {
        band.provenance.value: (band.low_factor, band.high_factor, band.citation)
        for band in data_table("uncertainty.csv", UncertaintyBand)
    }


def provenance_band(provenance: Provenance) -> tuple[float, float] | None:
    """(low, high) multipliers for a provenance; MIXED without detail takes the widest."""
    bands = uncertainty_bands()
    if provenance is Provenance.MIXED:
        return min(b[0] for b in bands.values()), max(b[1] for b in bands.values())
    if provenance in bands:
        return bands[provenance][:2]
    return None  # counter, published


def _run_energy(run: Run) -> tuple[float, Provenance, tuple[float, float] | None]:
    """Run energy (J), its provenance, and its (low, high) range in J from per-domain bands."""
    energies = list(run.energy.values())
    kinds = {e.provenance for e in energies}
    provenance = kinds.pop() if len(kinds) == 1 else (Provenance.MIXED if kinds else Provenance.COUNTER)
    low = high = 0.0
    banded = False
    for e in energies:
        band = provenance_band(e.provenance)
        banded = banded or band is not None
        lo, hi = band or (1.0, 1.0)
        low += e.energy_j * lo
        high += e.energy_j * hi
    return run.total_energy_j, provenance, ((low, high) if banded else None)


# -- the entry points ----------------------------------------------------------------
def footprint(
    subject: Run | Estimate | PublishedRun | float,
    factors: Factors | None = None,
    *,
    provenance: Provenance | str | None = None,
) -> Footprint:
    """Footprint of a Run, an Estimate, a PublishedRun or a number of device joules.

    Without factors: a Run uses those of where it ran (factors_for_run: its Location, else
    the world average, said loudly); a published run its own PUE and intensity; anything
    else the world average. A plain number is "estimated" unless `provenance` says otherwise.
    """
    from joulemeter.reports.estimates import Estimate, PublishedRun

    if provenance is not None and provenance not in PROVENANCES:
        raise FactorError(f"unknown provenance {provenance!r}: use one of {', '.join(PROVENANCES)}")
    range_j: tuple[float, float] | None
    kind: Provenance
    if isinstance(subject, Run):
        energy_j, kind, range_j = _run_energy(subject)
        if factors is None:
            factors = factors_for_run(subject)
    elif isinstance(subject, Estimate):
        energy_j, kind, range_j = subject.energy_j, Provenance.ESTIMATED, None
    elif isinstance(subject, PublishedRun):
        energy_j, kind, range_j = subject.energy_j, subject.provenance, None
        if factors is None:
            factors = subject.factors()
    elif isinstance(subject, (int, float)) and not isinstance(subject, bool):
        energy_j, kind, range_j = float(subject), Provenance.ESTIMATED, None
    else:
        raise TypeError(f"footprint() takes a Run, Estimate, PublishedRun or joules, not {type(subject).__name__}")
    if not energy_j >= 0:
        raise FactorError(f"energy {energy_j} J is negative or not a number: nothing to account")

    if provenance is not None and provenance != kind:
        kind, range_j = Provenance(provenance), None
    if range_j is None and (band := provenance_band(kind)) is not None:
        range_j = (energy_j * band[0], energy_j * band[1])
    return _account(energy_j, kind, factors or resolve_factors(), range_j)


def _account(
    energy_j: float, provenance: Provenance, factors: Factors, range_j: tuple[float, float] | None
) -> Footprint:
    facility_j = energy_j * factors.pue
    kwh = facility_j / J_PER_KWH
    kg_per_kwh = factors.intensity_g_per_kwh / G_PER_KG
    kwh_range = None if range_j is None else tuple(j * factors.pue / J_PER_KWH for j in range_j)
    return Footprint(
        energy_j=energy_j,
        facility_energy_j=facility_j,
        energy_kwh=kwh,
        kg_co2e=kwh * kg_per_kwh,
        cost=None if factors.price_per_kwh is None else kwh * factors.price_per_kwh,
        currency=factors.currency,
        provenance=provenance,
        factors=factors,
        energy_kwh_range=kwh_range,  # type: ignore[arg-type]
        kg_co2e_range=None if kwh_range is None else (kwh_range[0] * kg_per_kwh, kwh_range[1] * kg_per_kwh),
    )


def per_unit(run: Run, unit: str, factors: Factors | None = None) -> dict[str, Any] | None:
    """Energy and emissions per unit of work (samples, tokens, requests…) over the run.

    J and Wh per unit and per 1,000 units at the device, facility kWh and kg CO2e per
    1,000 units; None when no such units were counted.
    """
    count = run.units.get(unit)
    if not count:
        return None
    whole = footprint(run, factors)
    per_unit_j = whole.energy_j / count
    return {
        "unit": unit,
        "count": count,
        "provenance": whole.provenance,
        "j_per_unit": per_unit_j,
        "wh_per_unit": per_unit_j / J_PER_WH,
        "j_per_1000": per_unit_j * 1000,
        "wh_per_1000": per_unit_j * 1000 / J_PER_WH,
        "facility_kwh_per_1000": whole.energy_kwh / count * 1000,
        "kg_co2e_per_1000": whole.kg_co2e / count * 1000,
    }


def projection(
    energy_per_inference_j: float,
    inferences_per_day: float,
    days: float,
    factors: Factors | None = None,
) -> Footprint:
    """Footprint of serving: energy per inference × inferences per day × days (estimated)."""
    for name, value in (("energy_per_inference_j", energy_per_inference_j),
                        ("inferences_per_day", inferences_per_day), ("days", days)):
        if not value >= 0:
            raise FactorError(f"{name} = {value} is negative or not a number: give a value ≥ 0")
    return footprint(energy_per_inference_j * inferences_per_day * days, factors, provenance=Provenance.ESTIMATED)


def scope2(
    subject: Run | Footprint,
    factors: Factors | None = None,
    market: MarketInstruments | None = None,
    *,
    certificate_kwh: float | None = None,
) -> Scope2:
    """Location- and market-based Scope 2 kg CO2e of a run (or a footprint), each with its range.

    Location-based uses the footprint's grid intensity, which must be an average (a marginal
    intensity answers another question); market-based uses `market`'s instruments
    (reports.scope2). `certificate_kwh`: the certificates allotted to this run when several
    share them (scope2.allocate_certificates); by default as many as it needs.
    """
    fp = subject if isinstance(subject, Footprint) else footprint(subject, factors)
    f = fp.factors
    if f.intensity_signal != "average":
        raise FactorError(
            f"location-based Scope 2 needs an average grid intensity, and {f.intensity_citation} is "
            f"{f.intensity_signal}: use an average series for the inventory, the marginal one for decisions"
        )
    basis = f"{format_number(f.intensity_g_per_kwh)} g CO2e/kWh, {f.region_name} ({f.intensity_citation})"
    return scope2_of(fp.energy_kwh, fp.energy_kwh_range, f.intensity_g_per_kwh, basis, market, certificate_kwh)
