"""Water: on-site (cooling) and off-site (generating the electricity), as Li et al. 2023 count it.

    on-site L  = WUE (L per kWh of IT energy) × device kWh
    off-site L = EWIF (L per kWh generated) × facility kWh (device × PUE)

Li, Yang, Islam & Ren, "Making AI Less 'Thirsty'" (arXiv 2304.03271), §3. WUE presets are in
`reports/data/water_wue.csv` (or a number the user gives), water intensities of electricity per
country in `reports/data/water_electricity.csv`, each with its source and year. Both are
estimates: their range is the energy's uncertainty band carried through (no source gives a
range for the factors themselves); a missing factor leaves its part a labelled gap, not zero.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from joulemeter.meter.errors import FactorError
from joulemeter.meter.tables import Citation
from joulemeter.meter.units import J_PER_KWH
from joulemeter.reports.factors import Factors, data_table

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
class WaterFactors:
    """The two water factors a footprint uses; None where none is known (a gap, said so)."""

    wue_l_per_kwh: float | None
    wue_basis: str  # preset name and what it stands for, "as given", or why there is none
    wue_citation: Citation | None
    ewif_l_per_kwh: float | None
    ewif_region: str | None
    ewif_citation: Citation | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "wue_l_per_kwh": self.wue_l_per_kwh, "wue_basis": self.wue_basis,
            "wue_citation": None if self.wue_citation is None else self.wue_citation.to_dict(),
            "ewif_l_per_kwh": self.ewif_l_per_kwh, "ewif_region": self.ewif_region,
            "ewif_citation": None if self.ewif_citation is None else self.ewif_citation.to_dict(),
        }


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
    country = country_of(factors.region)
    row = None if country is None else _electricity_water().get(country)
    return WaterFactors(
        wue_l_per_kwh=wue_value, wue_basis=basis, wue_citation=wue_citation,
        ewif_l_per_kwh=None if row is None else row.l_per_kwh,
        ewif_region=None if row is None else row.region,
        ewif_citation=None if row is None else row.citation,
    )


def water(
    device_energy_j: float,
    device_range_j: tuple[float, float] | None,
    pue: float,
    factors: WaterFactors,
) -> Water:
    """On-site and off-site litres of `device_energy_j` (its range, if any, carried through)."""
    bounds = device_range_j or (device_energy_j, device_energy_j)
    onsite = offsite = None
    onsite_range = offsite_range = None
    if factors.wue_l_per_kwh is not None:
        onsite = device_energy_j / J_PER_KWH * factors.wue_l_per_kwh
        onsite_range = (bounds[0] / J_PER_KWH * factors.wue_l_per_kwh, bounds[1] / J_PER_KWH * factors.wue_l_per_kwh)
    if factors.ewif_l_per_kwh is not None:
        per_j = pue * factors.ewif_l_per_kwh / J_PER_KWH
        offsite = device_energy_j * per_j
        offsite_range = (bounds[0] * per_j, bounds[1] * per_j)
    return Water(onsite, onsite_range, offsite, offsite_range)
