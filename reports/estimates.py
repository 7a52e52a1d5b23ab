"""Energy estimates from hardware × time, and the catalogue of published training runs.

An estimate is board power (from `reports/data/hardware.csv`, each row citing its
vendor source) × count × hours × utilisation: an upper-bound style figure whose
uncertainty band is applied in accounting. Published runs (`published_runs.csv`)
carry what their paper or model card reported, with the citation.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
from dataclasses import dataclass

from joulemeter.meter.errors import FactorError, UnknownHardwareError
from joulemeter.meter.run import Domain, DomainEnergy, Provenance, Run, Status
from joulemeter.meter.tables import Citation
from joulemeter.meter.units import G_PER_KG, J_PER_KWH, KWH_PER_MWH, S_PER_HOUR
from joulemeter.reports.factors import Factors, data_table, normalise_name, resolve_factors


@dataclass(frozen=True)
class Hardware:
    """A row of hardware.csv: board power of an accelerator, with its source."""

    name: str
    power_w: float
    vendor: str
    aliases: tuple[str, ...]
    citation: Citation
    note: str | None


@dataclass(frozen=True)
class Estimate:
    """Energy of `count` devices drawing `power_w` × `utilization` for `hours` (J)."""

    hardware: str
    count: int
    hours: float
    power_w: float
    utilization: float
    energy_j: float
    power_citation: Citation | None  # None when the user gave the power
    method: str


@functools.cache
def hardware_table() -> dict[str, Hardware]:
    """Canonical name -> Hardware, from hardware.csv."""
    return {hw.name: hw for hw in data_table("hardware.csv", Hardware)}


@functools.cache
def _hardware_index() -> dict[str, str]:
    index = {}
    for hw in hardware_table().values():
        for alias in (hw.name, *hw.aliases):
            index[_lookup_key(alias)] = hw.name
    return index


def _lookup_key(name: str) -> str:
    """A name as looked up: case, accents, spaces, hyphens and underscores left out, so
    "RTX4090", "rtx 4090" and "RTX-4090" are one name."""
    return "".join(ch for ch in normalise_name(name) if ch not in " -")


def find_hardware(name: str) -> Hardware:
    """The hardware row for a name or alias ("V100" is the SXM2 board; "RTX4090" is
    "RTX-4090", _lookup_key); close matches on a miss."""
    index = _hardware_index()
    key = _lookup_key(name)
    if key in index:
        return hardware_table()[index[key]]
    close = difflib.get_close_matches(key, list(index), n=6, cutoff=0.6)
    suggestions = list(dict.fromkeys(index[c] for c in close))
    raise UnknownHardwareError(name, suggestions)


def estimate(
    hardware: str | None = None,
    *,
    count: int = 1,
    hours: float,
    utilization: float = 1.0,
    power_w: float | None = None,
) -> Estimate:
    """Board power × count × hours × utilisation; `power_w` overrides the table's value."""
    if hardware is None and power_w is None:
        raise FactorError("give a hardware name or its power in watts (power_w)")
    if not count >= 1:
        raise FactorError(f"count {count} must be at least 1")
    if not hours >= 0:
        raise FactorError(f"hours {hours} is negative or not a number: give a value ≥ 0")
    if not 0 <= utilization <= 1:
        raise FactorError(f"utilization {utilization} must lie between 0 and 1")
    if power_w is not None and not power_w >= 0:
        raise FactorError(f"power {power_w} W is negative or not a number: give a value ≥ 0")

    if power_w is None:
        row = find_hardware(hardware)  # type: ignore[arg-type]
        name, power, citation = row.name, row.power_w, row.citation
        method = f"board power of {row.name} ({row.power_w:g} W) × count × hours × utilization"
    else:
        name = find_hardware(hardware).name if hardware else "custom"
        power, citation = float(power_w), None
        method = f"user-given power ({power:g} W) × count × hours × utilization"
    energy_j = power * count * hours * S_PER_HOUR * utilization
    return Estimate(name, count, float(hours), power, float(utilization), energy_j, citation, method)


G_PER_TONNE = G_PER_KG * 1000.0
#: a published run as a Run has this id before its name (it has no ledger id)
PUBLISHED_ID_PREFIX = "published:"


