"""The one background thread that polls every source and accounts its readings.

It reads all sources at each tick (so samples of one tick share `t_s`), feeds one
DomainAccumulator per domain and keeps the samples in memory; it never does I/O, so a
slow ledger cannot delay a reading (the ledger's writer thread takes the samples with
`samples_since`). A tick that comes far too late anyway (the process was not scheduled)
is a recorded gap for domains read as power, never an interpolation across the hole.
`poke()` asks for an immediate reading: window edges use it to get counter values
at the edge without paying for the read themselves.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from joulemeter.meter.energy import DomainAccumulator
from joulemeter.meter.run import Domain, Gap, Sample
from joulemeter.meter.sources.base import Reading, Source

log = logging.getLogger("joulemeter.sampler")

#: A tick this many intervals late (and at least _STALL_MIN_S) is a hole in sampling.
_STALL_INTERVALS = 10
_STALL_MIN_S = 1.0


class Sampler:
    """Polls sources every `interval_s` on a daemon thread; times are seconds since `t0`."""

    def __init__(
        self,
        sources: Sequence[Source],
        domains: Sequence[Domain],
        *,
        interval_s: float = 0.1,
        t0: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"sampling interval must be positive, got {interval_s!r} s")
        self.sources = list(sources)
        self.interval_s = interval_s
        self.clock = clock
        self.t0 = clock() if t0 is None else t0
        self.accumulators = {d.name: DomainAccumulator(d) for d in domains}
        self.samples: list[Sample] = []
        self.stall_s = max(_STALL_INTERVALS * interval_s, _STALL_MIN_S)
        self._last_tick_s: float | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._domains_by_source: dict[int, list[str]] = {}  # learnt from each source's reads

    # -- life cycle ------------------------------------------------------------
    def start(self) -> None:
        """Take a first reading (the energy origin) and start the polling thread."""
        self.read_once()
        self._thread = threading.Thread(target=self._loop, name="joulemeter-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and take a last reading. Safe to call twice."""
        if self._thread is not None:
            self._stopping.set()
            self._wake.set()
            self._thread.join()
            self._thread = None
            self.read_once()

    def poke(self) -> None:
        """Ask the thread for a reading now (cheap: sets an event)."""
        self._wake.set()

    # -- reading -----------------------------------------------------------------
    def now(self) -> float:
        """Seconds since t0 on the sampler's clock."""
        return self.clock() - self.t0

    def read_once(self) -> list[Sample]:
        """Read every source once and account the readings; returns the new samples."""
        batch: list[Reading] = []
        for source in self.sources:
            try:
                readings = source.read()
            except Exception as exc:  # a source must never kill the run: record a gap
                log.warning("reading %s failed: %s", source.name, exc)
                readings = [
                    Reading(d, error=f"{source.name} read failed: {exc}")
                    for d in self._domains_by_source.get(id(source), [])
                ]
            else:
                self._domains_by_source[id(source)] = [r.domain for r in readings]
            batch.extend(readings)
        t_s = self.now()  # one time per tick, so domains read together add up to total power
        new: list[Sample] = []
        with self._lock:
            late = self._last_tick_s is not None and t_s - self._last_tick_s > self.stall_s
            for reading in batch:
                accumulator = self.accumulators.get(reading.domain)
                if accumulator is not None:
                    if late:
                        accumulator.missed(t_s, f"no reading for {t_s - self._last_tick_s:.1f} s: "
                                           "the sampling thread was not scheduled")
                    new.append(accumulator.add(t_s, reading))
            self.samples.extend(new)
            self._last_tick_s = t_s
        return new

    def samples_since(self, start: int) -> list[Sample]:
        """The samples taken after the first `start`, as whole ticks (for the ledger's writer)."""
        with self._lock:
            return self.samples[start:]

    def gaps(self) -> list[Gap]:
        """Every gap so far, open ones closed at the current time."""
        t_s = self.now()
        with self._lock:
            return [g for a in self.accumulators.values() for g in a.finish(t_s)]

    def energy_j(self) -> dict[str, float]:
        """Cumulative energy per domain so far (J)."""
        with self._lock:
            return {name: a.energy_j for name, a in self.accumulators.items()}

    def latest_power_w(self) -> dict[str, float | None]:
        """The most recent power reading per domain (W), None where none yet."""
        latest: dict[str, float | None] = {name: None for name in self.accumulators}
        with self._lock:
            for s in reversed(self.samples[-4 * len(latest) - 4 :]):
                if latest.get(s.domain) is None:
                    latest[s.domain] = s.power_w
        return latest

    def _loop(self) -> None:
        next_tick = self.clock() + self.interval_s
        while not self._stopping.is_set():
            self._wake.wait(max(next_tick - self.clock(), 0.0))
            self._wake.clear()
            if self._stopping.is_set():
                break
            self.read_once()
            now = self.clock()
            if now >= next_tick:
                next_tick += self.interval_s * (1 + int((now - next_tick) // self.interval_s))
