"""The data model: Domain, Location, Sample, Gap, Window, DomainEnergy and Run.

SI units throughout (J, W, s); times inside a run are seconds on a monotonic clock
from the run's start, wall-clock timestamps are ISO 8601 in UTC. A value nobody
measured is None, never 0.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # pandas is imported only by the *_frame() methods
    import pandas

T = TypeVar("T")


class _Word(str, enum.Enum):
    """An enum that prints as its value ("estimated"), as users read it and the ledger stores it."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class Provenance(_Word):
    """How an energy figure was obtained, from most to least direct.

    A domain is one of the first four; MIXED and PUBLISHED describe footprints only.
    """

    COUNTER = "counter"  # a hardware energy counter (NVML total energy, RAPL)
    SAMPLED = "sampled"  # power readings integrated over time
    REPLAYED = "replayed"  # a recorded power trace played back
    ESTIMATED = "estimated"  # a model (e.g. per-core power × utilisation)
    MIXED = "mixed"  # a total over domains obtained in different ways
    PUBLISHED = "published"  # a figure a paper or model card reported, by a method not ours to check

    @property
    def rank(self) -> int:
        """Smaller is more direct; used to name the weakest provenance of a sum.

        MIXED and PUBLISHED rank after the domain kinds: neither can claim more than those.
        """
        return list(Provenance).index(self)


class Status(_Word):
    """Life cycle of a run in the ledger."""

    RUNNING = "running"
    COMPLETED = "completed"
    INTERRUPTED = "interrupted"  # killed, SIGTERM, KeyboardInterrupt
    FAILED = "failed"  # the metered code raised


# -- records <-> plain data ------------------------------------------------------------
def fields_dict(record: Any, names: Iterable[str] | None = None) -> dict[str, Any]:
    """A dataclass's fields (all, or those in `names`) as JSON-ready data, by field name."""
    if names is None:
        names = [f.name for f in dataclasses.fields(record)]
    return {name: _plain(getattr(record, name)) for name in names}


def from_fields(cls: type[T], values: Mapping[str, Any]) -> T:
    """A dataclass `cls` built by keyword from the entries of `values` named like its fields.

    Each is read back by its type (enums from their value, records from their dict); other
    entries are ignored and a field missing from `values` takes its default.
    """
    return cls(**{name: read(values[name]) for name, read in _readers(cls) if name in values})


def _plain(value: Any) -> Any:
    """Enums by value, records by their to_dict, lists and dicts copied with plain items."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, _Record):
        return value.to_dict()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@functools.cache
def _readers(cls: type) -> tuple[tuple[str, Callable[[Any], Any]], ...]:
    """(field name, how to read it from plain data) for every field of dataclass `cls`."""
    hints = typing.get_type_hints(cls)
    return tuple((f.name, _reader(hints[f.name])) for f in dataclasses.fields(cls))


def _reader(hint: Any) -> Callable[[Any], Any]:
    """How to turn plain data back into a value of type `hint`; inverse of `_plain`."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        kinds = [a for a in args if a is not type(None)]
        inner = _reader(kinds[0]) if len(kinds) == 1 else _same
        return _same if inner is _same else lambda v: None if v is None else inner(v)
    if origin is list:
        item = _reader(args[0])
        return lambda v: [item(x) for x in v]
    if origin is dict:
        item = _reader(args[1])
        return lambda v: {k: item(x) for k, x in v.items()}
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint
    if isinstance(hint, type) and issubclass(hint, _Record):
        return hint.from_dict
    return _same


def _same(value: Any) -> Any:
    return value


class _Record:
    """The model's dataclasses: to_dict and from_dict derived from their fields."""

    def to_dict(self) -> dict[str, Any]:
        """Every field by name, JSON-ready (enums by value, nested records as dicts)."""
        return fields_dict(self)

    @classmethod
    def from_dict(cls: type[T], d: Mapping[str, Any]) -> T:
        """Inverse of to_dict; keys that are no field are ignored."""
        return from_fields(cls, d)


@dataclass(frozen=True)
class Domain(_Record):
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
    vendor: str | None = None  # "nvidia", "amd", "apple", "intel", "habana"; None for CPU/RAM, old runs


@dataclass(frozen=True)
class Location(_Record):
    """Where a run ran: the grid it drew from and, where known, the cloud region.

    `country` and `region` are as given (ISO 3166 code or name, e.g. "DE", "CA-QC"); the
    reports resolve them to a grid. `source` says where the location came from ("api",
    "env JOULEMETER_COUNTRY", "config /path/joulemeter.toml", "cloud AWS_REGION", "codecarbon").
    """

    country: str | None = None
    region: str | None = None
    cloud_provider: str | None = None  # "aws", "gcp", "azure"
    cloud_region: str | None = None  # the provider's name, e.g. "eu-central-1"
    source: str | None = None

    @property
    def grid(self) -> str | None:
        """The most precise place a grid intensity can be looked up for: region, else country."""
        return self.region or self.country


