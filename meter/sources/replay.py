"""A recorded power trace played back as a source (provenance REPLAYED).

The trace is a CSV with columns `t_s`, `domain`, `power_w` and optionally `energy_j`
(the domain's cumulative energy, used as its counter) and `kind`. The whole file is
validated on load; a bad file raises ReplayTraceError naming the file, line and problem.
While playing, each read gives every domain's power (and energy) at the trace time
reached since open(), interpolated linearly between recorded points.
"""

from __future__ import annotations

import bisect
import csv
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from joulemeter.meter.errors import ReplayTraceError
from joulemeter.meter.limits import NAME_MAX_CHARS
from joulemeter.meter.run import Domain, Provenance
from joulemeter.meter.sources.base import Reading, Source

REQUIRED_COLUMNS = ("t_s", "domain", "power_w")

# Sanity bound, not a physical constant: the largest single accelerator boards and CPU
# sockets draw around 1–2 kW, so a reading ten times beyond that is a unit or logging error.
MAX_DOMAIN_POWER_W = 10_000.0


@dataclass(frozen=True)
class TraceRow:
    """One validated trace point; `line` is its line in the file (the header is line 1)."""

    t_s: float
    domain: str
    power_w: float
    energy_j: float | None = None
    kind: str | None = None
    line: int = 0


def load_trace(path: str | os.PathLike[str]) -> list[TraceRow]:
    """Read and validate a power trace; every row, in file order, or ReplayTraceError."""
    path = Path(path)
    try:
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise _error(path, 1, f"missing column(s) {', '.join(missing)}; "
                             f"a trace needs {', '.join(REQUIRED_COLUMNS)}")
            rows = [_parse_row(path, reader.line_num, raw) for raw in reader]
    except csv.Error as exc:  # e.g. a field beyond csv.field_size_limit() (128 KiB), a NUL byte
        raise ReplayTraceError(
            f"{path}: not a readable CSV after line {reader.line_num} ({exc}). Fix the trace and replay it again."
        ) from None
    except OSError as exc:
        raise ReplayTraceError(
            f"{path} cannot be read ({exc.strerror or exc}); check the path of the trace"
        ) from None
    except UnicodeDecodeError:
        raise ReplayTraceError(f"{path} is not a text CSV file; give a CSV power trace") from None
    if not rows:
        raise _error(path, 2, "the trace has no rows")
    _check_series(path, rows)
    return rows


def _parse_row(path: Path, line: int, raw: dict[str, str | None]) -> TraceRow:
    domain = (raw.get("domain") or "").strip()
    if not domain:
        raise _error(path, line, "empty domain")
    if len(domain) > NAME_MAX_CHARS:
        raise _error(path, line, f"a domain name of {len(domain):,} characters; the limit is {NAME_MAX_CHARS}")
    t_s = _number(path, line, raw, "t_s")
    power_w = _number(path, line, raw, "power_w")
    if t_s is None or power_w is None:
        missing = "t_s" if t_s is None else "power_w"
        raise _error(path, line, f"{missing} is empty")
    if power_w < 0:
        raise _error(path, line, f"negative power {power_w!r} W")
    if power_w > MAX_DOMAIN_POWER_W:
        raise _error(path, line, f"power {power_w!r} W is beyond {MAX_DOMAIN_POWER_W:g} W for one "
                     "domain; is the column in mW?")
    energy_j = _number(path, line, raw, "energy_j")
    if energy_j is not None and energy_j < 0:
        raise _error(path, line, f"negative energy {energy_j!r} J")
    kind = (raw.get("kind") or "").strip() or None
    return TraceRow(t_s, domain, power_w, energy_j, kind, line)


