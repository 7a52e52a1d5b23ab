"""The data model: Domain, Sample, Gap, Window, DomainEnergy and Run.

SI units throughout (J, W, s); times inside a run are seconds on a monotonic clock
from the run's start, wall-clock timestamps are ISO 8601 in UTC. A value nobody
measured is None, never 0.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pandas is imported only by the *_frame() methods
    import pandas


class _Word(str, enum.Enum):
    """An enum that prints as its value ("estimated"), as users read it and the ledger stores it."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class Provenance(_Word):
    """How an energy figure was obtained, from most to least direct."""

    COUNTER = "counter"  # a hardware energy counter (NVML total energy, RAPL)
    SAMPLED = "sampled"  # power readings integrated over time
    REPLAYED = "replayed"  # a recorded power trace played back
    ESTIMATED = "estimated"  # a model (e.g. per-core power × utilisation)

    @property
    def rank(self) -> int:
        """Smaller is more direct; used to name the weakest provenance of a sum."""
        return list(Provenance).index(self)


class Status(_Word):
    """Life cycle of a run in the ledger."""

    RUNNING = "running"
    COMPLETED = "completed"
    INTERRUPTED = "interrupted"  # killed, SIGTERM, KeyboardInterrupt
    FAILED = "failed"  # the metered code raised


@dataclass(frozen=True)
class Domain:
    """One thing that draws power, e.g. `gpu:0`, `cpu:package-0`, `dram:0`, `ram`.

    `counter_range_j` is the value at which the domain's energy counter wraps
    (RAPL's max_energy_range_uj), None where it does not wrap or there is no counter.
    """

    name: str
    kind: str  # "gpu", "cpu", "dram", "ram", "psys"
    device: str  # human name of the hardware, e.g. "NVIDIA H100 80GB HBM3"
    provenance: Provenance
    method: str  # how it is measured, in words, e.g. "NVML total energy counter"
    counter_range_j: float | None = None
    note: str | None = None  # e.g. "MIG instance: power and energy are board-level"

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["provenance"] = self.provenance.value
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Domain:
        return cls(**{**d, "provenance": Provenance(d["provenance"])})


@dataclass(frozen=True)
class Sample:
    """One reading of one domain.

    `t_s` is seconds since the run started (monotonic). `power_w` is the power the
    source reported (None if it gives none). `energy_j` is the domain's cumulative
    energy since the run started: counter deltas where there is a counter, else the
    integral of power; None while the domain is in a gap.
    """

    t_s: float
    domain: str
    power_w: float | None
    energy_j: float | None


@dataclass(frozen=True)
class Gap:
    """A span in which a domain could not be read (GPU lost, counter reset, read error)."""

    domain: str
    start_s: float
    end_s: float | None  # None: the domain never came back before the run ended
    reason: str


@dataclass
class Window:
    """A named span (a phase like `train`, or a step) with its energy and units of work.

    `path` names the window within its parents ("train/epoch-2"); a repeated name gets
    one Window per occurrence. `energy_j` maps domain name to joules.
    """

    name: str
    path: str
    start_s: float
    end_s: float | None = None
    energy_j: dict[str, float] = field(default_factory=dict)
    units: dict[str, float] = field(default_factory=dict)
    note: str | None = None

    @property
    def duration_s(self) -> float | None:
        return None if self.end_s is None else self.end_s - self.start_s

    @property
    def total_energy_j(self) -> float:
        return sum(self.energy_j.values())

    def energy_per_unit_j(self, unit: str) -> float | None:
        """Joules per unit of work (`samples`, `tokens`, …), None if none were counted."""
        count = self.units.get(unit)
        if not count:
            return None
        return self.total_energy_j / count

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Window:
        return cls(**d)


@dataclass
class DomainEnergy:
    """Energy and power of one domain over the whole run."""

    domain: str
    energy_j: float
    provenance: Provenance
    avg_power_w: float | None
    peak_power_w: float | None
    idle_power_w: float | None = None  # measured idle baseline, None if not measured

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["provenance"] = self.provenance.value
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DomainEnergy:
        return cls(**{**d, "provenance": Provenance(d["provenance"])})


