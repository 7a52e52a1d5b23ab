"""A run's power timeline in bounded memory: every tick while the run is short, evenly
thinned once it is long.

It feeds plots, peak power and live gauges; energy never comes from it (the accumulators
and counters give that) and the ledger keeps every sample. At most `max_ticks` ticks are
held: when full, every other tick goes and from then on only every other new tick is kept,
so a 24-hour run holds no more than a 7-minute one and still spans its whole length evenly.
"""

from __future__ import annotations

from joulemeter.meter.run import Sample

#: 4096 ticks of 10 domains (8 GPUs, CPU, RAM) hold about 5 MB of samples (measured in
#: benchmarks/memory_growth.py) and give a plot more points than a page has pixels across.
DEFAULT_MAX_TICKS = 4096


class Timeline:
    """Ticks (the samples of one reading of every source), evenly thinned to `max_ticks`."""

    def __init__(self, max_ticks: int = DEFAULT_MAX_TICKS) -> None:
        if max_ticks < 2:
            raise ValueError(f"a timeline needs room for at least 2 ticks, got {max_ticks}")
        self.max_ticks = max_ticks
        self.stride = 1  # one tick kept in every `stride`
        self._ticks: list[list[Sample]] = []
        self._seen = 0
        self._latest: list[Sample] | None = None  # always shown, kept or not, so plots reach the end

    def add(self, tick: list[Sample]) -> None:
        if self._seen % self.stride == 0:
            self._ticks.append(tick)
            if len(self._ticks) > self.max_ticks:
                del self._ticks[1::2]
                self.stride *= 2
        self._seen += 1
        self._latest = tick

    def samples(self) -> list[Sample]:
        """The kept samples in time order, the latest tick included."""
        out = [s for tick in self._ticks for s in tick]
        if self._latest is not None and (not self._ticks or self._ticks[-1] is not self._latest):
            out.extend(self._latest)
        return out

    def latest(self) -> list[Sample]:
        """The samples of the most recent tick ([] before the first)."""
        return list(self._latest or ())
