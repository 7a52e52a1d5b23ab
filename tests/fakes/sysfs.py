"""A temporary /sys/class/powercap tree laid out as the Linux intel_rapl driver does."""

from __future__ import annotations

from pathlib import Path

# A range seen on real Intel packages (about 262 kJ); tests that wrap pass their own.
TYPICAL_RANGE_UJ = 262_143_328_850


def add_zone(
    parent: Path,
    zone: str,
    name: str,
    energy_uj: int = 0,
    max_energy_range_uj: int = TYPICAL_RANGE_UJ,
) -> Path:
    """Create zone directory `parent/zone` with its name, energy_uj and max_energy_range_uj."""
    zone_dir = parent / zone
    zone_dir.mkdir(parents=True)
    (zone_dir / "name").write_text(name + "\n")
    (zone_dir / "max_energy_range_uj").write_text(f"{max_energy_range_uj}\n")
    set_energy(zone_dir, energy_uj)
    return zone_dir


def set_energy(zone_dir: Path, energy_uj: int) -> None:
    """Set the zone's raw counter, as the hardware would."""
    (zone_dir / "energy_uj").write_text(f"{energy_uj}\n")


def two_socket_server(root: Path) -> dict[str, Path]:
    """Two packages with core, uncore and dram subzones, psys, and an MMIO mirror of package 0."""
    zones = {}
    for socket in (0, 1):
        package = add_zone(root, f"intel-rapl:{socket}", f"package-{socket}")
        zones[f"package-{socket}"] = package
        zones[f"core-{socket}"] = add_zone(package, f"intel-rapl:{socket}:0", "core")
        zones[f"uncore-{socket}"] = add_zone(package, f"intel-rapl:{socket}:1", "uncore")
        zones[f"dram-{socket}"] = add_zone(package, f"intel-rapl:{socket}:2", "dram")
    zones["psys"] = add_zone(root, "intel-rapl:2", "psys")
    zones["mmio"] = add_zone(root, "intel-rapl-mmio:0", "package-0")
    return zones