@dataclass
class Run:
    """One metered run: its identity, hardware, energy per domain, windows and samples."""

    id: str
    name: str
    project: str = "default"
    tags: list[str] = field(default_factory=list)
    status: Status = Status.RUNNING
    started_at: str = ""  # ISO 8601 UTC
    ended_at: str | None = None
    duration_s: float | None = None
    interval_s: float = 0.1
    host: dict[str, Any] = field(default_factory=dict)  # hostname, os, cpu, gpus, …
    domains: list[Domain] = field(default_factory=list)
    energy: dict[str, DomainEnergy] = field(default_factory=dict)
    windows: list[Window] = field(default_factory=list)
    units: dict[str, float] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    # -- figures -------------------------------------------------------------
    @property
    def total_energy_j(self) -> float:
        """Energy of every domain added up (J)."""
        return sum(e.energy_j for e in self.energy.values())

    @property
    def idle_energy_j(self) -> float | None:
        """Energy the idle baseline would have drawn over the run, None if not measured."""
        idle = [e.idle_power_w for e in self.energy.values() if e.idle_power_w is not None]
        if not idle or self.duration_s is None:
            return None
        return sum(idle) * self.duration_s

    @property
    def attributable_energy_j(self) -> float | None:
        """Total minus idle baseline, floored at 0; None without a baseline."""
        idle = self.idle_energy_j
        return None if idle is None else max(self.total_energy_j - idle, 0.0)

    @property
    def avg_power_w(self) -> float | None:
        if not self.duration_s:
            return None
        return self.total_energy_j / self.duration_s

    @property
    def peak_power_w(self) -> float | None:
        """Highest total power over sampling ticks (domains read at one tick share t_s)."""
        by_tick: dict[float, float] = {}
        for s in self.samples:
            if s.power_w is not None:
                by_tick[s.t_s] = by_tick.get(s.t_s, 0.0) + s.power_w
        return max(by_tick.values()) if by_tick else None

    @property
    def provenance(self) -> Provenance | None:
        """The least direct provenance among the domains: what the total can claim."""
        kinds = [e.provenance for e in self.energy.values()]
        return max(kinds, key=lambda p: p.rank) if kinds else None

    def energy_by_kind_j(self) -> dict[str, float]:
        """Energy summed per domain kind (gpu, cpu, dram, ram, …)."""
        kinds = {d.name: d.kind for d in self.domains}
        out: dict[str, float] = {}
        for name, e in self.energy.items():
            kind = kinds.get(name, name.split(":")[0])
            out[kind] = out.get(kind, 0.0) + e.energy_j
        return out

    def energy_per_unit_j(self, unit: str) -> float | None:
        """Joules per unit of work over the whole run, None if none were counted."""
        count = self.units.get(unit)
        if not count:
            return None
        return self.total_energy_j / count

    # -- frames --------------------------------------------------------------
    def samples_frame(self) -> pandas.DataFrame:
        """Samples as a DataFrame: t_s, domain, power_w, energy_j."""
        import pandas

        return pandas.DataFrame(
            [dataclasses.asdict(s) for s in self.samples],
            columns=["t_s", "domain", "power_w", "energy_j"],
        )

    def windows_frame(self) -> pandas.DataFrame:
        """One row per window and domain: name, path, start_s, end_s, domain, energy_j, units."""
        import pandas

        rows = []
        for w in self.windows:
            for domain, energy in (w.energy_j or {"": 0.0}).items():
                rows.append(
                    {
                        "name": w.name,
                        "path": w.path,
                        "start_s": w.start_s,
                        "end_s": w.end_s,
                        "duration_s": w.duration_s,
                        "domain": domain or None,
                        "energy_j": energy if domain else None,
                        **{f"units_{k}": v for k, v in w.units.items()},
                    }
                )
        return pandas.DataFrame(rows)

    # -- serialisation -------------------------------------------------------
    def to_dict(self, samples: bool = True) -> dict[str, Any]:
        """A JSON-ready dict; figures in SI units with their provenance."""
        return {
            "id": self.id,
            "name": self.name,
            "project": self.project,
            "tags": list(self.tags),
            "status": self.status.value,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "duration_s": self.duration_s,
            "interval_s": self.interval_s,
            "host": self.host,
            "domains": [d.to_dict() for d in self.domains],
            "energy": {k: v.to_dict() for k, v in self.energy.items()},
            "total_energy_j": self.total_energy_j,
            "total_provenance": self.provenance.value if self.provenance else None,
            "idle_energy_j": self.idle_energy_j,
            "attributable_energy_j": self.attributable_energy_j,
            "avg_power_w": self.avg_power_w,
            "peak_power_w": self.peak_power_w,
            "windows": [w.to_dict() for w in self.windows],
            "units": dict(self.units),
            "gaps": [dataclasses.asdict(g) for g in self.gaps],
            "metadata": self.metadata,
            "error": self.error,
            "samples": [dataclasses.asdict(s) for s in self.samples] if samples else None,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Run:
        """Inverse of to_dict (derived figures are recomputed, not read)."""
        return cls(
            id=d["id"],
            name=d["name"],
            project=d.get("project", "default"),
            tags=list(d.get("tags", [])),
            status=Status(d.get("status", "running")),
            started_at=d.get("started_at", ""),
            ended_at=d.get("ended_at"),
            duration_s=d.get("duration_s"),
            interval_s=d.get("interval_s", 0.1),
            host=dict(d.get("host", {})),
            domains=[Domain.from_dict(x) for x in d.get("domains", [])],
            energy={k: DomainEnergy.from_dict(v) for k, v in d.get("energy", {}).items()},
            windows=[Window.from_dict(x) for x in d.get("windows", [])],
            units=dict(d.get("units", {})),
            samples=[Sample(**x) for x in (d.get("samples") or [])],
            gaps=[Gap(**x) for x in d.get("gaps", [])],
            metadata=dict(d.get("metadata", {})),
            error=d.get("error"),
        )
