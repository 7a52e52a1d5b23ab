"""A run's power timeline in bounded memory: every tick while the run is short, evenly
thinned once it is long.

It feeds plots, peak power and live gauges; energy never comes from it (the accumulators
and counters give that) and the ledger keeps every sample. At most `max_ticks` ticks are
held: when full, every other tick goes and from then on only every other new tick is kept,
so a 24-hour run holds no more than a 7-minute one and still spans its whole length evenly.
The ticks are kept as arrays of numbers, not Sample objects (about 20 bytes a sample instead
of about 250), and become Samples only when asked for.
"""

from __future__ import annotations

import math
from array import array

from joulemeter.meter.run import Sample

#: 4096 ticks of 10 domains (8 GPUs, CPU, RAM) hold about 0.8 MB of numbers (measured in
#: benchmarks/memory_growth.py) and give a plot more points than a page has pixels across.
DEFAULT_MAX_TICKS = 4096


class Timeline:
    """Ticks (the samples of one reading of every source), evenly thinned to `max_ticks`."""

    def __init__(self, max_ticks: int = DEFAULT_MAX_TICKS) -> None:
        if max_ticks < 2:
            raise ValueError(f"a timeline needs room for at least 2 ticks, got {max_ticks}")
        self.max_ticks = max_ticks
        self.stride = 1  # one tick kept in every `stride`
        self._seen = 0
        self._names: list[str] = []  # domain names, by the index the arrays hold
        self._index: dict[str, int] = {}
        self._ends = array("L")  # per kept tick: the end of its samples in the arrays below
        self._t = array("d")  # per kept sample; None is stored as NaN
        self._domain = array("H")
        self._power = array("d")
        self._energy = array("d")
        self._latest: list[Sample] | None = None  # always shown, kept or not, so plots reach the end
        self._latest_kept = False

    def add(self, tick: list[Sample]) -> None:
        self._latest_kept = self._seen % self.stride == 0
        if self._latest_kept:
            for sample in tick:
                self._t.append(sample.t_s)
                self._domain.append(self._domain_index(sample.domain))
                self._power.append(math.nan if sample.power_w is None else sample.power_w)
                self._energy.append(math.nan if sample.energy_j is None else sample.energy_j)
            self._ends.append(len(self._t))
            if len(self._ends) > self.max_ticks:
                self._latest_kept = len(self._ends) % 2 == 1  # thinning keeps the odd-numbered ticks
                self._thin()
                self.stride *= 2
        self._seen += 1
        self._latest = tick

    def samples(self) -> list[Sample]:
        """The kept samples in time order, the latest tick included."""
        names = self._names
        out = [
            Sample(t, names[d], None if math.isnan(p) else p, None if math.isnan(e) else e)
            for t, d, p, e in zip(self._t, self._domain, self._power, self._energy)
        ]
        if self._latest is not None and not self._latest_kept:
            out.extend(self._latest)
        return out

    def latest(self) -> list[Sample]:
        """The samples of the most recent tick ([] before the first)."""
        return list(self._latest or ())

    def __len__(self) -> int:
        """The number of samples kept."""
        return len(self._t)

    def _domain_index(self, name: str) -> int:
        index = self._index.get(name)
        if index is None:
            index = self._index[name] = len(self._names)
            self._names.append(name)
        return index

    def _thin(self) -> None:
        """Keep the 1st, 3rd, 5th, … tick and drop the others, moving the kept samples forward
        in place: the arrays are not allocated anew, so a long run does not fragment the heap."""
        columns = (self._t, self._domain, self._power, self._energy)
        ends = self._ends
        start = kept = written = 0
        for i, end in enumerate(ends):
            if i % 2 == 0:
                n = end - start
                if written != start:
                    for column in columns:
                        column[written:written + n] = column[start:end]
                written += n
                ends[kept] = written
                kept += 1
            start = end
        for column in columns:
            del column[written:]
        del ends[kept:]
