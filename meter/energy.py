"""Turning raw readings into cumulative energy: counter deltas, wraps, resets, integration.

One `DomainAccumulator` per domain. Energy never goes down: a counter that wraps is
unwrapped with the domain's range, a counter that goes back without a range (a reset),
an unreadable domain or an invalid power value becomes a recorded Gap, and no energy
is counted across a gap (the counter is re-baselined when the domain comes back).
An `Edge` (a window's start or end) gets each domain's cumulative energy at its instant:
the counter value read just after it (an edge read, a thread switch later: that lag falls
alike on both edges of a window), or, where a tick settles it, the value interpolated
between the readings just before and just after it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from joulemeter.meter.run import Domain, DomainEnergy, Gap, Sample
from joulemeter.meter.sources.base import Reading


class Edge:
    """An instant the meter asks about (`t_s`, run seconds): each domain's cumulative energy
    there (J), filled in as each domain is next read; `waiting` counts the domains still to come."""

    __slots__ = ("energy_j", "t_s", "waiting")

    def __init__(self, t_s: float, waiting: int) -> None:
        self.t_s = t_s
        self.energy_j: dict[str, float] = {}
        self.waiting = waiting


class DomainAccumulator:
    """Cumulative energy of one domain from successive readings."""

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
        self.gaps: list[Gap] = []

    def add(self, t_s: float, reading: Reading) -> Sample:
        """Account one tick's reading taken at `t_s` (run seconds) and return its Sample."""
        before_t, before_j = self._last_t, self.energy_j
        problem = reading.error or _invalid(reading)
        if problem:
            self._open_gap(t_s, problem)
            self.latest_power_w = None
            self._settle_edges(before_t, before_j, t_s)
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
        self._settle_edges(before_t, before_j, t_s)
        return Sample(t_s, self.domain.name, power, self.energy_j)

    def add_counter(self, t_s: float, reading: Reading) -> None:
        """Account a counter read between ticks (at a window edge): energy only, no sample.

        A reading without a usable counter value, or with no baseline to count from (in a
        gap, or integrated from power), is left to the next tick."""
        if reading.energy_j is None or reading.error or _invalid(reading) or self._last_counter_j is None:
            return
        self._add_counter(t_s, reading.energy_j)
        self._last_t = t_s
        self._settle_edges(None, self.energy_j, t_s)  # the value read just after the edge

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
        self._settle_edges(None, self.energy_j, math.inf, final=True)

    def _settle_edges(self, before_t: float | None, before_j: float, t_s: float, final: bool = False) -> None:
        """Give the edges before `t_s` the energy interpolated between (before_t, before_j) and
        now (now's value where `before_t` is None); an edge stamped at or after `t_s` waits for
        a later reading (`final`: no more come)."""
        if not self._edges:
            return
        after_j = self.energy_j
        waiting = []
        for edge in self._edges:
            if edge.t_s >= t_s and not final:
                waiting.append(edge)
                continue
            if before_t is None or t_s <= before_t:
                edge.energy_j[self.domain.name] = after_j
            else:
                share = min(max(edge.t_s - before_t, 0.0) / (t_s - before_t), 1.0)
                edge.energy_j[self.domain.name] = before_j + (after_j - before_j) * share
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
