"""Scope 2 both ways (GHG Protocol Scope 2 Guidance, WRI/WBCSD 2015): location-based and
market-based emissions of the same facility electricity, each shown, never added together.

- Location-based (Guidance ch. 6.6, Table 6.2): the grid's average intensity where and when
  the electricity was used: the run's Factors (yearly, or hourly from reports.intensity).
- Market-based (Table 6.3, its hierarchy): energy attribute certificates (guarantees of
  origin, RECs) at their factor for the kWh they cover; the rest at the supplier's factor;
  without one at the residual mix; without that at the grid average, which the Guidance
  allows as a last resort and which this module labels, since it double counts the
  renewable electricity others claimed.

The instruments are the user's: `MarketInstruments.from_config` reads the `[market]` table
of a joulemeter.toml.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from joulemeter.meter.errors import FactorError
from joulemeter.meter.tables import Citation
from joulemeter.meter.units import G_PER_KG, KWH_PER_MWH

GUIDANCE = Citation(
    "GHG Protocol Scope 2 Guidance (WRI/WBCSD): dual reporting, ch. 4; location-based method, "
    "Table 6.2; market-based data hierarchy, Table 6.3", 2015,
    "https://ghgprotocol.org/scope-2-guidance",
)


@dataclass(frozen=True)
class Certificate:
    """Energy attribute certificates held for the period: how many MWh, at what factor (0 for wind)."""

    name: str
    mwh: float
    factor_g_per_kwh: float = 0.0


@dataclass(frozen=True)
class MarketInstruments:
    """What the market-based method needs, as the user's contracts state it."""

    supplier_factor_g_per_kwh: float | None = None
    supplier: str | None = None  # the contract or disclosure the factor comes from
    residual_mix_g_per_kwh: float | None = None
    residual_mix_source: str | None = None  # e.g. "AIB European Residual Mixes 2024, DE"
    certificates: tuple[Certificate, ...] = ()

    def __post_init__(self) -> None:
        for name in ("supplier_factor_g_per_kwh", "residual_mix_g_per_kwh"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise FactorError(f"market instrument {name} = {value!r} must be a number ≥ 0 g CO2e/kWh")
        for c in self.certificates:
            if not (math.isfinite(c.mwh) and c.mwh >= 0 and math.isfinite(c.factor_g_per_kwh) and c.factor_g_per_kwh >= 0):
                raise FactorError(f"certificate {c.name!r}: mwh and factor_g_per_kwh must be numbers ≥ 0")

    @property
    def certificate_kwh(self) -> float:
        """kWh that all the certificates together cover."""
        return sum(c.mwh for c in self.certificates) * KWH_PER_MWH

    @classmethod
    def from_config(cls, market: Mapping[str, Any]) -> MarketInstruments:
        """From a joulemeter.toml `[market]` table (keys as this class's fields; certificates a list)."""
        known = {"supplier_factor_g_per_kwh", "supplier", "residual_mix_g_per_kwh", "residual_mix_source",
                 "certificates"}
        unknown = set(market) - known
        if unknown:
            raise FactorError(f"[market] has unknown keys {sorted(unknown)}; the keys are {sorted(known)}")
        try:
            certificates = tuple(
                Certificate(str(c.get("name", "certificates")), float(c["mwh"]), float(c.get("factor_g_per_kwh", 0.0)))
                for c in market.get("certificates", ())
            )
            numbers = {k: None if market.get(k) is None else float(market[k])
                       for k in ("supplier_factor_g_per_kwh", "residual_mix_g_per_kwh")}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise FactorError(f"[market] cannot be read ({exc!r}): each certificate needs mwh, "
                              "factors are numbers in g CO2e/kWh") from None
        return cls(**numbers, supplier=market.get("supplier"),
                   residual_mix_source=market.get("residual_mix_source"), certificates=certificates)


@dataclass(frozen=True)
class Scope2:
    """Location- and market-based kg CO2e of one facility energy, with ranges; never summed.

    With no market instrument the market-based figure falls back to the grid average, as the
    Guidance's hierarchy does in the end, and `market_basis` says so.
    """

    facility_kwh: float
    location_kg: float
    location_kg_range: tuple[float, float] | None
    location_intensity_g_per_kwh: float
    location_basis: str  # where the grid figure comes from
    market_kg: float
    market_kg_range: tuple[float, float] | None
    market_intensity_g_per_kwh: float  # effective: market kg ÷ facility kWh
    market_basis: str  # the instruments used, in the order of the Guidance's hierarchy
    guidance: Citation = GUIDANCE

    def to_dict(self) -> dict[str, Any]:
        return {
            "facility_kwh": self.facility_kwh,
            "location_based": {"kg_co2e": self.location_kg, "kg_co2e_range": _listed(self.location_kg_range),
                               "intensity_g_per_kwh": self.location_intensity_g_per_kwh,
                               "basis": self.location_basis},
            "market_based": {"kg_co2e": self.market_kg, "kg_co2e_range": _listed(self.market_kg_range),
                             "intensity_g_per_kwh": self.market_intensity_g_per_kwh,
                             "basis": self.market_basis},
            "guidance": self.guidance.to_dict(),
        }


def _listed(pair: tuple[float, float] | None) -> list[float] | None:
    return None if pair is None else list(pair)


def scope2_of(
    facility_kwh: float,
    kwh_range: tuple[float, float] | None,
    location_intensity_g_per_kwh: float,
    location_basis: str,
    market: MarketInstruments | None,
    certificate_kwh: float | None = None,
) -> Scope2:
    """Both Scope 2 figures of `facility_kwh`. `certificate_kwh`: the kWh of certificates this
    use is allotted (allocate_certificates), by default as many of `market`'s as it needs."""
    location_kg = facility_kwh * location_intensity_g_per_kwh / G_PER_KG
    location_range = _scaled(kwh_range, location_intensity_g_per_kwh)
    market = market or MarketInstruments()
    available = market.certificate_kwh if certificate_kwh is None else certificate_kwh
    covered = min(facility_kwh, max(available, 0.0))
    parts: list[str] = []
    grams = 0.0
    if covered > 0:
        grams += covered * _certificate_factor(market)
        names = ", ".join(c.name for c in market.certificates)
        parts.append(f"{covered:.4g} kWh covered by certificates ({names})")
    rest = facility_kwh - covered
    if rest > 0 or not parts:
        factor, words = _rest_factor(market, location_intensity_g_per_kwh)
        grams += rest * factor
        parts.append(f"{'the rest' if covered else 'all'} at {words}")
    intensity = grams / facility_kwh if facility_kwh > 0 else _rest_factor(market, location_intensity_g_per_kwh)[0]
    return Scope2(facility_kwh, location_kg, location_range, location_intensity_g_per_kwh, location_basis,
                  grams / G_PER_KG, _scaled(kwh_range, intensity), intensity, "; ".join(parts))


def allocate_certificates(market: MarketInstruments, kwh_by_use: Mapping[str, float]) -> dict[str, float]:
    """Certificate kWh allotted to each use in proportion to its kWh, never more than it used."""
    total = sum(kwh_by_use.values())
    if total <= 0:
        return {key: 0.0 for key in kwh_by_use}
    share = min(market.certificate_kwh / total, 1.0)
    return {key: kwh * share for key, kwh in kwh_by_use.items()}


def _certificate_factor(market: MarketInstruments) -> float:
    """The certificates' factor, weighted by their MWh."""
    mwh = sum(c.mwh for c in market.certificates)
    return sum(c.mwh * c.factor_g_per_kwh for c in market.certificates) / mwh if mwh else 0.0


def _rest_factor(market: MarketInstruments, grid_g_per_kwh: float) -> tuple[float, str]:
    """The factor for electricity no certificate covers, by the Guidance's hierarchy, in words."""
    if market.supplier_factor_g_per_kwh is not None:
        who = f" ({market.supplier})" if market.supplier else ""
        return market.supplier_factor_g_per_kwh, f"the supplier's factor {market.supplier_factor_g_per_kwh:g} g/kWh{who}"
    if market.residual_mix_g_per_kwh is not None:
        where = f" ({market.residual_mix_source})" if market.residual_mix_source else ""
        return market.residual_mix_g_per_kwh, f"the residual mix {market.residual_mix_g_per_kwh:g} g/kWh{where}"
    return grid_g_per_kwh, (f"the grid average {grid_g_per_kwh:.4g} g/kWh: no supplier factor or residual mix "
                            "given, the Guidance's last resort (it double counts renewables claimed by others)")


def _scaled(kwh_range: tuple[float, float] | None, g_per_kwh: float) -> tuple[float, float] | None:
    if kwh_range is None:
        return None
    return kwh_range[0] * g_per_kwh / G_PER_KG, kwh_range[1] * g_per_kwh / G_PER_KG
