"""The one background thread that reads every source and accounts its readings.

Ticks, every `interval_s` (or, adaptive, up to every `max_interval_s` while power holds
steady: meter/cadence.py), read all sources (so samples of one tick share `t_s`), feed one
DomainAccumulator per domain and add the samples to a bounded Timeline; the samples not
yet written stay in memory only until the ledger's writer has them (`unwritten`,
`release`). It never does I/O, so a slow ledger cannot delay a reading. A tick that comes
far too late (the process was not scheduled) is a recorded gap for domains read as power,
never an interpolation across the hole.

Edges (`mark_edge`: a window's start or end, a live figure) cost the caller a timestamp:
the thread then reads only the sources' cheap cumulative counters (`read_counters`), at
most once per `_EDGE_READ_MIN_S`, and each domain's energy at the edge comes from its
readings just before and just after (meter/energy.py, EnergyTrace). A closed window
(`close_window`) gets its energy as soon as every domain has been read past its end: at the
next counter read where every domain has a counter, else at the next tick. Nothing is kept
per edge but the window itself, so a window per step costs the caller a few microseconds
and the thread a few more, however fast they come.

An adaptive timeline never leaves a closed window waiting on its long interval: where a
domain has no counter, the thread ticks within `interval_s` of the window's end. A live
figure asked for (`energy_now_j`, `latest_power_w`) brings it back to `interval_s` too:
someone is watching, and the latest tick of a stretched timeline may be long past.

Without a timeline (`timeline=False`) there are no ticks: every domain must have a counter,
read at start, at edges and at stop; between them the thread sleeps with no timeout, so an
idle run costs next to nothing, and the run has no samples (no power, no peak).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from joulemeter.meter.cadence import Cadence
from joulemeter.meter.energy import DomainAccumulator, Edge
from joulemeter.meter.errors import SourceUnavailable
from joulemeter.meter.run import Domain, Gap, Sample, Window
from joulemeter.meter.sources.base import Reading, Source
from joulemeter.meter.timeline import DEFAULT_MAX_TICKS, Timeline

log = logging.getLogger("joulemeter.sampler")

#: A tick this many intervals late (and at least _STALL_MIN_S) is a hole in sampling.
_STALL_INTERVALS = 10
_STALL_MIN_S = 1.0
#: Edge reads come at most this often: RAPL's package counter "is updated every ~1msec"
#: (Intel SDM vol. 3B, "Package RAPL Domain", MSR_PKG_ENERGY_STATUS), NVML's energy counter
#: and CPU time (clock ticks of 10 ms, USER_HZ = 100, man 5 proc) more slowly, so reading
#: more often gives nothing and costs CPU.
_EDGE_READ_MIN_S = 0.001


def read_counters(source: Source) -> list[Reading]:
    """The source's cheap cumulative counter readings ([] where it has none)."""
    reader = getattr(source, "read_counters", None)  # optional: sources without one tick only
    return reader() if reader is not None else []


