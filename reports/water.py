"""Water: on-site (cooling) and off-site (generating the electricity), as Li et al. 2023 count it.

    on-site L  = WUE (L per kWh of IT energy) × device kWh
    off-site L = EWIF (L per kWh generated) × facility kWh (device × PUE)

Li, Yang, Islam & Ren, "Making AI Less 'Thirsty'" (arXiv 2304.03271), §3. WUE presets are in
`reports/data/water_wue.csv` (or a number the user gives). The EWIF of a country is its cited
factor in `reports/data/water_electricity.csv` where there is one; otherwise it is estimated
from its generation mix (CodeCarbon's global_energy_mix.json, the mix its grid intensity comes
from) × the water each technology consumes per MWh (`reports/data/water_generation.csv`,
Macknick et al.), with a range over cooling types and hydropower's contested evaporation:

    EWIF = Σ share of technology × its consumption factor (central, low and high alike)

All are estimates: the energy's uncertainty band is carried through, widened by the factor's
range where it has one; a missing factor leaves its part a labelled gap, not zero.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from joulemeter.meter.errors import FactorError
from joulemeter.meter.tables import Citation
from joulemeter.meter.units import J_PER_KWH, KWH_PER_MWH, L_PER_US_GALLON
from joulemeter.reports.factors import Factors, codecarbon_data, data_table

WUE_DEFINITION = "litres of on-site water per kWh of IT energy (The Green Grid's WUE)"


@dataclass(frozen=True)
class WuePreset:
    """A row of water_wue.csv: a named on-site WUE (L/kWh of IT energy) and its source."""

    preset: str
    wue_l_per_kwh: float
    description: str
    citation: Citation


@dataclass(frozen=True)
class ElectricityWater:
    """A row of water_electricity.csv: litres consumed per kWh generated in a country (alpha-3)."""

    region: str
    l_per_kwh: float
    description: str
    citation: Citation


@dataclass(frozen=True)
class GenerationWater:
    """A row of water_generation.csv: US gallons of water a technology consumes per MWh it
    generates, central and range; `technology` names its `<technology>_TWh` column in the mix."""

    technology: str
    gal_per_mwh: float
    gal_per_mwh_low: float
    gal_per_mwh_high: float
    description: str
    citation: Citation


@dataclass(frozen=True)
class WaterFactors:
    """The two water factors a footprint uses; None where none is known (a gap, said so)."""

    wue_l_per_kwh: float | None
    wue_basis: str  # preset name and what it stands for, "as given", or why there is none
    wue_citation: Citation | None
    ewif_l_per_kwh: float | None
    ewif_region: str | None
    ewif_citation: Citation | None
    ewif_range_l_per_kwh: tuple[float, float] | None = None  # None: the cited factor has no range
    ewif_basis: str | None = None  # a cited factor, or the mix it was estimated from; None without one

    def to_dict(self) -> dict[str, Any]:
        return {
            "wue_l_per_kwh": self.wue_l_per_kwh, "wue_basis": self.wue_basis,
            "wue_citation": None if self.wue_citation is None else self.wue_citation.to_dict(),
            "ewif_l_per_kwh": self.ewif_l_per_kwh, "ewif_region": self.ewif_region,
            "ewif_citation": None if self.ewif_citation is None else self.ewif_citation.to_dict(),
            "ewif_range_l_per_kwh": None if self.ewif_range_l_per_kwh is None else list(self.ewif_range_l_per_kwh),
            "ewif_basis": self.ewif_basis,
        }


@dataclass(frozen=True)
class MixWater:
    """A country's water intensity of electricity estimated from its generation mix (L/kWh)."""

    region: str  # ISO alpha-3
    l_per_kwh: float
    range_l_per_kwh: tuple[float, float]
    mix_year: int
    citation: Citation


@dataclass(frozen=True)
class Water:
    """Litres of water of some work (estimates), each part None where its factor is unknown."""

    onsite_l: float | None
    onsite_l_range: tuple[float, float] | None
    offsite_l: float | None
    offsite_l_range: tuple[float, float] | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "provenance": "estimated",
            "onsite_l": self.onsite_l,
            "onsite_l_range": None if self.onsite_l_range is None else list(self.onsite_l_range),
            "offsite_l": self.offsite_l,
            "offsite_l_range": None if self.offsite_l_range is None else list(self.offsite_l_range),
        }


def wue_presets() -> dict[str, WuePreset]:
    """Preset name -> row of water_wue.csv."""
    return {p.preset: p for p in data_table("water_wue.csv", WuePreset)}


@functools.cache
def _electricity_water() -> dict[str, ElectricityWater]:
    return {row.region: row for row in data_table("water_electricity.csv", ElectricityWater)}


def generation_water() -> dict[str, GenerationWater]:
    """Technology -> row of water_generation.csv."""
    return {row.technology: row for row in data_table("water_generation.csv", GenerationWater)}


