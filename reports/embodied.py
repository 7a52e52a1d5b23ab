"""Embodied emissions: the manufacturing CO2e of the hardware a run used, amortised per device-hour.

    kg CO2e per device-hour = footprint ÷ devices it covers ÷ (life in years × hours a year × utilization)

Footprints come from `reports/data/embodied.csv`, each row with its source, life and
utilization (BLOOM's method, Luccioni et al. 2023, §4.1). The range runs from the row's
service life to its shorter one (a shorter life charges more per hour); a life or
utilization given by the user replaces the row's and the range closes on it. Hardware
with no footprint in the file is a gap, named, never a guess.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from joulemeter.meter.errors import FactorError, UnknownHardwareError
from joulemeter.meter.run import Run
from joulemeter.meter.tables import Citation
from joulemeter.meter.units import HOURS_PER_YEAR, S_PER_HOUR
from joulemeter.reports.estimates import find_hardware
from joulemeter.reports.factors import data_table

#: Vendor words that NVML and ROCm put before a model name ("NVIDIA H100 80GB HBM3")
_VENDOR_PREFIXES = ("nvidia ", "tesla ", "amd ", "google ")


@dataclass(frozen=True)
class EmbodiedFootprint:
    """A row of embodied.csv: the manufacturing CO2e of one part, the devices it serves, and
    the life and utilization its source amortises it over."""

    key: str
    hardware: str  # a name in hardware.csv
    part: Literal["gpu", "server"]  # the device itself, or the share of its host server
    kg_co2e: float
    devices_per_unit: int  # devices that share the footprint (8 GPUs to a server)
    life_years: float
    life_years_short: float
    utilization: float
    citation: Citation


@dataclass(frozen=True)
class Assumptions:
    """What the user overrides: service life (years), utilization (0–1), and footprints
    (hardware name -> kg CO2e per device, replacing the file's rows for that hardware)."""

    life_years: float | None = None
    utilization: float | None = None
    kg_co2e_per_device: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.life_years is not None and not self.life_years > 0:
            raise FactorError(f"service life {self.life_years} years must be above 0", parameter="life_years")
        if self.utilization is not None and not 0 < self.utilization <= 1:
            raise FactorError(f"utilization {self.utilization} must lie above 0 and at most 1",
                              parameter="utilization")
        for name, kg in self.kg_co2e_per_device.items():
            if not kg >= 0:
                raise FactorError(f"embodied footprint of {name}: {kg} kg CO2e is negative or not a number")


@dataclass(frozen=True)
class Rate:
    """Embodied kg CO2e per device-hour of one hardware, with its range and where it comes from."""

    hardware: str
    kg_per_device_hour: float
    range_kg_per_device_hour: tuple[float, float]
    method: str  # the arithmetic, in words
    citations: tuple[Citation, ...]  # empty for a user-given footprint

    def to_dict(self) -> dict[str, Any]:
        return {"hardware": self.hardware, "kg_per_device_hour": self.kg_per_device_hour,
                "range_kg_per_device_hour": list(self.range_kg_per_device_hour), "method": self.method,
                "citations": [c.to_dict() for c in self.citations]}


@dataclass(frozen=True)
class Embodied:
    """Embodied CO2e of some device-hours (estimated), and the devices no footprint covers."""

    kg_co2e: float
    kg_co2e_range: tuple[float, float]
    device_hours: dict[str, float]  # hardware (or device name, for a gap) -> device-hours
    rates: dict[str, Rate]  # hardware -> its rate, for those covered
    gaps: dict[str, float]  # device names with no footprint -> their device-hours

    def to_dict(self) -> dict[str, Any]:
        return {"kg_co2e": self.kg_co2e, "kg_co2e_range": list(self.kg_co2e_range),
                "provenance": "estimated", "device_hours": self.device_hours,
                "rates": {k: r.to_dict() for k, r in self.rates.items()}, "gaps": self.gaps}


@functools.cache
def footprints() -> tuple[EmbodiedFootprint, ...]:
    """Every row of embodied.csv, in file order."""
    return data_table("embodied.csv", EmbodiedFootprint)


@functools.cache
def hardware_for_device(device: str) -> str | None:
    """The hardware.csv name of a device as a source names it ("NVIDIA A100-SXM4-80GB" -> "A100-SXM"),
    None when the table does not know it."""
    candidates = [device]
    lowered = device.lower()
    for prefix in _VENDOR_PREFIXES:
        if lowered.startswith(prefix):
            candidates.append(device[len(prefix):])
    for candidate in candidates:
        try:
            return find_hardware(candidate).name
        except UnknownHardwareError:
            continue
    return None


def rate(hardware: str, assumptions: Assumptions | None = None) -> Rate | None:
    """kg CO2e per device-hour of `hardware` (a hardware.csv name), None without a footprint."""
    assumptions = assumptions or Assumptions()
    rows = [r for r in footprints() if r.hardware == hardware]
    given = assumptions.kg_co2e_per_device.get(hardware)
    if given is None and not rows:
        return None
    if given is not None:  # one footprint per device replaces the file's parts
        life = assumptions.life_years or (rows[0].life_years if rows else None)
        use = assumptions.utilization or (rows[0].utilization if rows else None)
        if life is None or use is None:
            raise FactorError(
                f"a footprint was given for {hardware}, which embodied.csv does not cover: give its "
                "service life and utilization too, they are part of the estimate", parameter="life_years")
        per_hour = given / (life * HOURS_PER_YEAR * use)
        method = f"{given:g} kg CO2e (given) ÷ ({life:g} years × {HOURS_PER_YEAR:g} h × {use:g} utilization)"
        return Rate(hardware, per_hour, (per_hour, per_hour), method, ())
    central = low = high = 0.0
    methods = []
    for row in rows:
        use = assumptions.utilization if assumptions.utilization is not None else row.utilization
        lives = ((assumptions.life_years,) * 2 if assumptions.life_years is not None
                 else (row.life_years, row.life_years_short))
        per_device = row.kg_co2e / row.devices_per_unit
        central += per_device / (lives[0] * HOURS_PER_YEAR * use)
        low += per_device / (max(lives) * HOURS_PER_YEAR * use)
        high += per_device / (min(lives) * HOURS_PER_YEAR * use)
        share = "" if row.devices_per_unit == 1 else f" ÷ {row.devices_per_unit} devices"
        methods.append(f"{row.part}: {row.kg_co2e:g} kg CO2e{share} ÷ ({lives[0]:g} years × "
                       f"{HOURS_PER_YEAR:g} h × {use:g} utilization)")
    return Rate(hardware, central, (low, high), "; ".join(methods), tuple(dict.fromkeys(r.citation for r in rows)))


def embodied_of_devices(
    device_hours: Mapping[str, float], assumptions: Assumptions | None = None
) -> Embodied:
    """Embodied CO2e of device-hours given by device name (as domains name them)."""
    total = low = high = 0.0
    hours: dict[str, float] = {}
    rates: dict[str, Rate] = {}
    gaps: dict[str, float] = {}
    for device, device_h in device_hours.items():
        hardware = hardware_for_device(device)
        found = None if hardware is None else rate(hardware, assumptions)
        if found is None:
            gaps[device] = gaps.get(device, 0.0) + device_h
            continue
        assert hardware is not None
        rates[hardware] = found
        hours[hardware] = hours.get(hardware, 0.0) + device_h
        total += device_h * found.kg_per_device_hour
        low += device_h * found.range_kg_per_device_hour[0]
        high += device_h * found.range_kg_per_device_hour[1]
    return Embodied(total, (low, high), hours | gaps, rates, gaps)


def gpu_device_hours(run: Run) -> dict[str, float]:
    """Device-hours of each GPU model a run measured: its GPU domains × its duration."""
    hours = (run.duration_s or 0.0) / S_PER_HOUR
    out: dict[str, float] = {}
    for domain in run.domains:
        if domain.kind == "gpu":
            out[domain.device] = out.get(domain.device, 0.0) + hours
    return out


def embodied(run: Run, assumptions: Assumptions | None = None) -> Embodied:
    """Embodied CO2e of the GPUs a run used, over its duration (an estimate)."""
    return embodied_of_devices(gpu_device_hours(run), assumptions)
