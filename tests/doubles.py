"""Deterministic power sources for tests of the meter and the integrations.

Energy is a linear function of the monotonic clock, so any window's energy is exactly
power × duration however the sampler's ticks fall.
"""

from __future__ import annotations

import time

from meter.run import Domain, Provenance
from meter.sources.base import Reading, Source


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
