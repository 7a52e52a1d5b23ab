"""Turning raw readings into cumulative energy: counter deltas, wraps, resets, integration.

One `DomainAccumulator` per domain. Energy never goes down: a counter that wraps is
unwrapped with the domain's range, a counter that goes back without a range (a reset),
an unreadable domain or an invalid power value becomes a recorded Gap, and no energy
is counted across a gap (the counter is re-baselined when the domain comes back).
Each domain keeps an `EnergyTrace` of its recent readings, which gives its cumulative energy
at any instant since: the counter value read just after it where that read was made for
edges (a thread switch later: that lag falls alike on both edges of a window), else the
value interpolated between the readings just before and just after it. Windows read their
edges from it; an `Edge` (an instant a live figure asks about) is filled in from it too.
"""

from __future__ import annotations

import bisect
import math
from array import array
from collections.abc import Iterable

from joulemeter.meter.run import Domain, DomainEnergy, Gap, Sample
from joulemeter.meter.sources.base import Reading


class EnergyTrace:
    """A domain's cumulative energy (J) at its readings (run seconds), kept until
    `forget_before`, so its energy at any instant since can be given once it is read past it.

    Arrays of floats, not objects: holding a second of readings costs the garbage collector
    nothing however many windows open in it."""

    __slots__ = ("_after", "_j", "_t")

    def __init__(self) -> None:
        self._t = array("d")
        self._j = array("d")
        self._after = bytearray()  # 1 where the reading was a counter read made for edges

    def __len__(self) -> int:
        return len(self._t)

    @property
    def last_s(self) -> float:
        """Time of the latest reading (-inf before the first)."""
        return self._t[-1] if self._t else -math.inf

    def add(self, t_s: float, energy_j: float, edge_read: bool) -> None:
        """A reading at `t_s`; one stamped no later than the latest replaces its value."""
        if self._t and t_s <= self._t[-1]:
            self._j[-1] = energy_j
            return
        self._t.append(t_s)
        self._j.append(energy_j)
        self._after.append(edge_read)

    def at(self, t_s: float) -> float | None:
        """The energy at `t_s`, None until a reading after it; before the oldest reading kept,
        that reading's."""
        times = self._t
        i = bisect.bisect_right(times, t_s)
        if i == len(times):
            return None
        after_j = self._j[i]
        if i == 0 or self._after[i]:
            return after_j
        before_t, before_j = times[i - 1], self._j[i - 1]
        return before_j + (after_j - before_j) * (t_s - before_t) / (times[i] - before_t)

    def between_each(self, spans: list[tuple[float, float]]) -> list[float]:
        """The energy (J) over each (start_s, end_s) span, ascending or nearly so; an instant
        after the latest reading counts as that reading's.

        One lookup per span where it falls between the same two readings as the span before,
        as the windows of steps between two ticks or counter reads do."""
        out = []
        lo = hi = origin = math.inf
        base_j = slope = 0.0
        for start_s, end_s in spans:
            if not lo <= end_s < hi:
                lo, hi, base_j, slope, origin = self._segment(bisect.bisect_right(self._t, end_s))
            if lo <= start_s:
                out.append(slope * (end_s - start_s))
                continue
            start = self._segment(bisect.bisect_right(self._t, start_s))
            start_j = start[2] + start[3] * (start_s - start[4])
            out.append(base_j + slope * (end_s - origin) - start_j)
        return out

    def _segment(self, i: int) -> tuple[float, float, float, float, float]:
        """The span [lo, hi) between the readings i-1 and i and the energy over it, as
        (lo, hi, base_j, slope_w, origin_s): energy(t) = base_j + slope_w × (t − origin_s)."""
        times, energies = self._t, self._j
        if not times:
            return -math.inf, math.inf, 0.0, 0.0, 0.0
        if i == 0:
            return -math.inf, times[0], energies[0], 0.0, 0.0
        if i == len(times):
            return times[-1], math.inf, energies[-1], 0.0, 0.0
        if self._after[i]:
            return times[i - 1], times[i], energies[i], 0.0, 0.0
        before_t, before_j = times[i - 1], energies[i - 1]
        return before_t, times[i], before_j, (energies[i] - before_j) / (times[i] - before_t), before_t

    def forget_before(self, t_s: float) -> None:
        """Drop the readings that no instant at or after `t_s` needs."""
        i = bisect.bisect_right(self._t, t_s) - 1
        if i > 0:
            del self._t[:i]
            del self._j[:i]
            del self._after[:i]


