"""CPU packages and DRAM through RAPL energy counters in Linux powercap sysfs.

Zones overlap, so only a set that never counts the same joule twice is metered:

- `intel-rapl:N` named `package-K` -> domain `cpu:package-K` (kind cpu);
- its subzone named `dram` -> domain `dram:K` (kind dram) — DRAM sits outside the package;
- `core` and `uncore` subzones are parts of the package: skipped;
- `psys` covers the packages and more of the platform: metered as `psys` only when there
  is no package zone, never added to packages;
- `intel-rapl-mmio:*` mirrors the package zone through MMIO: skipped.

AMD processors with a RAPL-capable kernel show up through the same `intel-rapl` zones.
Counters are raw microjoules that wrap at max_energy_range_uj; the meter unwraps them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from joulemeter.meter.errors import SourceUnavailable
from joulemeter.meter.run import Domain, Provenance
from joulemeter.meter.sources.base import Reading, Source, register_source
from joulemeter.meter.units import J_PER_MICROJOULE

log = logging.getLogger("joulemeter.sources.rapl")

DEFAULT_ROOT = Path("/sys/class/powercap")
_ZONE = re.compile(r"intel-rapl:(\d+)")
_PERMISSION_FIX = (
    "run as root, or grant read access until the next reboot with "
    "`sudo chmod o+r /sys/class/powercap/intel-rapl:*/energy_uj "
    "/sys/class/powercap/intel-rapl:*/intel-rapl:*/energy_uj` "
    "(a udev rule or systemd-tmpfiles entry makes it permanent)"
)


def read_sysfs(path: Path) -> str:
    """Text of one sysfs attribute file."""
    return path.read_text()


@dataclass(frozen=True)
class _Zone:
    domain: Domain
    energy_file: Path


@register_source("cpu", "ram", label="RAPL")
class RaplSource(Source):
    """RAPL package and DRAM counters; `root` and `read_text` can be swapped for tests."""

    name = "rapl"

    def __init__(
        self,
        root: Path | str | None = None,
        read_text: Callable[[Path], str] | None = None,
    ) -> None:
        self.root = Path(root) if root is not None else DEFAULT_ROOT
        self._read_text = read_text or read_sysfs
        self._zones: list[_Zone] = []

    def open(self) -> list[Domain]:
        zones = self._find_zones()
        if not zones:
            raise SourceUnavailable(
                self.name,
                "no RAPL powercap interface (common in VMs and containers)",
                f"on bare metal, load the intel_rapl_common kernel module; in a container, "
                f"mount {self.root} read-only; otherwise CPU power is estimated",
            )
        for zone in zones:
            try:
                self._read_text(zone.energy_file)
            except PermissionError:
                raise SourceUnavailable(
                    self.name,
                    f"{zone.energy_file} is readable by root only "
                    "(Linux 5.10 and later restrict it, CVE-2020-8694)",
                    _PERMISSION_FIX,
                ) from None
            except OSError as exc:
                raise SourceUnavailable(
                    self.name, f"cannot read {zone.energy_file}: {exc.strerror or exc}", None
                ) from None
        self._zones = zones
        return [z.domain for z in zones]

    def read(self) -> list[Reading]:
        readings = []
        for zone in self._zones:
            try:
                energy_j = int(self._read_text(zone.energy_file)) * J_PER_MICROJOULE
            except (OSError, ValueError) as exc:
                readings.append(Reading(zone.domain.name, error=f"RAPL read failed: {exc}"))
                continue
            readings.append(Reading(zone.domain.name, energy_j=energy_j))
        return readings

    def read_counters(self) -> list[Reading]:
        """Every zone is a counter: the same sysfs reads as a tick."""
        return self.read()

    def close(self) -> None:
        self._zones = []

    # -- zones ---------------------------------------------------------------
    def _find_zones(self) -> list[_Zone]:
        """Package and DRAM zones, or psys alone when there is no package (see module doc)."""
        if not self.root.is_dir():
            return []
        packages: list[_Zone] = []
        drams: list[_Zone] = []
        psys: list[_Zone] = []
        for top in _numbered(self.root, _ZONE):
            name = self._zone_name(top)
            if name is None:
                continue
            if name.startswith("package-"):
                socket = name.removeprefix("package-")
                packages.append(self._zone(top, f"cpu:{name}", "cpu", f"CPU package {socket}"))
                subzone = re.compile(rf"intel-rapl:{_index(top)}:(\d+)")
                for sub in _numbered(top, subzone):
                    if self._zone_name(sub) == "dram":
                        device = f"DRAM of package {socket}"
                        drams.append(self._zone(sub, f"dram:{socket}", "dram", device))
            elif name == "psys":
                psys.append(self._zone(top, "psys", "psys", "platform (psys)"))
            elif name == "dram":  # some servers expose DRAM as a top-level zone
                drams.append(self._zone(top, f"dram:{_index(top)}", "dram", f"DRAM {_index(top)}"))
        if packages:
            return packages + drams
        return psys[:1] + drams

    def _zone_name(self, zone_dir: Path) -> str | None:
        try:
            return self._read_text(zone_dir / "name").strip()
        except OSError:
            log.debug("no readable name in %s", zone_dir)
            return None

    def _zone(self, zone_dir: Path, name: str, kind: str, device: str) -> _Zone:
        return _Zone(
            Domain(
                name=name,
                kind=kind,
                device=device,
                provenance=Provenance.COUNTER,
                method=f"RAPL energy counter ({zone_dir.name}/energy_uj)",
                counter_range_j=self._range_j(zone_dir),
            ),
            zone_dir / "energy_uj",
        )

    def _range_j(self, zone_dir: Path) -> float | None:
        """Where the counter wraps, in J; None if unreadable (a wrap then reads as a reset)."""
        try:
            return int(self._read_text(zone_dir / "max_energy_range_uj")) * J_PER_MICROJOULE
        except (OSError, ValueError):
            return None


def _numbered(parent: Path, pattern: re.Pattern[str]) -> list[Path]:
    """Entries of `parent` whose whole name matches `pattern`, by their last number."""
    found = [p for p in parent.iterdir() if pattern.fullmatch(p.name)]
    return sorted(found, key=lambda p: int(p.name.rsplit(":", 1)[1]))


def _index(zone_dir: Path) -> str:
    return zone_dir.name.rsplit(":", 1)[1]