class Sampler:
    """Reads sources every `interval_s` on a daemon thread; times are seconds since `t0`.

    `keep_unwritten`: hold each sample until `release` (a ledger writer takes them);
    otherwise only the Timeline keeps any. `open_windows`: the meter's windows still open
    (read at ticks, to keep their start energies while the readings before them are dropped).
    `timeline`: False takes no ticks, only counter reads (start, edges, stop); every domain
    must have a counter then (SourceUnavailable at `start` otherwise). `max_interval_s`: the
    longest interval an adaptive timeline stretches to while power holds steady (None:
    fixed at `interval_s`).
    """

    def __init__(
        self,
        sources: Sequence[Source],
        domains: Sequence[Domain],
        *,
        interval_s: float = 1.0,
        max_interval_s: float | None = None,
        t0: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        keep_unwritten: bool = False,
        max_ticks: int = DEFAULT_MAX_TICKS,
        open_windows: Sequence[Window] = (),
        timeline: bool = True,
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"sampling interval must be positive, got {interval_s!r} s")
        self.sources = list(sources)
        self.interval_s = interval_s
        self.clock = clock
        self.t0 = clock() if t0 is None else t0
        self.accumulators = {d.name: DomainAccumulator(d) for d in domains}
        self.timeline = Timeline(max_ticks)
        self.cadence = Cadence(interval_s, max_interval_s)
        self.stall_s = max(_STALL_INTERVALS * interval_s, _STALL_MIN_S)  # beyond the planned interval
        self._keep_unwritten = keep_unwritten
        self.ticks = timeline  # False: counter reads only (start, edges, stop), no samples
        self._unwritten: list[Sample] = []
        self._released = 0  # the samples before this index (counted from the first) left memory
        self._counter_sources: list[Source] = []
        self._counter_domains: frozenset[str] = frozenset()
        self._marked: deque[Edge] = deque()  # live figures' edges not yet handed to the accumulators
        self._open_windows = open_windows
        self._closed: deque[Window] = deque()  # closed windows whose energy is not known yet
        self._starts: dict[int, dict[str, float]] = {}  # id(window) -> energy at its start, kept
        self._forget_s = -math.inf  # the readings before this go at the next tick
        self._edge_read_at = -math.inf
        self._last_tick_s: float | None = None
        self._planned_s = interval_s  # the interval the coming tick was planned after
        self._windows_wait_for_tick = False  # adaptive, and a domain without counter: windows wait for a tick
        self._watched = False  # a live figure was asked for while the timeline was stretched
        self._readings = 0  # ticks and edge reads accounted so far
        self._lock = threading.Lock()
        self._read = threading.Condition(self._lock)  # notified after every reading
        self._wake = threading.Event()
        self._poked = False  # an edge asked for a counter read that has not begun yet
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        #: Called on the thread after each tick (outside the lock): the run's writer flushes
        #: the tick to its journal there, so its own thread wakes only for the ledger.
        self.after_tick: Callable[[], None] | None = None
        self._domains_by_source: dict[int, list[str]] = {}  # learnt from each source's reads

    # -- life cycle ------------------------------------------------------------
    def start(self) -> None:
        """Take a first reading (the energy origin), learn which sources have counters, and
        start the thread."""
        if self.ticks:
            self.read_once()
        first: list[tuple[Source, list[Reading]]] = []
        for source in self.sources:
            try:
                readings = [r for r in read_counters(source) if r.energy_j is not None]
            except Exception as exc:  # then it is read at ticks only
                log.info("%s cannot read its counters between ticks: %s", source.name, exc)
                continue
            domains = {r.domain for r in readings} & self.accumulators.keys()
            if domains:
                self._counter_sources.append(source)
                self._counter_domains |= domains
                first.append((source, readings))
        if not self.ticks:
            self._start_from_counters(first)
        uncounted = self.accumulators.keys() - self._counter_domains
        self._windows_wait_for_tick = self.ticks and self.cadence.adaptive and bool(uncounted)
        self._thread = threading.Thread(target=self._loop, name="joulemeter-sampler", daemon=True)
        self._thread.start()

    def _start_from_counters(self, first: list[tuple[Source, list[Reading]]]) -> None:
        """Without ticks: every domain's energy origin is its first counter reading; a domain
        without a counter cannot be measured, so say which and why."""
        uncounted = sorted(self.accumulators.keys() - self._counter_domains)
        if uncounted:
            raise SourceUnavailable(
                ", ".join(uncounted),
                "no energy counter to read at the edges: its energy comes from power sampled "
                "over time, which needs a timeline",
                "meter it with the timeline on, or meter only devices that have a counter",
            )
        t_s = self.now()
        with self._lock:
            for _, readings in first:
                for reading in readings:
                    accumulator = self.accumulators.get(reading.domain)
                    if accumulator is not None:  # the baseline, read as energy only: no power, no sample
                        accumulator.add(t_s, Reading(reading.domain, energy_j=reading.energy_j))
            self._last_tick_s = t_s

    def stop(self) -> None:
        """Stop the thread, take a last reading, settle every edge. Safe to call twice."""
        if self._thread is not None:
            self._stopping.set()
            self._wake.set()
            self._thread.join()
            self._thread = None
            if self.ticks:
                self.read_once()
            else:
                self.read_edges()
            with self._lock:
                self._hand_out_edges()
                for accumulator in self.accumulators.values():
                    accumulator.settle_edges()
                self._settle_windows(math.inf)

    # -- edges -------------------------------------------------------------------
    def mark_edge(self) -> float:
        """An edge now (run seconds): the thread reads the counters just after it.

        No lock and nothing kept (a window per step must cost next to nothing); a tick
        stamped just after the edge whose sources were read just before it gives it its value."""
        t_s = self.clock() - self.t0
        self._poke()
        return t_s

    def _poke(self) -> None:
        """Ask the thread for a counter read, unless one asked for has not begun yet."""
        if (self._counter_sources or self._windows_wait_for_tick) and not self._poked:
            self._poked = True  # cleared by the thread before it reads: a later edge pokes again
            self._wake.set()

    def close_window(self, window: Window) -> None:
        """`window` ended at `window.end_s` (a `mark_edge`): its energy per domain is filled
        in once every domain has been read past that edge."""
        self._closed.append(window)  # deque.append is atomic: no lock on the caller's path
        if not self.ticks or (self._windows_wait_for_tick and self.cadence.backed_off):
            self._poke()  # the edge's read may have come before the window did: no tick soon

    def _hand_out_edges(self) -> None:
        """Give the accumulators the edges marked since the last reading (under the lock)."""
        marked = self._marked
        while marked:
            edge = marked.popleft()
            for accumulator in self.accumulators.values():
                accumulator.wait_for(edge)

    def energy_now_j(self, timeout_s: float = 0.05) -> dict[str, float]:
        """Cumulative energy per domain now (J): counter domains read for it (waiting at most
        `timeout_s`), the others as of their latest tick."""
        self._watch()
        with self._lock:
            readings = self._readings  # any reading after this one is fresh: it read after now
        edge = Edge(self.now(), len(self.accumulators))
        self._marked.append(edge)  # before the edge's read is asked for, so that read fills it in
        self.mark_edge()
        with self._read:
            if self._thread is not None and self._counter_domains:
                self._read.wait_for(lambda: self._readings > readings, timeout_s)
            return {name: edge.energy_j.get(name, a.energy_j) for name, a in self.accumulators.items()}

    # -- reading -----------------------------------------------------------------
    def now(self) -> float:
        """Seconds since t0 on the sampler's clock."""
        return self.clock() - self.t0

    def read_once(self) -> list[Sample]:
        """Read every source once (a tick) and account the readings; returns the new samples."""
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
            self._hand_out_edges()
            late = self._last_tick_s is not None and t_s - self._last_tick_s > self._planned_s - self.interval_s + self.stall_s
            for reading in batch:
                accumulator = self.accumulators.get(reading.domain)
                if accumulator is not None:
                    if late:
                        accumulator.missed(t_s, f"no reading for {t_s - self._last_tick_s:.1f} s: "
                                           "the sampling thread was not scheduled")
                    new.append(accumulator.add(t_s, reading))
            if new:
                self.timeline.add(new)
                if self._keep_unwritten:
                    self._unwritten.extend(new)
            self._last_tick_s = t_s
            self._readings += 1
            self._settle_windows(self._read_past_s())
            self._forget_old_readings()
            self._read.notify_all()
        return new

    def read_edges(self) -> None:
        """Read only the cheap counters (for the edges marked since the last reading)."""
        batch: list[Reading] = []
        for source in self._counter_sources:
            try:
                batch.extend(read_counters(source))
            except Exception as exc:  # the next tick reads it (and records a gap if it fails)
                log.debug("reading the counters of %s failed: %s", source.name, exc)
        t_s = self.now()
        with self._lock:
            self._hand_out_edges()
            for reading in batch:
                accumulator = self.accumulators.get(reading.domain)
                if accumulator is not None:
                    accumulator.add_counter(t_s, reading)
            self._readings += 1
            if self._closed:
                self._settle_windows(self._read_past_s())
            if not self.ticks:  # no tick comes to do it
                self._last_tick_s = t_s
                self._forget_old_readings()
            self._read.notify_all()

    # -- windows -----------------------------------------------------------------
    def _read_past_s(self) -> float:
        """Every domain has been read after any instant before this (run seconds)."""
        return min((a.trace.last_s for a in self.accumulators.values()), default=math.inf)

    def _settle_windows(self, read_past_s: float) -> None:
        """Fill in the energy of the closed windows that ended before `read_past_s` (math.inf:
        all of them, from what was read; the run has stopped)."""
        closed, ready = self._closed, []
        while closed and closed[0].end_s < read_past_s:  # type: ignore[operator]
            ready.append(closed.popleft())
        if not ready:
            return
        spans = [(w.start_s, w.end_s) for w in ready]
        columns = [(name, a.trace.between_each(spans)) for name, a in self.accumulators.items()]  # type: ignore[arg-type]
        for i, window in enumerate(ready):
            window.energy_j = {name: energies[i] for name, energies in columns}
        if self._starts:  # windows that outlived the readings at their start
            for window in ready:
                start = self._starts.pop(id(window), None)
                if start is not None:
                    end = self._energy_at(window.end_s)  # type: ignore[arg-type]
                    window.energy_j = {name: max(j - start[name], 0.0) for name, j in end.items()}

    def _energy_at(self, t_s: float) -> dict[str, float]:
        return {name: a.energy_at(t_s) for name, a in self.accumulators.items()}

    def _forget_old_readings(self) -> None:
        """Drop the readings that no window needs any more (at a tick, under the lock).

        Open windows read past their start keep their start energies; the readings go one
        tick late, so a window whose start was stamped just before a tick and registered
        just after it still finds them."""
        read_past_s = self._read_past_s()
        for window in list(self._open_windows):
            if window.start_s < read_past_s and id(window) not in self._starts:
                self._starts[id(window)] = self._energy_at(window.start_s)
        for accumulator in self.accumulators.values():
            accumulator.forget_before(self._forget_s)
        pending = (w.start_s for w in list(self._closed) if id(w) not in self._starts)  # a copy: callers append
        self._forget_s = min(read_past_s, min(pending, default=math.inf))

    # -- what was read -------------------------------------------------------------
    def unwritten(self, start: int) -> tuple[list[Sample], int]:
        """The samples from the `start`-th on (counted from the first; whole ticks) that are
        still in memory, and the count of samples taken so far (for the ledger's writer)."""
        with self._lock:
            return self._unwritten[max(start - self._released, 0):], self._released + len(self._unwritten)

    def release(self, upto: int) -> None:
        """The first `upto` samples are safe in the ledger or its spool: let them leave memory."""
        with self._lock:
            drop = upto - self._released
            if drop > 0:
                del self._unwritten[:drop]
                self._released = upto

    def history(self) -> list[Sample]:
        """The timeline's samples older than every sample still in memory (what a rewrite of
        the whole run has left of those that were released)."""
        with self._lock:
            first_t = self._unwritten[0].t_s if self._unwritten else math.inf
            return [s for s in self.timeline.samples() if s.t_s < first_t] if self._released else []

    def samples(self) -> list[Sample]:
        """The timeline: every tick of a short run, evenly thinned for a long one."""
        with self._lock:
            return self.timeline.samples()

    def tick_interval_s(self) -> float:
        """How far apart ticks come now (s): `interval_s`, or more while an adaptive timeline
        is stretched; infinite without ticks."""
        return self.cadence.interval_s if self.ticks else math.inf

    def last_tick_s(self) -> float | None:
        """Run time of the latest tick (without ticks: of the latest counter read), None
        before the first."""
        return self._last_tick_s

    def gaps(self) -> list[Gap]:
        """Every gap so far, open ones closed at the current time."""
        t_s = self.now()
        with self._lock:
            return [g for a in self.accumulators.values() for g in a.finish(t_s)]

    def energy_j(self) -> dict[str, float]:
        """Cumulative energy per domain up to the latest reading (J)."""
        with self._lock:
            return {name: a.energy_j for name, a in self.accumulators.items()}

    def peak_power_w(self) -> dict[str, float]:
        """The highest power read at a tick per domain (W), where one was read."""
        with self._lock:
            return {n: a.peak_power_w for n, a in self.accumulators.items() if a.peak_power_w is not None}

    def latest_power_w(self) -> dict[str, float | None]:
        """Power per domain at the latest tick (W), None where none was read."""
        self._watch()
        with self._lock:
            return {name: a.latest_power_w for name, a in self.accumulators.items()}

    def _loop(self) -> None:
        next_tick = self.clock() + self.interval_s if self.ticks else math.inf
        while True:
            poked = self._wake.wait(max(next_tick - self.clock(), 0.0) if self.ticks else None)
            if self._stopping.is_set():
                break
            if self.clock() >= next_tick:
                self._serve_pokes()
                tick_at = self.clock()
                interval_s = self.cadence.after_tick(self.read_once())
                if self._take_watch():
                    interval_s = self.interval_s
                self._after_tick()
                next_tick = self._next_tick(next_tick, tick_at, interval_s)
            elif poked:
                pause = self._edge_read_at + _EDGE_READ_MIN_S - self.clock()
                if pause > 0 and self._stopping.wait(pause):
                    break
                self._serve_pokes()
                self._edge_read_at = self.clock()
                self.read_edges()
                if self._take_watch() or (self._closed and self._windows_wait_for_tick):
                    next_tick = min(next_tick, self._edge_read_at + self.interval_s)

    def _watch(self) -> None:
        """A live figure is asked for: a stretched timeline ticks at `interval_s` again (the
        thread resets its cadence, so no other thread touches it)."""
        if self.ticks and self.cadence.backed_off and not self._watched:
            self._watched = True
            self._wake.set()

    def _take_watch(self) -> bool:
        """On the thread: whether a live figure was asked for since the last look; if so the
        cadence is back at `interval_s`."""
        if not self._watched:
            return False
        self._watched = False
        self.cadence.reset()
        return True

    def _next_tick(self, due: float, tick_at: float, interval_s: float) -> float:
        """When the tick after the one due at `due` (taken at `tick_at`) comes: a fixed
        timeline keeps its grid (skipping the ticks it was too late for), an adaptive one
        counts `interval_s` from this tick."""
        if self.cadence.adaptive:
            self._planned_s = interval_s
            return tick_at + interval_s
        return due + self.interval_s * (1 + int((self.clock() - due) // self.interval_s))

    def _after_tick(self) -> None:
        hook = self.after_tick
        if hook is not None:
            try:
                hook()
            except Exception:  # the hook's bug must not end sampling
                log.exception("the sampler's after-tick hook failed")

    def _serve_pokes(self) -> None:
        """The reading about to begin serves every edge marked so far; a later edge pokes again
        (the event first: an edge marked in between then pokes once more, never not at all)."""
        self._wake.clear()
        self._poked = False
