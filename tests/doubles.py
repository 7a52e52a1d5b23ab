"""Deterministic power sources for tests of the meter and the integrations.

Energy is a linear function of the monotonic clock, so any window's energy is power ×
duration however the sampler's ticks fall, up to the stamping skew below.
"""

from __future__ import annotations

import threading
import time

from joulemeter.meter.run import Domain, Provenance
from joulemeter.meter.sources.base import Reading, Source


#: The sampler stamps a tick's time just after reading the counter; scheduling on a busy
#: machine can stretch that gap. Tests allow this much of it at each window edge.
STAMP_SKEW_S = 0.5e-3


def stamp_skew_j(power_w: float, edges: int = 2) -> float:
    """The most a LinearCounterSource window's energy may differ from power × duration."""
    return power_w * edges * STAMP_SKEW_S


class LinearCounterSource(Source):
    """One domain drawing a constant `power_w`, read through a cumulative energy counter."""

    name = "linear"

    def __init__(self, power_w: float = 50.0, domain: str = "gpu:0", kind: str = "gpu",
                 provenance: Provenance = Provenance.COUNTER) -> None:
        self.power_w = power_w
        self.domain = Domain(domain, kind, "test device", provenance, "test: linear counter")
        self.reads = 0
        self.closed = False

    def open(self) -> list[Domain]:
        return [self.domain]

    def read(self) -> list[Reading]:
        self.reads += 1
        return [Reading(self.domain.name, self.power_w, self.power_w * time.monotonic())]

    def close(self) -> None:
        self.closed = True


class FailingAfterSource(LinearCounterSource):
    """Like LinearCounterSource, but every read after the first `good_reads` reports an error."""

    def __init__(self, good_reads: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.good_reads = good_reads

    def read(self) -> list[Reading]:
        if self.reads >= self.good_reads:
            self.reads += 1
            return [Reading(self.domain.name, error="GPU lost: test")]
        return super().read()


class SteppedCounterSource(Source):
    """One counter domain whose power the test switches; its counter integrates exactly.

    `read()` and `read_counters()` count their calls, so a test sees which the meter used."""

    name = "stepped"

    def __init__(self, power_w: float = 10.0, provenance: Provenance = Provenance.COUNTER) -> None:
        self.domain = Domain("gpu:0", "gpu", "test device", provenance, "test: stepped counter")
        self._lock = threading.Lock()
        self._power_w, self._since, self._energy_j = power_w, time.monotonic(), 0.0
        self.ticks = self.edge_reads = 0

    def set_power(self, power_w: float) -> float:
        """Switch the power now; returns the monotonic time of the switch."""
        with self._lock:
            now = time.monotonic()
            self._energy_j += self._power_w * (now - self._since)
            self._power_w, self._since = power_w, now
            return now

    def _counter_j(self) -> float:
        with self._lock:
            return self._energy_j + self._power_w * (time.monotonic() - self._since)

    def open(self) -> list[Domain]:
        return [self.domain]

    def read(self) -> list[Reading]:
        self.ticks += 1
        return [Reading(self.domain.name, energy_j=self._counter_j())]

    def read_counters(self) -> list[Reading]:
        self.edge_reads += 1
        return [Reading(self.domain.name, energy_j=self._counter_j())]
