"""Energy of the CPU estimate as a counter of CPU time, so any window's share is exact.

The estimate is linear in utilisation (meter/sources/estimate.py): power = logical CPUs ×
min_w + busy CPUs × (max_w − min_w), with busy CPUs = Δbusy CPU-seconds / Δwall seconds.
Over any span its energy is therefore min_w × Δcapacity CPU-seconds + (max_w − min_w) ×
Δbusy CPU-seconds: a cumulative counter read from CPU-time counters at the two edges, with
nothing sampled in between. As in the power model, busy time is capped at the capacity of
the span. Process-tree CPU time can dip while an ended child is not yet reaped (its time
leaves the tree until the parent's children_* times take it): busy time counts only above
its highest value so far, so the dip is neither a reset nor counted twice when it returns.
"""

from __future__ import annotations

from collections.abc import Callable


class CpuTimeEnergy:
    """Cumulative estimated CPU energy (J, from 0 at the first read) from cumulative
    (busy, capacity) CPU-seconds."""

    def __init__(self, min_w_per_cpu: float, max_w_per_cpu: float,
                 cpu_seconds: Callable[[], tuple[float, float]]) -> None:
        self.min_w_per_cpu = min_w_per_cpu
        self.dynamic_w_per_cpu = max_w_per_cpu - min_w_per_cpu
        self._cpu_seconds = cpu_seconds
        self._busy_s: float | None = None  # the highest busy and capacity CPU-seconds read
        self._capacity_s = 0.0
        self.energy_j_so_far = 0.0

    def energy_j(self, busy_s: float, capacity_s: float) -> float:
        """Advance the counter to CPU-second totals already read, and return it."""
        if self._busy_s is None:
            self._busy_s, self._capacity_s = busy_s, capacity_s
            return self.energy_j_so_far
        capacity = max(capacity_s - self._capacity_s, 0.0)
        busy = min(max(busy_s - self._busy_s, 0.0), capacity)
        self.energy_j_so_far += self.min_w_per_cpu * capacity + self.dynamic_w_per_cpu * busy
        self._busy_s = max(self._busy_s, busy_s)
        self._capacity_s = max(self._capacity_s, capacity_s)
        return self.energy_j_so_far

    def read_j(self) -> float:
        """Read the CPU-time counters now and advance the counter; OSError if unreadable."""
        return self.energy_j(*self._cpu_seconds())