class Edge:
    """An instant a live figure asks about (`t_s`, run seconds): each domain's cumulative
    energy there (J), filled in as each domain is next read; `waiting` counts the domains
    still to come."""

    __slots__ = ("energy_j", "t_s", "waiting")

    def __init__(self, t_s: float, waiting: int) -> None:
        self.t_s = t_s
        self.energy_j: dict[str, float] = {}
        self.waiting = waiting


class DomainAccumulator:
    """Cumulative energy of one domain from successive readings; `trace` holds it at each
    reading until the owner lets it forget."""

    def __init__(self, domain: Domain) -> None:
        self.domain = domain
        self.energy_j = 0.0
        self.peak_power_w: float | None = None
        self.latest_power_w: float | None = None  # of the latest tick
        self._last_t: float | None = None
        self._last_counter_j: float | None = None
        self._last_power_w: float | None = None
        self._tick_t: float | None = None  # the latest tick's time and energy, for its power
        self._tick_j = 0.0
        self._gap_start: float | None = None
        self._gap_reason: str | None = None
        self._edges: list[Edge] = []
        self.trace = EnergyTrace()
        self.gaps: list[Gap] = []

    def add(self, t_s: float, reading: Reading) -> Sample:
        """Account one tick's reading taken at `t_s` (run seconds) and return its Sample."""
        problem = reading.error or _invalid(reading)
        if problem:
            self._open_gap(t_s, problem)
            self.latest_power_w = None
            self._read_at(t_s, edge_read=False)
            return Sample(t_s, self.domain.name, None, None)
        if self._gap_start is not None:
            self._close_gap(t_s)
        power = reading.power_w
        if reading.energy_j is not None:
            self._add_counter(t_s, reading.energy_j)
            if power is None and self._tick_t is not None and t_s > self._tick_t:
                power = (self.energy_j - self._tick_j) / (t_s - self._tick_t)
        elif power is not None:
            self._add_power(t_s, power)
            self._last_counter_j = None  # a later counter reading starts a new baseline
        self._last_t = t_s
        self._last_power_w = power
        self._tick_t, self._tick_j = t_s, self.energy_j
        self.latest_power_w = power
        if power is not None and (self.peak_power_w is None or power > self.peak_power_w):
            self.peak_power_w = power
        self._read_at(t_s, edge_read=False)
        return Sample(t_s, self.domain.name, power, self.energy_j)

    def add_counter(self, t_s: float, reading: Reading) -> None:
        """Account a counter read between ticks (at a window edge): energy only, no sample.

        A reading without a usable counter value, or with no baseline to count from (in a
        gap, or integrated from power), is left to the next tick."""
        if reading.energy_j is None or reading.error or _invalid(reading) or self._last_counter_j is None:
            return
        self._add_counter(t_s, reading.energy_j)
        self._last_t = t_s
        self._read_at(t_s, edge_read=True)  # the value read just after the edge

    def wait_for(self, edge: Edge) -> None:
        """Fill in this domain's energy at `edge` once it is next read (edges come in time order)."""
        self._edges.append(edge)

    def missed(self, t_s: float, reason: str) -> None:
        """No reading came since the last one until `t_s` (a stalled sampler).

        A counter still gives the exact energy across the hole; power readings would have
        to be interpolated over it, so the hole becomes a gap and nothing is counted in it.
        """
        if self._last_counter_j is not None or self._last_t is None or self._last_power_w is None:
            return  # read through a counter, nothing read yet, or already in a gap
        self.gaps.append(Gap(self.domain.name, self._last_t, t_s, reason))
        self._last_power_w = None

    def finish(self, t_s: float) -> list[Gap]:
        """Close an open gap at the end of the run (as never recovered) and return all gaps."""
        if self._gap_start is not None:
            self.gaps.append(Gap(self.domain.name, self._gap_start, None, self._gap_reason or ""))
            self._gap_start = None
        return self.gaps

    def settle_edges(self) -> None:
        """Give the edges still waiting (the domain was not read after them) the energy so far."""
        self._settle_edges(final=True)

    def energy_at(self, t_s: float) -> float:
        """Cumulative energy at `t_s` (J): from the trace, or the energy so far where the
        domain was not read after `t_s`."""
        energy_j = self.trace.at(t_s)
        return self.energy_j if energy_j is None else energy_j

    def forget_before(self, t_s: float) -> None:
        """Let the trace drop the readings no instant at or after `t_s` needs."""
        self.trace.forget_before(t_s)

    def _read_at(self, t_s: float, edge_read: bool) -> None:
        """Record the energy read at `t_s` and fill in the edges it settles."""
        self.trace.add(t_s, self.energy_j, edge_read)
        if self._edges:
            self._settle_edges()

    def _settle_edges(self, final: bool = False) -> None:
        """Give the edges the domain has been read past their energy from the trace; the
        others wait for a later reading (`final`: no more come, they get the energy so far)."""
        waiting = []
        for edge in self._edges:
            energy_j = self.trace.at(edge.t_s)
            if energy_j is None:
                if not final:
                    waiting.append(edge)
                    continue
                energy_j = self.energy_j
            edge.energy_j[self.domain.name] = energy_j
            edge.waiting -= 1
        self._edges = waiting

    def _add_counter(self, t_s: float, counter_j: float) -> None:
        previous, self._last_counter_j = self._last_counter_j, counter_j
        if previous is None or self._last_t is None:
            return
        delta = counter_j - previous
        span = self.domain.counter_range_j
        if delta < 0 and span:
            delta += span  # one wrap since the last reading
            if delta > span / 2:
                # Polled every 100 ms, a real wrap moves the counter by a sliver of its
                # range; half the range or more means a reset (or wraps we cannot count).
                delta = -1.0
        if delta < 0:
            self.gaps.append(
                Gap(self.domain.name, self._last_t, t_s, "energy counter went back (reset)")
            )
            return
        self.energy_j += delta

    def _add_power(self, t_s: float, power_w: float) -> None:
        if self._last_t is not None and self._last_power_w is not None:
            self.energy_j += (self._last_power_w + power_w) / 2.0 * (t_s - self._last_t)

    def _open_gap(self, t_s: float, reason: str) -> None:
        if self._gap_start is None:
            self._gap_start = self._last_t if self._last_t is not None else t_s
            self._gap_reason = reason
        self._last_counter_j = None  # re-baseline: nothing is counted across a gap
        self._last_power_w = None
        self._tick_t = None

    def _close_gap(self, t_s: float) -> None:
        assert self._gap_start is not None
        self.gaps.append(Gap(self.domain.name, self._gap_start, t_s, self._gap_reason or ""))
        self._gap_start = None
        self._gap_reason = None


