"""Intel Gaudi accelerators through `hl-smi`, where it is installed.

hl-smi's CSV query (Intel Gaudi docs, "System Management Interface Tool (hl-smi)": -Q /
--query-aip with the fields index, module_id, uuid, bus_id, name, power.draw; -f csv,noheader)
gives each device's power draw in W. hl-smi has no energy field, so power is integrated
by the meter (provenance sampled), and each reading is one hl-smi run (tens to hundreds of
ms: its duration is kept in `details`). HABANA_VISIBLE_MODULES, where set, limits the
devices to the module ids it lists (Intel Gaudi docs, "Multiple Workloads on a Single
Docker"). HLML's energy counter is not read (docs/accelerators.md).
"""

from __future__ import annotations

import csv
import logging
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

from joulemeter.meter.errors import SourceUnavailable
from joulemeter.meter.run import Domain, Provenance
from joulemeter.meter.sources.base import MEASURED, Reading, Source, register_source

log = logging.getLogger("joulemeter.sources.gaudi")

_FIELDS = ("index", "module_id", "uuid", "bus_id", "name", "power.draw")
_TIMEOUT_S = 5.0
_INSTALL_FIX = "install the Intel Gaudi software stack (habanalabs-firmware-tools provides hl-smi) and put hl-smi on PATH"


@dataclass
class _Device:
    domain: Domain
    uuid: str
    bus_id: str
    module_id: str
    lost: str | None = None


@dataclass
class _Timing:
    calls: int = 0
    total_s: float = 0.0
    max_s: float = 0.0
    failures: list[str] = field(default_factory=list)


@register_source("gpu", label="Gaudi hl-smi", preference=MEASURED + 3)
class GaudiSource(Source):
    """Intel Gaudi devices read through hl-smi; `executable` (default: hl-smi on PATH) can be swapped."""

    name = "hl-smi"

    def __init__(self, executable: str | None = None) -> None:
        self.executable = executable
        self._command: list[str] = []
        self._devices: list[_Device] = []
        self._timing = _Timing()

    def open(self) -> list[Domain]:
        executable = self.executable or shutil.which("hl-smi")
        if executable is None:
            raise SourceUnavailable(self.name, "hl-smi is not installed (no Intel Gaudi software here)", _INSTALL_FIX,
                                    absent=True)
        self._command = [executable, "-Q", ",".join(_FIELDS), "-f", "csv,noheader"]
        try:
            rows = self._query()
        except _QueryError as exc:
            raise SourceUnavailable(self.name, str(exc), "check that `hl-smi` works for this user") from None
        visible = os.environ.get("HABANA_VISIBLE_MODULES")
        wanted = None if visible is None else [m.strip() for m in visible.split(",") if m.strip()]
        rows = [r for r in rows if wanted is None or r["module_id"] in wanted]
        if not rows:
            raise SourceUnavailable(self.name, "HABANA_VISIBLE_MODULES hides every Gaudi device" if wanted is not None
                                    else "hl-smi lists no Gaudi device", None)
        self._devices = [
            _Device(Domain(name=f"gpu:{n}", kind="gpu", device=f"Intel Gaudi {r['name']}".strip(),
                           provenance=Provenance.SAMPLED,
                           method="hl-smi power.draw integrated over time (one hl-smi run per reading)",
                           vendor="habana"), r["uuid"], r["bus_id"], r["module_id"])
            for n, r in enumerate(rows)
        ]
        return [d.domain for d in self._devices]

    def read(self) -> list[Reading]:
        try:
            rows = {r["uuid"]: r for r in self._query()}
        except _QueryError as exc:
            self._timing.failures.append(str(exc))
            return [Reading(d.domain.name, error=str(exc)) for d in self._devices]
        readings = []
        for device in self._devices:
            name = device.domain.name
            row = rows.get(device.uuid)
            if row is None:
                device.lost = device.lost or f"device {device.bus_id} no longer listed by hl-smi (lost or reset)"
                readings.append(Reading(name, error=device.lost))
                continue
            power_w = _watts(row["power.draw"])
            readings.append(Reading(name, power_w=power_w) if power_w is not None
                            else Reading(name, error=f"hl-smi power.draw is {row['power.draw']!r}"))
        return readings

    def close(self) -> None:
        self._devices = []

    def keep(self, names: set[str]) -> None:
        self._devices = [d for d in self._devices if d.domain.name in names]

    def details(self, t0_s: float) -> dict[str, dict[str, Any]]:
        t = self._timing
        timing = {"calls": t.calls, "mean_s": round(t.total_s / t.calls, 4) if t.calls else None,
                  "max_s": round(t.max_s, 4), "failures": t.failures[-5:]}
        return {d.domain.name: {"uuid": d.uuid, "bus_id": d.bus_id, "module_id": d.module_id,
                                "lost": d.lost, "hl_smi": timing} for d in self._devices}

    def _query(self) -> list[dict[str, str]]:
        """One hl-smi run: a row per device, fields by name."""
        start = time.monotonic()
        try:
            done = subprocess.run(self._command, capture_output=True, text=True, timeout=_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise _QueryError(f"hl-smi failed: {exc}") from None
        finally:
            spent = time.monotonic() - start
            self._timing.calls += 1
            self._timing.total_s += spent
            self._timing.max_s = max(self._timing.max_s, spent)
        if done.returncode != 0:
            raise _QueryError(f"hl-smi exited with {done.returncode}: {(done.stderr or done.stdout).strip()[:200]}")
        rows = []
        for values in csv.reader(line for line in done.stdout.splitlines() if line.strip()):
            if len(values) != len(_FIELDS):
                raise _QueryError(f"hl-smi gave a row of {len(values)} fields, not {len(_FIELDS)}: {values!r}")
            rows.append(dict(zip(_FIELDS, (v.strip() for v in values))))
        return rows


class _QueryError(Exception):
    """hl-smi could not be run or its output not understood."""


def _watts(text: str) -> float | None:
    """"98 W" or "98" (nounits) in W; None for "N/A" and the like."""
    number = text.removesuffix("W").strip()
    try:
        value = float(number)
    except ValueError:
        return None
    return value if value >= 0 else None
