"""Turning raw readings into cumulative energy: counter deltas, wraps, resets, integration.

One `DomainAccumulator` per domain. Energy never goes down: a counter that wraps is
unwrapped with the domain's range, a counter that goes back without a range (a reset),
an unreadable domain or an invalid power value becomes a recorded Gap, and no energy
is counted across a gap (the counter is re-baselined when the domain comes back).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable

from joulemeter.meter.run import Domain, DomainEnergy, Gap, Sample
from joulemeter.meter.sources.base import Reading


class DomainAccumulator:
    """Cumulative energy of one domain from successive readings."""

    def __init__(self, domain: Domain) -> None:
        self.domain = domain
        self.energy_j = 0.0
        self.peak_power_w: float | None = None
        self._last_t: float | None = None
        self._last_counter_j: float | None = None
        self._last_power_w: float | None = None
        self._gap_start: float | None = None
        self._gap_reason: str | None = None
        self.gaps: list[Gap] = []

    def add(self, t_s: float, reading: Reading) -> Sample:
        """Account one reading taken at `t_s` (run seconds) and return its Sample."""
        problem = reading.error or _invalid(reading)
        if problem:
            self._open_gap(t_s, problem)
            return Sample(t_s, self.domain.name, None, None)
        if self._gap_start is not None:
            self._close_gap(t_s)
        power = reading.power_w
        if reading.energy_j is not None:
            power = self._add_counter(t_s, reading.energy_j, power)
        elif power is not None:
            self._add_power(t_s, power)
            self._last_counter_j = None  # a later counter reading starts a new baseline
        self._last_t = t_s
        self._last_power_w = power
        if power is not None and (self.peak_power_w is None or power > self.peak_power_w):
            self.peak_power_w = power
        return Sample(t_s, self.domain.name, power, self.energy_j)

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

    def _add_counter(self, t_s: float, counter_j: float, power_w: float | None) -> float | None:
        previous, self._last_counter_j = self._last_counter_j, counter_j
        if previous is None or self._last_t is None:
            return power_w
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
            return power_w
        self.energy_j += delta
        dt = t_s - self._last_t
        if power_w is None and dt > 0:
            power_w = delta / dt
        return power_w

    def _add_power(self, t_s: float, power_w: float) -> None:
        if self._last_t is not None and self._last_power_w is not None:
            self.energy_j += (self._last_power_w + power_w) / 2.0 * (t_s - self._last_t)

    def _open_gap(self, t_s: float, reason: str) -> None:
        if self._gap_start is None:
            self._gap_start = self._last_t if self._last_t is not None else t_s
            self._gap_reason = reason
        self._last_counter_j = None  # re-baseline: nothing is counted across a gap
        self._last_power_w = None

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


class EnergyTimeline:
    """A domain's cumulative energy over time, for window edges: `between(a, b)` in joules.

    Built once from the domain's samples (ascending time); samples inside gaps carry no
    energy and are skipped. Values are linearly interpolated between samples and held
    flat before the first and after the last.
    """

    def __init__(self, samples: Iterable[Sample]) -> None:
        self._times: list[float] = []
        self._energies: list[float] = []
        for s in samples:
            if s.energy_j is not None:
                self._times.append(s.t_s)
                self._energies.append(s.energy_j)

    def at(self, t_s: float) -> float:
        ts, es = self._times, self._energies
        if not ts:
            return 0.0
        i = bisect.bisect_left(ts, t_s)
        if i == 0:
            return es[0]
        if i >= len(ts):
            return es[-1]
        t0, t1 = ts[i - 1], ts[i]  # t0 < t_s <= t1, so t1 > t0
        return es[i - 1] + (es[i] - es[i - 1]) * (t_s - t0) / (t1 - t0)

    def between(self, start_s: float, end_s: float) -> float:
        return max(self.at(end_s) - self.at(start_s), 0.0)


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