@functools.cache
def mix_water(country: str) -> MixWater | None:
    """The EWIF of a country (alpha-3) from its generation mix × each technology's consumption,
    None where the mix has no such country or no generation."""
    mix = codecarbon_data().get_global_energy_mix_data().get(country)
    if mix is None:
        return None
    per_technology = generation_water()
    twh = {tech: float(mix.get(f"{tech}_TWh") or 0.0) for tech in per_technology}
    total = sum(twh.values())
    if not total > 0:
        return None
    shares = {tech: value / total for tech, value in twh.items()}

    def weighted(column: str) -> float:
        gal = sum(share * getattr(per_technology[tech], column) for tech, share in shares.items())
        return gal * L_PER_US_GALLON / KWH_PER_MWH

    year = int(mix["year"])
    citation = Citation(f"joulemeter estimate: water consumed per MWh by technology (Macknick et al. 2012; "
                        f"hydropower NREL 2011; water_generation.csv) × {mix['country_name']}'s {year} generation mix "
                        "(Our World in Data / Ember, via CodeCarbon global_energy_mix.json)",
                        year, "https://doi.org/10.1088/1748-9326/7/4/045802")
    return MixWater(country, weighted("gal_per_mwh"),
                    (weighted("gal_per_mwh_low"), weighted("gal_per_mwh_high")), year, citation)


def country_of(region: str) -> str | None:
    """The ISO alpha-3 country of a region code from factors ("USA", "US-CA" -> "USA"), None for WORLD."""
    import pycountry  # a dependency of codecarbon, already loaded by factors

    if len(region) == 3 and pycountry.countries.get(alpha_3=region) is not None:
        return region
    country = pycountry.countries.get(alpha_2=region.split("-")[0])
    return None if country is None else country.alpha_3


def resolve_water(factors: Factors, wue: float | str | None = None) -> WaterFactors:
    """Water factors for the place of `factors`, with the WUE a preset or number gives (None: no
    on-site figure, since no WUE describes every data centre)."""
    presets = wue_presets()
    if wue is None:
        wue_value, basis, wue_citation = None, "no WUE given: on-site water not estimated", None
    elif isinstance(wue, str) and wue.strip().lower() in presets:
        preset = presets[wue.strip().lower()]
        wue_value, basis, wue_citation = preset.wue_l_per_kwh, f"preset {preset.preset!r}: {preset.description}", preset.citation
    else:
        try:
            wue_value = float(wue)
        except ValueError:
            raise FactorError(f"unknown WUE {wue!r}: give litres per kWh (≥ 0) or one of {', '.join(presets)}",
                              parameter="wue") from None
        if not wue_value >= 0:
            raise FactorError(f"WUE {wue_value} L/kWh is negative or not a number: give a value ≥ 0", parameter="wue")
        basis, wue_citation = "as given", None
    on_site = dict(wue_l_per_kwh=wue_value, wue_basis=basis, wue_citation=wue_citation)
    country = country_of(factors.region)
    row = None if country is None else _electricity_water().get(country)
    if row is not None:
        return WaterFactors(**on_site, ewif_l_per_kwh=row.l_per_kwh, ewif_region=row.region,
                            ewif_citation=row.citation, ewif_basis=f"cited factor: {row.description}")
    estimated = None if country is None else mix_water(country)
    if estimated is None:
        return WaterFactors(**on_site, ewif_l_per_kwh=None, ewif_region=None, ewif_citation=None)
    low, high = estimated.range_l_per_kwh
    return WaterFactors(
        **on_site, ewif_l_per_kwh=estimated.l_per_kwh, ewif_region=estimated.region,
        ewif_citation=estimated.citation, ewif_range_l_per_kwh=estimated.range_l_per_kwh,
        ewif_basis=(f"estimated from {estimated.region}'s {estimated.mix_year} generation mix × water consumed "
                    f"per MWh by technology; {low:.2f}–{high:.2f} L/kWh over cooling types and hydropower's "
                    "evaporation"),
    )


def water(
    device_energy_j: float,
    device_range_j: tuple[float, float] | None,
    pue: float,
    factors: WaterFactors,
) -> Water:
    """On-site and off-site litres of `device_energy_j` (its range, if any, carried through, and
    off-site widened by the EWIF's own range where it has one)."""
    bounds = device_range_j or (device_energy_j, device_energy_j)
    onsite = offsite = None
    onsite_range = offsite_range = None
    if factors.wue_l_per_kwh is not None:
        onsite = device_energy_j / J_PER_KWH * factors.wue_l_per_kwh
        onsite_range = (bounds[0] / J_PER_KWH * factors.wue_l_per_kwh, bounds[1] / J_PER_KWH * factors.wue_l_per_kwh)
    if factors.ewif_l_per_kwh is not None:
        ewif_low, ewif_high = factors.ewif_range_l_per_kwh or (factors.ewif_l_per_kwh,) * 2
        offsite = device_energy_j * pue * factors.ewif_l_per_kwh / J_PER_KWH
        offsite_range = (bounds[0] * pue * ewif_low / J_PER_KWH, bounds[1] * pue * ewif_high / J_PER_KWH)
    return Water(onsite, onsite_range, offsite, offsite_range)
