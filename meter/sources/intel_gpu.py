"""Intel discrete GPUs (Data Center GPU Max, Arc) through the energy counter of their kernel driver.

The i915 and xe drivers expose the card's energy in hwmon sysfs: `energyN_input`, in µJ
(Linux hwmon sysfs ABI, Documentation/hwmon/sysfs-interface; i915:
Documentation/ABI/testing/sysfs-driver-intel-i915-hwmon, "energy1_input ... Energy input
of device in microjoules", kernel 6.2; xe: sysfs-driver-intel-xe-hwmon, channels labelled
"card" and "pkg" in energyN_label, kernel 6.8). The drivers accumulate the 32-bit
hardware register into a 64-bit value, so the file does not wrap in practice; a value that
goes back reads as a reset (a gap). The card channel is preferred (it includes memory);
else the package. Integrated GPUs have no such file: their draw is in the CPU package's
RAPL counter.

GPUs are numbered gpu:0, gpu:1, … in DRM card order; Level Zero's ZE_AFFINITY_MASK is not
applied (docs/accelerators.md). torch.xpu has no energy API; it is used to synchronise.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from joulemeter.meter.errors import SourceUnavailable
from joulemeter.meter.run import Domain, Provenance
from joulemeter.meter.sources.base import MEASURED, Reading, Source, register_source
from joulemeter.meter.sources.rapl import read_sysfs
from joulemeter.meter.units import J_PER_MICROJOULE

log = logging.getLogger("joulemeter.sources.intel_gpu")

DEFAULT_ROOT = Path("/sys/class/drm")
_DRIVERS = ("i915", "xe")
_CARD = re.compile(r"card(\d+)")
_ENERGY = re.compile(r"energy(\d+)_input")
_PERMISSION_FIX = (
    "run as root, or grant read access until the next reboot with "
    "`sudo chmod o+r /sys/class/drm/card*/device/hwmon/hwmon*/energy*_input` "
    "(a udev rule makes it permanent)"
)


@dataclass(frozen=True)
class _Card:
    domain: Domain
    energy_file: Path


@register_source("gpu", label="Intel GPU hwmon", preference=MEASURED + 2)
class IntelGpuSource(Source):
    """Intel GPU energy counters in hwmon; `root` (/sys/class/drm) and `read_text` can be swapped for tests."""

    name = "intel-gpu"

    def __init__(self, root: Path | str | None = None, read_text: Callable[[Path], str] | None = None) -> None:
        self.root = Path(root) if root is not None else DEFAULT_ROOT
        self._read_text = read_text or read_sysfs
        self._cards: list[_Card] = []
        self._lost: dict[str, str] = {}

    def open(self) -> list[Domain]:
        cards = self._find_cards()
        if not cards:
            raise SourceUnavailable(
                self.name,
                "no Intel GPU energy counter in hwmon (no i915/xe discrete GPU, or a kernel before 6.2)",
                "on a Data Center GPU Max or Arc card, use Linux 6.2 or later (xe: 6.8) and load i915 or xe; "
                f"in a container, mount {self.root} read-only", absent=True,
            )
        for card in cards:
            try:
                int(self._read_text(card.energy_file))
            except PermissionError:
                raise SourceUnavailable(self.name, f"{card.energy_file} is readable by root only",
                                        _PERMISSION_FIX) from None
            except (OSError, ValueError) as exc:
                raise SourceUnavailable(self.name, f"cannot read {card.energy_file}: {exc}", None) from None
        self._cards = cards
        return [c.domain for c in cards]

    def read(self) -> list[Reading]:
        readings = []
        for card in self._cards:
            name = card.domain.name
            if name in self._lost:
                readings.append(Reading(name, error=self._lost[name]))
                continue
            try:
                energy_j = int(self._read_text(card.energy_file)) * J_PER_MICROJOULE
            except FileNotFoundError:
                self._lost[name] = f"GPU lost: {card.energy_file} is gone (device removed or driver unbound)"
                log.warning("%s: %s", name, self._lost[name])
                readings.append(Reading(name, error=self._lost[name]))
                continue
            except (OSError, ValueError) as exc:
                readings.append(Reading(name, error=f"hwmon read failed: {exc}"))
                continue
            readings.append(Reading(name, energy_j=energy_j))
        return readings

    def read_counters(self) -> list[Reading]:
        """Every card is a counter: the same sysfs reads as a tick."""
        return [r for r in self.read() if r.energy_j is not None]

    def close(self) -> None:
        self._cards = []

    def keep(self, names: set[str]) -> None:
        self._cards = [c for c in self._cards if c.domain.name in names]

    def synchronize(self) -> None:
        """Wait for queued XPU work where torch already runs it here; never imports torch."""
        xpu = getattr(sys.modules.get("torch"), "xpu", None)
        try:
            if xpu is not None and xpu.is_initialized():
                xpu.synchronize()
        except Exception as exc:  # a torch without the XPU calls
            log.debug("torch.xpu cannot synchronise: %s", exc)

    # -- cards ---------------------------------------------------------------
    def _find_cards(self) -> list[_Card]:
        if not self.root.is_dir():
            return []
        cards = []
        for card_dir in sorted((p for p in self.root.iterdir() if _CARD.fullmatch(p.name)),
                               key=lambda p: int(p.name[len("card"):])):
            found = self._energy_file(card_dir / "device" / "hwmon")
            if found is None:
                continue
            energy_file, driver, channel = found
            index = len(cards)
            device = f"Intel GPU {self._pci_id(card_dir)} ({driver})"
            cards.append(_Card(Domain(
                name=f"gpu:{index}", kind="gpu", device=device, provenance=Provenance.COUNTER,
                method=f"{driver} hwmon energy counter ({channel}, {energy_file.name})", vendor="intel",
                note=None if channel == "card" else "package channel only: the card's memory is not included",
            ), energy_file))
        return cards

    def _energy_file(self, hwmon_root: Path) -> tuple[Path, str, str] | None:
        """(energy file, driver, channel) of an i915/xe hwmon: the card channel, else the first."""
        if not hwmon_root.is_dir():
            return None
        for hwmon in sorted(hwmon_root.iterdir()):
            try:
                driver = self._read_text(hwmon / "name").strip()
            except OSError:
                continue
            if driver not in _DRIVERS:
                continue
            files = sorted((p for p in hwmon.iterdir() if _ENERGY.fullmatch(p.name)), key=lambda p: p.name)
            labelled = [(f, self._label(f)) for f in files]
            for energy_file, label in sorted(labelled, key=lambda fl: fl[1] != "card"):
                return energy_file, driver, label
        return None

    def _label(self, energy_file: Path) -> str:
        """The channel's label ("card", "pkg"); i915's single channel has none and is the card's."""
        try:
            return self._read_text(energy_file.with_name(energy_file.name.replace("_input", "_label"))).strip()
        except OSError:
            return "card"

    def _pci_id(self, card_dir: Path) -> str:
        try:
            vendor = self._read_text(card_dir / "device" / "vendor").strip().removeprefix("0x")
            device = self._read_text(card_dir / "device" / "device").strip().removeprefix("0x")
        except OSError:
            return card_dir.name
        return f"PCI {vendor}:{device}"
