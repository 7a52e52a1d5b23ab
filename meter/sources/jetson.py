"""NVIDIA Jetson modules through the power rails of their INA3221 monitors in sysfs, as Zeus reads them.

Every official Jetson module has at least one INA3221 measuring three rails (Jetson Linux
Developer Guide, "Platform Power and Performance", software-based power consumption
modelling; Zeus zeus/device/soc/jetson.py). Two driver layouts exist:
- JetPack 5 and later, hwmon driver `ina3221`: inN_label names the rail, inN_input is the
  bus voltage in mV and currN_input the current in mA (Linux Documentation/hwmon/ina3221.rst);
- L4T 32, IIO driver `ina3221x`: rail_name_N names it, in_powerN_input is its power in mW.
Power is read per tick and integrated by the meter (provenance sampled). Rails are mapped
by name: one with GPU in it is the GPU (gpu:0; where it also feeds the CPU, as
VDD_CPU_GPU_CV on Orin NX/Nano, the CPU is covered by it); one with CPU alone is the CPU.
The module's input rail (VDD_IN, VIN_SYS_5V0, POM_5V_IN) and SoC or memory rails overlap or
sit beside those: they are listed in `details`, never added.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joulemeter.meter.errors import SourceUnavailable
from joulemeter.meter.run import Domain, Provenance
from joulemeter.meter.sources.base import MEASURED, Reading, Source, register_source
from joulemeter.meter.sources.rapl import read_sysfs
from joulemeter.meter.units import W_PER_MILLIWATT

log = logging.getLogger("joulemeter.sources.jetson")

DEFAULT_ROOT = Path("/sys/bus/i2c/drivers")
_LABEL = re.compile(r"in(\d+)_label")
_RAIL_NAME = re.compile(r"rail_name_(\d+)")


@dataclass(frozen=True)
class _Rail:
    """One INA3221 channel: its rail name and how to read its power in mW."""

    name: str
    files: tuple[Path, ...]  # (power mW,) or (voltage mV, current mA)

    def power_w(self, read_text: Callable[[Path], str]) -> float:
        values = [float(read_text(f)) for f in self.files]
        milliwatts = values[0] if len(values) == 1 else values[0] * values[1] / 1000.0  # mV × mA / 1000
        return milliwatts * W_PER_MILLIWATT


@register_source("gpu", "cpu", label="Jetson rails", preference=MEASURED + 4)
class JetsonSource(Source):
    """Jetson GPU and CPU rails; `root` (/sys/bus/i2c/drivers) and `read_text` can be swapped for tests."""

    name = "jetson"

    def __init__(self, root: Path | str | None = None, read_text: Callable[[Path], str] | None = None) -> None:
        self.root = Path(root) if root is not None else DEFAULT_ROOT
        self._read_text = read_text or read_sysfs
        self._metered: list[tuple[Domain, _Rail]] = []
        self._others: list[str] = []
        self._covers: frozenset[str] = frozenset()

    def open(self) -> list[Domain]:
        rails = self._rails()
        if not rails:
            raise SourceUnavailable(
                self.name, "no INA3221 power monitor in sysfs (not a Jetson module)",
                f"on a Jetson, mount {self.root} into the container read-only", absent=True,
            )
        gpu = next((r for r in rails if "GPU" in r.name.upper()), None)
        cpu = next((r for r in rails if "CPU" in r.name.upper() and "GPU" not in r.name.upper()), None)
        metered: list[tuple[Domain, _Rail]] = []
        shared = gpu is not None and "CPU" in gpu.name.upper()
        if gpu is not None:
            note = (f"rail {gpu.name} feeds the CPU, GPU and other engines together: the CPU is in this reading"
                    if shared else f"rail {gpu.name} includes the SoC" if "SOC" in gpu.name.upper() else None)
            metered.append((self._domain("gpu:0", "gpu", "Jetson GPU", gpu, note), gpu))
            self._covers = frozenset({"cpu"}) if shared else frozenset()
        if cpu is not None and not shared:  # a CPU rail beside a shared one would count the CPU twice
            note = f"rail {cpu.name} includes the CV accelerators" if "CV" in cpu.name.upper() else None
            metered.append((self._domain("cpu", "cpu", "Jetson CPU", cpu, note), cpu))
        if not metered:
            raise SourceUnavailable(self.name, f"no GPU or CPU rail among {[r.name for r in rails]}", None)
        for _, rail in metered:
            try:
                rail.power_w(self._read_text)
            except PermissionError:
                raise SourceUnavailable(self.name, f"{rail.files[0]} is not readable by this user",
                                        "run as root or add read access to the INA3221 files") from None
            except (OSError, ValueError) as exc:
                raise SourceUnavailable(self.name, f"cannot read rail {rail.name}: {exc}", None) from None
        self._metered = metered
        chosen = {r.name for _, r in metered}
        self._others = [r.name for r in rails if r.name not in chosen]
        return [d for d, _ in metered]

    def read(self) -> list[Reading]:
        readings = []
        for domain, rail in self._metered:
            try:
                readings.append(Reading(domain.name, power_w=rail.power_w(self._read_text)))
            except (OSError, ValueError) as exc:
                readings.append(Reading(domain.name, error=f"rail {rail.name} read failed: {exc}"))
        return readings

    def close(self) -> None:
        self._metered = []

    def keep(self, names: set[str]) -> None:
        self._metered = [(d, r) for d, r in self._metered if d.name in names]

    def covers(self) -> frozenset[str]:
        return self._covers if any(d.kind == "gpu" for d, _ in self._metered) else frozenset()

    def details(self, t0_s: float) -> dict[str, dict[str, Any]]:
        return {d.name: {"rail": r.name, "files": [str(f) for f in r.files], "rails_not_added": self._others}
                for d, r in self._metered}

    def _domain(self, name: str, kind: str, device: str, rail: _Rail, note: str | None) -> Domain:
        how = "in_power mW" if len(rail.files) == 1 else "bus mV × mA"
        return Domain(name=name, kind=kind, device=device, provenance=Provenance.SAMPLED,
                      method=f"INA3221 rail {rail.name} power ({how}) integrated over time",
                      note=note, vendor="nvidia")

    def _rails(self) -> list[_Rail]:
        """Every rail of every INA3221, in both driver layouts."""
        rails: list[_Rail] = []
        for hwmon in sorted(self.root.glob("ina3221/*/hwmon/hwmon*")):
            for label in sorted(p for p in hwmon.iterdir() if _LABEL.fullmatch(p.name)):
                k = _LABEL.fullmatch(label.name).group(1)  # type: ignore[union-attr]
                voltage, current = hwmon / f"in{k}_input", hwmon / f"curr{k}_input"
                if voltage.exists() and current.exists():
                    rails.append(_Rail(self._text(label), (voltage, current)))
        for iio in sorted(self.root.glob("ina3221x/*/iio:device*")):
            for rail_name in sorted(p for p in iio.iterdir() if _RAIL_NAME.fullmatch(p.name)):
                k = _RAIL_NAME.fullmatch(rail_name.name).group(1)  # type: ignore[union-attr]
                power = iio / f"in_power{k}_input"
                if power.exists():
                    rails.append(_Rail(self._text(rail_name), (power,)))
        return [r for r in rails if r.name]

    def _text(self, path: Path) -> str:
        try:
            return self._read_text(path).strip()
        except OSError:
            return ""