@dataclass(frozen=True)
class Sample(_Record):
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
class Gap(_Record):
    """A span in which a domain could not be read (GPU lost, counter reset, read error)."""

    domain: str
    start_s: float
    end_s: float | None  # None: the domain never came back before the run ended
    reason: str


@dataclass
class Window(_Record):
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


@dataclass
class DomainEnergy(_Record):
    """Energy and power of one domain over the whole run."""

    domain: str
    energy_j: float
    provenance: Provenance
    avg_power_w: float | None
    peak_power_w: float | None
    idle_power_w: float | None = None  # measured idle baseline, None if not measured


@dataclass
class Run(_Record):
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
    location: Location | None = None  # None: not recorded (runs before ledger schema 2)

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
        """Samples as a DataFrame, one column per field of Sample (t_s, domain, power_w, energy_j)."""
        import pandas

        columns = [f.name for f in dataclasses.fields(Sample)]
        return pandas.DataFrame([s.to_dict() for s in self.samples], columns=columns)

    def windows_frame(self) -> pandas.DataFrame:
        """One row per window and domain: Window's other fields, duration_s, domain, energy_j, units_*, note."""
        import pandas

        rows = []
        for w in self.windows:
            row = w.to_dict()
            energy, units, note = row.pop("energy_j"), row.pop("units"), row.pop("note")
            row["duration_s"] = w.duration_s
            for domain, joules in (energy or {None: None}).items():
                rows.append(
                    {**row, "domain": domain, "energy_j": joules}
                    | {f"units_{k}": v for k, v in units.items()}
                    | {"note": note}  # last: the columns before it keep their place
                )
        return pandas.DataFrame(rows)

    # -- copies ----------------------------------------------------------------
    def relabelled(self, names: Mapping[str, str]) -> Run:
        """A copy with domains renamed by `names` in domains, energy, windows, samples and gaps.

        Domains not in `names` keep their name; host, metadata, tags and units are shared.
        """

        def new(name: str) -> str:
            return names.get(name, name)

        return dataclasses.replace(
            self,
            domains=[dataclasses.replace(d, name=new(d.name)) for d in self.domains],
            energy={new(k): dataclasses.replace(e, domain=new(e.domain)) for k, e in self.energy.items()},
            windows=[
                dataclasses.replace(
                    w, energy_j={new(k): j for k, j in w.energy_j.items()}, units=dict(w.units)
                )
                for w in self.windows
            ],
            samples=[dataclasses.replace(s, domain=new(s.domain)) for s in self.samples],
            gaps=[dataclasses.replace(g, domain=new(g.domain)) for g in self.gaps],
        )

    def shifted(self, offset_s: float) -> Run:
        """A copy with every time in windows, samples and gaps later by `offset_s` seconds.

        Wall-clock times and duration_s are kept; host, metadata, tags and units are shared.
        """

        def later(t_s: float | None) -> float | None:
            return None if t_s is None else t_s + offset_s

        return dataclasses.replace(
            self,
            windows=[
                dataclasses.replace(
                    w,
                    start_s=w.start_s + offset_s,
                    end_s=later(w.end_s),
                    energy_j=dict(w.energy_j),
                    units=dict(w.units),
                )
                for w in self.windows
            ],
            samples=[dataclasses.replace(s, t_s=s.t_s + offset_s) for s in self.samples],
            gaps=[
                dataclasses.replace(g, start_s=g.start_s + offset_s, end_s=later(g.end_s))
                for g in self.gaps
            ],
        )

    # -- serialisation -------------------------------------------------------
    def to_dict(self, samples: bool = True) -> dict[str, Any]:
        """A JSON-ready dict: every field, and the derived figures in SI units with their provenance.

        `samples=False` leaves the samples out (None), as listings do.
        """
        names = [f.name for f in dataclasses.fields(self) if f.name != "samples"]
        return {
            **fields_dict(self, names),
            "total_energy_j": self.total_energy_j,
            "total_provenance": self.provenance.value if self.provenance else None,
            "idle_energy_j": self.idle_energy_j,
            "attributable_energy_j": self.attributable_energy_j,
            "avg_power_w": self.avg_power_w,
            "peak_power_w": self.peak_power_w,
            "samples": [s.to_dict() for s in self.samples] if samples else None,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Run:
        """Inverse of to_dict: derived figures are recomputed, not read; no samples read as none."""
        return from_fields(cls, {**d, "samples": d.get("samples") or []})