def _number(path: Path, line: int, raw: dict[str, str | None], column: str) -> float | None:
    """The column's value as a finite float, None if the cell is empty or absent."""
    text = (raw.get(column) or "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise _error(path, line, f"{column} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise _error(path, line, f"{column} is {text} (NaN or infinite)")
    return value


def _check_series(path: Path, rows: list[TraceRow]) -> None:
    """Time must increase within each domain, and a domain keeps one kind."""
    last: dict[str, TraceRow] = {}
    kinds: dict[str, str] = {}
    for row in rows:
        previous = last.get(row.domain)
        if previous is not None and row.t_s <= previous.t_s:
            raise _error(path, row.line, f"time does not increase for domain {row.domain} "
                         f"(t_s {row.t_s:g} after {previous.t_s:g} on line {previous.line})")
        if row.kind:
            known = kinds.setdefault(row.domain, row.kind)
            if known != row.kind:
                raise _error(path, row.line, f"domain {row.domain} changes kind from "
                             f"{known} to {row.kind}")
        last[row.domain] = row


def _error(path: Path, line: int, problem: str) -> ReplayTraceError:
    return ReplayTraceError(f"{path}, line {line}: {problem}. Fix the trace and replay it again.")


@dataclass
class _Series:
    times: list[float]
    powers: list[float]
    energies: list[float] | None  # None unless every point of the domain has energy_j

    @classmethod
    def of(cls, points: list[TraceRow]) -> _Series:
        energies = [r.energy_j for r in points]
        return cls(
            [r.t_s for r in points],
            [r.power_w for r in points],
            None if None in energies else energies,
        )

    def at(self, t_s: float) -> tuple[float, float | None]:
        i = bisect.bisect_left(self.times, t_s)
        if self.times[i] == t_s:
            return self.powers[i], self.energies[i] if self.energies else None
        t0, t1 = self.times[i - 1], self.times[i]
        share = (t_s - t0) / (t1 - t0)
        power = self.powers[i - 1] + share * (self.powers[i] - self.powers[i - 1])
        energy = None
        if self.energies:
            energy = self.energies[i - 1] + share * (self.energies[i] - self.energies[i - 1])
        return power, energy


class ReplaySource(Source):
    """Plays a validated trace against a monotonic clock, `speed` trace seconds per second."""

    name = "replay"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        speed: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not speed > 0:
            raise ValueError(f"replay speed must be positive, got {speed!r}")
        self.path = Path(path)
        self.speed = speed
        self._clock = clock
        self._series: dict[str, _Series] = {}
        self._origin_s = 0.0
        self._opened_at: float | None = None

    def open(self) -> list[Domain]:
        rows = load_trace(self.path)
        by_domain: dict[str, list[TraceRow]] = {}
        for row in rows:
            by_domain.setdefault(row.domain, []).append(row)
        self._series = {name: _Series.of(points) for name, points in by_domain.items()}
        self._origin_s = min(r.t_s for r in rows)
        self._opened_at = self._clock()
        speed = "" if self.speed == 1.0 else f" at {self.speed:g}× speed"
        return [
            Domain(
                name=name,
                kind=next((r.kind for r in points if r.kind), name.split(":")[0]),
                device=f"replay of {self.path.name}",
                provenance=Provenance.REPLAYED,
                method=f"replayed power trace {self.path}{speed}",
            )
            for name, points in by_domain.items()
        ]

    def read(self) -> list[Reading]:
        assert self._opened_at is not None, "read() before open()"
        trace_t = self._origin_s + (self._clock() - self._opened_at) * self.speed
        readings = []
        for name, series in self._series.items():
            if trace_t < series.times[0]:
                readings.append(Reading(name, error=f"trace starts at t_s {series.times[0]:g}"))
            elif trace_t > series.times[-1]:
                readings.append(Reading(name, error=f"trace ended at t_s {series.times[-1]:g}"))
            else:
                power_w, energy_j = series.at(trace_t)
                readings.append(Reading(name, power_w=power_w, energy_j=energy_j))
        return readings

    @property
    def duration_s(self) -> float | None:
        """Wall seconds the trace takes to play at this speed, None before open()."""
        if not self._series:
            return None
        end = max(s.times[-1] for s in self._series.values())
        return (end - self._origin_s) / self.speed

    def close(self) -> None:
        self._opened_at = None