def _invalid(reading: Reading) -> str | None:
    """Why a reading's values cannot be trusted, or None."""
    for label, value in (("power", reading.power_w), ("energy counter", reading.energy_j)):
        if value is None:
            continue
        if math.isnan(value) or math.isinf(value):
            return f"invalid {label} value {value!r}"
        if value < 0:
            return f"negative {label} value {value!r}"
    if reading.power_w is None and reading.energy_j is None:
        return "no value read"
    return None


def summarise(
    domains: Iterable[Domain],
    samples: Iterable[Sample],
    duration_s: float | None,
    idle_power_w: dict[str, float] | None = None,
) -> dict[str, DomainEnergy]:
    """Per-domain totals from samples: the last cumulative energy, average and peak power.

    Used when a run finishes; `totals` does the same from figures a query already summed.
    """
    last_energy: dict[str, float] = {}
    peak: dict[str, float] = {}
    for s in samples:
        if s.energy_j is not None:
            last_energy[s.domain] = s.energy_j
        if s.power_w is not None and s.power_w > peak.get(s.domain, -1.0):
            peak[s.domain] = s.power_w
    return totals(domains, last_energy, peak, duration_s, idle_power_w)


def totals(
    domains: Iterable[Domain],
    last_energy: dict[str, float],
    peak: dict[str, float],
    duration_s: float | None,
    idle_power_w: dict[str, float] | None = None,
) -> dict[str, DomainEnergy]:
    """Per-domain DomainEnergy from each domain's last cumulative energy and peak power.

    A killed run is recovered this way in bounded memory: its samples' energy never
    decreases, so the last cumulative energy is their maximum, which the database sums.
    """
    out: dict[str, DomainEnergy] = {}
    for d in domains:
        energy = last_energy.get(d.name, 0.0)
        out[d.name] = DomainEnergy(
            domain=d.name,
            energy_j=energy,
            provenance=d.provenance,
            avg_power_w=energy / duration_s if duration_s else None,
            peak_power_w=peak.get(d.name),
            idle_power_w=(idle_power_w or {}).get(d.name),
        )
    return out