# -- published runs ----------------------------------------------------------------
@dataclass(frozen=True)
class PublishedRun:
    """A row of published_runs.csv: a training run as its paper or model card reported it.

    `hours` is wall-clock time and `device_hours` the accelerator-hours (count × hours,
    or as reported). `reported_energy_mwh` is what the source states; whether it
    includes the facility overhead is in `energy_includes_pue`.
    """

    name: str
    model: str
    hardware: str
    count: int | None
    hours: float | None
    device_hours: float | None
    tokens: float | None  # training tokens, where a source states them (notes say which)
    power_w: float | None  # per device, as the source used it
    power_measured: bool  # power_w is a measured average (not a board power or TDP)
    reported_energy_mwh: float | None
    energy_includes_pue: bool
    reported_co2e_t: float | None
    pue: float | None
    intensity_g_per_kwh: float | None
    citation: Citation
    notes: str

    @property
    def provenance(self) -> Provenance:
        """PUBLISHED when the source reports energy, else ESTIMATED from its hours × power."""
        return Provenance.PUBLISHED if self.reported_energy_mwh is not None else Provenance.ESTIMATED

    @property
    def energy_j(self) -> float:
        """Device-level energy (J): the reported figure without PUE, else device-hours × power."""
        if self.reported_energy_mwh is not None:
            energy = self.reported_energy_mwh * KWH_PER_MWH * J_PER_KWH
            return energy / self.pue if self.energy_includes_pue and self.pue else energy
        power = self.power_w if self.power_w is not None else find_hardware(self.hardware).power_w
        if self.device_hours is None:
            raise FactorError(f"published run {self.name!r} has neither energy nor device-hours")
        return self.device_hours * S_PER_HOUR * power

    @property
    def implied_intensity_g_per_kwh(self) -> float | None:
        """Reported CO2e ÷ facility energy, for a source that gives both but no intensity."""
        if self.reported_co2e_t is None:
            return None
        facility_kwh = self.energy_j * (self.pue or 1.0) / J_PER_KWH
        return self.reported_co2e_t * G_PER_TONNE / facility_kwh if facility_kwh > 0 else None

    def factors(self) -> Factors:
        """The PUE and grid intensity the source used, or implied by its CO2e ÷ its energy; the
        world average (said) only where it gives neither."""
        intensity, source = self.intensity_g_per_kwh, self.citation.source
        if intensity is None and (intensity := self.implied_intensity_g_per_kwh) is not None:
            source += " (implied by its reported CO2e ÷ energy)"
        factors = resolve_factors(intensity_g_per_kwh=intensity, pue=self.pue or "device")
        if intensity is None:
            return factors
        citation = Citation(source, self.citation.year, self.citation.url)
        return dataclasses.replace(factors, intensity_citation=citation)

    def as_run(self) -> Run:
        """This published run as a Run (one domain, provenance published or estimated, its
        tokens as units), so comparisons treat it like a measured one and say the difference."""
        kind = self.provenance
        method = ("as reported by the source" if kind is Provenance.PUBLISHED
                  else "device-hours × power as the source states them")
        domain = Domain("published", "gpu", self.hardware, kind, method)
        return Run(
            id=f"{PUBLISHED_ID_PREFIX}{self.name}",
            name=f"{self.model} (published)",
            project="published",
            status=Status.COMPLETED,
            duration_s=None if self.hours is None else self.hours * S_PER_HOUR,
            domains=[domain],
            energy={"published": DomainEnergy("published", self.energy_j, kind, None, None)},
            units={} if self.tokens is None else {"tokens": self.tokens},
            metadata={"source": str(self.citation), "kind": "training"},  # tokens: training tokens
        )

    @property
    def measured_power_ratio(self) -> float | None:
        """Measured average power ÷ board power, where the source measured it."""
        if not self.power_measured or self.power_w is None:
            return None
        return self.power_w / find_hardware(self.hardware).power_w


def published_runs() -> list[PublishedRun]:
    """Every run in published_runs.csv, in file order."""
    return list(data_table("published_runs.csv", PublishedRun))


def published_run(name: str) -> PublishedRun:
    """The published run named `name`, or by its model as `joulemeter published` lists it
    ("Llama 2 70B"); case, spaces and hyphens do not matter; close matches on a miss."""
    runs = {_lookup_key(r.name): r for r in published_runs()}
    runs.update({_lookup_key(r.model): r for r in published_runs() if _lookup_key(r.model) not in runs})
    key = _lookup_key(name)
    if key in runs:
        return runs[key]
    close = difflib.get_close_matches(key, list(runs), n=4, cutoff=0.5)
    hint = f"; did you mean {', '.join(runs[c].name for c in close)}?" if close else ""
    raise FactorError(
        f"no published run named {name!r}{hint} Run `joulemeter published` to list them."
    )
