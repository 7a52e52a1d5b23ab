"""EnergyMeter: meter any code as a context manager or a decorator, with windows and units.

    with EnergyMeter("train-resnet") as m:
        with m.window("train"):
            ...
            m.count_batch(batch)  # or m.count(n, unit="tokens")
    m.run.total_energy_j

The run is written to the ledger while it goes (row at start, samples every second, from
a writer thread of its own) and closed as `completed`, `failed` (the code raised) or
`interrupted` (KeyboardInterrupt, SIGTERM, interpreter exit). A ledger that fails is
never the metered code's problem: the writer warns and keeps the run in a local spool.
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import difflib
import functools
import inspect
import logging
import math
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar

from joulemeter.meter.batch import batch_size
from joulemeter.meter.cadence import DEFAULT_TOLERANCE
from joulemeter.meter.energy import totals
from joulemeter.meter.errors import InvalidCountError, MeterStateError
from joulemeter.meter.limits import check_name, check_run_fields
from joulemeter.meter.place import resolve_location
from joulemeter.meter.run import Domain, Provenance, Run, Status, Window
from joulemeter.meter.sampler import Sampler
from joulemeter.meter.sources.base import Source
from joulemeter.meter.store.storable import make_storable

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from joulemeter.meter.store import Ledger
    from joulemeter.meter.store.writer import RunWriter

log = logging.getLogger("joulemeter")

F = TypeVar("F", bound=Callable[..., Any])
M = TypeVar("M")

#: The timeline's interval when no `interval_s` is given. Energy comes from counters read
#: at the edges (and at every tick), so the timeline is only the picture: 1 s is enough for
#: plots and peaks; domains measured by sampling power alone (SAMPLED) are integrated from
#: it, so they get NVML's power-reading update of about 100 ms (docs/measuring.md, "NVML").
_TIMELINE_INTERVAL_S = 1.0
_SAMPLED_INTERVAL_S = 0.1
#: ... and how far that default timeline stretches while power holds steady (meter/cadence.py):
#: an idle run then costs a tick every 30 s, and the ledger's 30 s heartbeat keeps its pace.
_MAX_INTERVAL_S = 30.0

#: What a run without a timeline records in its metadata (`timeline`), so that a reader
#: knows why it has no power samples and what a killed one kept.
_NO_TIMELINE = ("off: energy from counters read at start, window edges and stop, and every 30 s "
                "for a heartbeat (one energy sample per domain, no power: into the journal, and every "
                "2 minutes the ledger); killed before it stopped, the run keeps its energy up to the "
                "last of those")

#: NVML's energy counter updates about every 100 ms (docs/measuring.md, "NVML"): shorter
#: windows on a counter GPU can read 0 J, so they get a note. Used where the source did
#: not measure the period (Source.counter_update_s).
_COUNTER_UPDATE_S = 0.1

#: The meters running in this context, innermost last: EnergyMeters and the integrations'
#: meters around them (TrainingMeter), so each is found by its type (`current`).
_running: contextvars.ContextVar[tuple[object, ...]] = contextvars.ContextVar(
    "joulemeter_running_meters", default=()
)


def current(kind: type[M]) -> M | None:
    """The innermost meter of type `kind` running in this context, if any."""
    return next((m for m in reversed(_running.get()) if isinstance(m, kind)), None)


def push_running(meter: object) -> contextvars.Token[tuple[object, ...]]:
    """Make `meter` the innermost running meter; pass the token to `pop_running` on exit."""
    return _running.set((*_running.get(), meter))


def pop_running(token: contextvars.Token[tuple[object, ...]]) -> None:
    """Undo the `push_running` that gave `token`."""
    _running.reset(token)


def current_meter() -> EnergyMeter | None:
    """The innermost EnergyMeter running in this context, if any."""
    return current(EnergyMeter)


class MeterOptions(TypedDict, total=False):
    """EnergyMeter's options, defaults in brackets; integrations take them as they are.

    project ("default"), tags, metadata: stored with the run for filtering and reports.
    devices: kinds or domains to meter, e.g. ["gpu"], ["gpu:0", "cpu"] (None: all).
    interval_s: timeline interval (1 s, or 0.1 s where a domain is measured by sampling power;
    energy comes from counters at window edges either way).
    max_interval_s: an adaptive timeline's longest interval: it ticks every `interval_s` while
    power moves and stretches to this while every domain holds within 5 % (30 s by default;
    a given `interval_s` alone keeps the timeline fixed at it, for fine plots, and so does a
    maximum below the default interval; never where a domain is measured by sampling power,
    whose energy is integrated from the ticks).
    timeline: False keeps no timeline, as Zeus does: counters are read only at start, window
    edges, live figures and stop, so an idle run costs next to no CPU; the run has no samples
    (no plot, no peak power), its energy, windows and units are exact. Every domain needs an
    energy counter (SourceUnavailable at start otherwise), and a run killed before it stops
    keeps the energy its latest heartbeat (every 30 s, to the journal) wrote (True).
    flush_interval_s: ledger writes (1 s): a killed
    process loses about this much, plus the time one write takes (at most 0.5 s).
    idle_baseline_s: seconds of idle power to measure before the run (0: off).
    ledger: ledger path or database URL (None: $JOULEMETER_LEDGER or the user default).
    store: False keeps the run in memory only (True).
    pid: estimate CPU/RAM of this process tree instead of the whole machine.
    replay: a recorded power trace (CSV) to play back instead of real sources.
    sync: called at every window edge, e.g. torch.cuda.synchronize.
    sync_devices: wait for the work queued on the metered GPUs at start, stop and every
    window edge (True), as Zeus does, so it is counted where it was asked for; only where
    CUDA already runs in this process. False for code that synchronises itself.
    sources: already opened sources (tests, custom hardware); skips discovery.
    country, region: where the run runs, for its grid intensity (ISO code or name, e.g. "DE",
    "CA-QC"); None: $JOULEMETER_COUNTRY/$JOULEMETER_REGION, joulemeter.toml, cloud variables
    (meter.place), else not recorded.
    """

    project: str
    tags: Sequence[str]
    metadata: dict[str, Any] | None
    devices: Sequence[str] | None
    interval_s: float
    max_interval_s: float
    timeline: bool
    idle_baseline_s: float
    ledger: str | os.PathLike[str] | Ledger | None
    store: bool
    pid: int | None
    replay: str | os.PathLike[str] | None
    sync: Callable[[], None] | None
    sync_devices: bool
    sources: Sequence[Source] | None
    flush_interval_s: float
    country: str | None
    region: str | None


def check_meter_options(
    options: Mapping[str, object], caller: str = "EnergyMeter", accepted: type = MeterOptions
) -> None:
    """Raise TypeError naming any key of `options` that the TypedDict `accepted` lacks."""
    known = accepted.__optional_keys__
    for name in options:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; the options are {sorted(known)}"
            raise TypeError(f"{caller}() got an unknown meter option {name!r}{hint}")


def extend_options(
    options: MeterOptions,
    *,
    tags: Sequence[str] = (),
    metadata: Mapping[str, Any] | None = None,
    sync: Callable[[], None] | None = None,
) -> MeterOptions:
    """A copy of a caller's options with an integration's tags and metadata added, and its sync
    (run after the caller's own, when both are given)."""
    extended = options.copy()
    extended["tags"] = [*options.get("tags", ()), *tags]
    extended["metadata"] = {**(options.get("metadata") or {}), **(metadata or {})}
    callers_sync = options.get("sync")
    extended["sync"] = sync if callers_sync is None or sync is None else _in_turn(callers_sync, sync)
    return extended


def _in_turn(*syncs: Callable[[], None]) -> Callable[[], None]:
    """One sync function that calls each of `syncs` in order."""

    def sync_all() -> None:
        for sync in syncs:
            sync()

    return sync_all


def _seconds_or_none(name: str, value: object) -> float | None:
    """`value` as a positive, finite number of seconds (None stays None), else a ValueError
    naming the option: nan or inf would stop the meter's threads mid-run."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise ValueError(f"{name} must be a positive, finite number of seconds, got {value!r}")
    return float(value)


def _adaptive_words(interval_s: float, max_interval_s: float) -> str:
    """What an adaptive timeline's run records in its metadata (`timeline`)."""
    return (f"adaptive: a tick every {interval_s:g} s while power moves, stretching to every "
            f"{max_interval_s:g} s while each domain holds within {DEFAULT_TOLERANCE * 100:g} %")


def _valid_count(n: object, unit: object) -> float:
    """`n` as a float if it is a finite, non-negative amount of a named unit, else InvalidCountError."""
    if not isinstance(unit, str) or not unit:
        raise InvalidCountError(f"count() needs a unit name, e.g. unit='samples'; got {unit!r}")
    check_name(unit, "unit")
    try:
        value = float(n) if not isinstance(n, (str, bytes)) else math.nan  # 0-d tensors, numpy too
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise InvalidCountError(
            f"count({n!r}, unit={unit!r}): the amount must be a finite number of at least 0"
        )
    return value


class EnergyMeter:
    """Meters energy of the code it wraps and produces a `Run`.

    `name` defaults to "run"; the options are those of `MeterOptions`.
    """

    def __init__(self, name: str | None = None, **options: Unpack[MeterOptions]) -> None:
        check_meter_options(options)
        interval_s = _seconds_or_none("interval_s", options.get("interval_s"))
        idle_baseline_s = options.get("idle_baseline_s", 0.0)
        self.timeline = options.get("timeline", True)
        max_interval_s = _seconds_or_none("max_interval_s", options.get("max_interval_s"))
        if not self.timeline and (interval_s is not None or max_interval_s is not None):
            raise ValueError("interval_s and max_interval_s set the timeline: a meter with timeline=False has none")
        if max_interval_s is not None and max_interval_s < (interval_s or 0):
            raise ValueError(f"max_interval_s must be at least interval_s, got {max_interval_s!r} < {interval_s!r}")
        if idle_baseline_s < 0:
            raise ValueError(f"idle_baseline_s must be >= 0, got {idle_baseline_s!r}")
        devices, sources = options.get("devices"), options.get("sources")
        self.name = name or "run"
        self.project = options.get("project", "default")
        self.tags = list(options.get("tags", ()))
        self.metadata = dict(options.get("metadata") or {})
        check_run_fields(self.name, self.project, self.tags, self.metadata)
        self.devices = list(devices) if devices is not None else None
        self.interval_s: float | None = interval_s  # None: chosen for the domains at start
        #: None: chosen at start (adaptive unless interval_s was given or power is sampled)
        self.max_interval_s: float | None = max_interval_s if interval_s is None or max_interval_s else interval_s
        self.idle_baseline_s = idle_baseline_s
        self.store = options.get("store", True)
        self.pid = options.get("pid")
        self.replay = options.get("replay")
        self.sync = options.get("sync")
        self.sync_devices = options.get("sync_devices", True)
        self.flush_interval_s = options.get("flush_interval_s", 1.0)
        self._ledger_location = options.get("ledger")
        self.country, self.region = options.get("country"), options.get("region")
        self._given_sources = list(sources) if sources is not None else None
        self._sources: list[Source] = []
        self._queued_sources: list[Source] = []  # those with a queue to wait for (sync_devices)
        self._domains: list[Domain] = []
        self._fallbacks: list[str] = []
        self._ledger: Ledger | None = None
        self._writer: RunWriter | None = None
        self._sampler: Sampler | None = None
        self._run: Run | None = None
        self._open_windows: list[Window] = []
        self._windows: list[Window] = []
        self._idle_power_w: dict[str, float] | None = None
        self._power_bounds: dict[str, tuple[float, float, str]] = {}  # estimated domains' model range
        self._token: contextvars.Token[tuple[object, ...]] | None = None
        self._previous_sigterm: Any = None
        self._lock = threading.Lock()

    # -- public API --------------------------------------------------------------
    @property
    def run(self) -> Run:
        """The run being measured (live) or measured (after stop)."""
        if self._run is None:
            raise MeterStateError("the meter has not started: use `with EnergyMeter(...)` or start()")
        return self._run

    @property
    def domains(self) -> list[Domain]:
        return list(self._domains)

    @property
    def running(self) -> bool:
        return self._sampler is not None

    @property
    def ledger_problem(self) -> str | None:
        """Why the ledger refuses this run's writes right now (its samples are spooled), else None."""
        writer = self._writer
        return writer.problem if writer is not None else None

    def start(self) -> Run:
        """Open sources, measure the idle baseline if asked, start sampling and the ledger row."""
        if self._run is not None:
            raise MeterStateError("this meter already ran; create a new EnergyMeter per run")
        location = resolve_location(self.country, self.region)  # a bad joulemeter.toml fails here, first
        self._open_sources()
        sampled = [d.name for d in self._domains if d.provenance is Provenance.SAMPLED]
        if self.interval_s is None:  # never above a longest interval asked for
            default_s = _SAMPLED_INTERVAL_S if sampled else _TIMELINE_INTERVAL_S
            self.interval_s = min(default_s, self.max_interval_s or default_s)
        self.max_interval_s = self._max_interval(sampled)
        if self.idle_baseline_s > 0:
            self._idle_power_w = self._measure_idle()
        run = Run(
            id=uuid.uuid4().hex,
            name=self.name,
            project=self.project,
            tags=self.tags,
            status=Status.RUNNING,
            started_at=_utc_now(),
            interval_s=self.interval_s,
            host=_host_info(),
            domains=list(self._domains),
            metadata=self.metadata,
            location=location,
        )
        if self._fallbacks:
            run.metadata.setdefault("fallbacks", self._fallbacks)
        if not self.timeline:
            run.metadata.setdefault("timeline", _NO_TIMELINE)
        elif self.max_interval_s > self.interval_s:
            run.metadata.setdefault("timeline", _adaptive_words(self.interval_s, self.max_interval_s))
        self._run = run
        self._windows = run.windows  # the window path's own reference: a step's window is appended here
        if self.store:
            self._ledger = self._open_ledger()
        self._synchronize_devices()  # work queued before the run is not the run's
        self._sampler = Sampler(self._sources, self._domains, interval_s=self.interval_s,
                                max_interval_s=self.max_interval_s,
                                keep_unwritten=self._ledger is not None, open_windows=self._open_windows,
                                timeline=self.timeline)
        try:
            self._sampler.start()
        except Exception:  # nothing was measured: release what start opened
            self._sampler = None
            self._close_sources()
            if self._ledger is not None and self._ledger is not self._ledger_location:
                self._ledger.close()
            raise
        if self._ledger is not None:
            self._start_writer(self._ledger, run, self._sampler)
        self._install_exit_handlers()
        log.info("run %s (%s) started with domains %s", run.id[:8], run.name, [d.name for d in self._domains])
        return run

    def stop(self, status: Status = Status.COMPLETED, error: str | None = None) -> Run:
        """Stop sampling, account windows and energy, close the ledger row. Idempotent."""
        with self._lock:
            sampler, self._sampler = self._sampler, None
        if sampler is None:
            return self.run
        self._remove_exit_handlers()
        run = self.run
        details: dict[str, dict[str, Any]] = {}
        periods: dict[str, float] = {}
        try:
            self._synchronize_devices()  # work queued in the run is the run's
            end_s = sampler.mark_edge()
            for window in reversed(self._open_windows):
                window.end_s = end_s
                sampler.close_window(window)
            self._open_windows.clear()
            sampler.stop()  # its last reading settles every window
            details, periods = self._source_details(sampler.t0)
        finally:
            self._close_sources()
        # The run ends at its last reading, not after sources closed and the ledger wrote.
        last_tick_s = sampler.last_tick_s()
        run.duration_s = last_tick_s if last_tick_s is not None else sampler.now()
        run.ended_at = _utc_now()
        run.status = status
        run.error = error
        run.samples = sampler.samples()
        run.gaps = sampler.gaps()
        run.energy = totals(self._domains, sampler.energy_j(), sampler.peak_power_w(),
                            run.duration_s, self._idle_power_w)
        if details:
            run.metadata["devices"] = details
        self._account_windows(run, periods)
        for fixed in make_storable(run):
            log.warning("run %s: %s; stored in a form the ledger takes", run.id[:8], fixed)
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.finish(run)  # never raises: what the ledger refuses stays in the spool
            if writer.ledger is not self._ledger_location:  # close only what we opened
                writer.ledger.close()
        log.info("run %s %s: %.3f J", run.id[:8], status.value, run.total_energy_j)
        return run

    def window(self, name: str) -> contextlib.AbstractContextManager[Window]:
        """A named span; nest and repeat freely. Its energy is filled in once every domain has
        been read past its end (the next counter read, else the next tick), or when the run stops."""
        return _WindowScope(self, name)

    def count(self, n: float, unit: str = "samples") -> None:
        """Record `n` units of work (samples, tokens, steps, inferences) in every open window.

        A NaN, infinite, negative or non-numeric `n` raises InvalidCountError here, at the
        call, and leaves the run's units as they were.
        """
        n = _valid_count(n, unit)
        run = self.run
        run.units[unit] = run.units.get(unit, 0.0) + n
        for window in self._open_windows:
            window.units[unit] = window.units.get(unit, 0.0) + n

    def count_batch(self, batch: object, unit: str = "samples") -> int:
        """Record one batch's examples as `count` does, and return how many: the leading
        dimension of its first tensor (a DataLoader's `(x, y)`, a dict of tensors), or the
        length of a list of examples (meter/batch.py); InvalidCountError if it cannot tell."""
        n = batch_size(batch)
        self.count(n, unit)
        return n

    def energy_so_far_j(self) -> dict[str, float]:
        """Cumulative energy per domain now (J): energy counters are read for it (well under a
        millisecond), domains without one count up to their latest reading."""
        sampler = self._sampler  # read once: stop() may clear it concurrently
        if sampler is not None:
            return sampler.energy_now_j()
        return {name: e.energy_j for name, e in self.run.energy.items()}

    def power_now_w(self) -> dict[str, float | None]:
        """Latest power per domain (W), while running."""
        sampler = self._sampler
        return sampler.latest_power_w() if sampler is not None else {}

    def elapsed_s(self) -> float:
        sampler = self._sampler
        return sampler.now() if sampler is not None else (self.run.duration_s or 0.0)

    # -- context manager and decorator ------------------------------------------
    def __enter__(self) -> EnergyMeter:
        self.start()
        self._token = push_running(self)
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if self._token is not None:
            pop_running(self._token)
            self._token = None
        if exc is None:
            status, error = Status.COMPLETED, None
        elif isinstance(exc, (KeyboardInterrupt, SystemExit)):
            status, error = Status.INTERRUPTED, f"{type(exc).__name__}: {exc}".rstrip(": ")
        else:
            status, error = Status.FAILED, f"{type(exc).__name__}: {exc}"
        self.stop(status, error)

    # -- internals ---------------------------------------------------------------
    def _open_window(self, name: str) -> Window:
        check_name(name, "name")
        sampler = self._sampler
        if sampler is None:
            raise MeterStateError(f"window {name!r} opened outside a running meter")
        if self.sync is not None or self._queued_sources:
            self._edge_sync()
        open_windows = self._open_windows
        path = f"{open_windows[-1].path}/{name}" if open_windows else name
        window = Window(name, path, sampler.mark_edge())
        self._windows.append(window)
        open_windows.append(window)
        return window

    def _close_window(self, window: Window) -> None:
        if self.sync is not None or self._queued_sources:
            self._edge_sync()
        sampler = self._sampler
        if sampler is None or window.end_s is not None:
            return  # the run stopped inside the window, and closed it then
        window.end_s = sampler.mark_edge()
        open_windows = self._open_windows
        if open_windows and open_windows[-1] is window:
            open_windows.pop()
        else:
            open_windows.remove(window)
        sampler.close_window(window)

    def _edge_sync(self) -> None:
        """The caller's sync and the devices' queues, before a window edge is stamped."""
        if self.sync is not None:
            self.sync()
        if self._queued_sources:
            self._synchronize_devices()

    def _synchronize_devices(self) -> None:
        """Wait for work queued on the metered devices (sources that have a queue: CUDA)."""
        for source in self._queued_sources:
            try:
                source.synchronize()
            except Exception:  # a failed sync must not fail the metered code
                log.warning("synchronising %s failed", source.name, exc_info=True)

    def _source_details(self, t0_s: float) -> tuple[dict[str, dict[str, Any]], dict[str, float]]:
        """What the sources learnt per domain (for the run's metadata) and their measured
        counter update periods."""
        details: dict[str, dict[str, Any]] = {}
        periods: dict[str, float] = {}
        for source in self._sources:
            try:
                details.update(source.details(t0_s))
                periods.update(source.counter_update_s())
                self._power_bounds.update(source.power_bounds_w())
            except Exception:
                log.warning("%s could not say what it learnt", source.name, exc_info=True)
        return details, periods

    def _account_windows(self, run: Run, periods: Mapping[str, float] | None = None) -> None:
        """Each window's energy per domain (from its edges); a note where it is shorter than a GPU counter's
        update period (measured where the source measured it, else the typical 100 ms), and an
        estimated domain held within its model's power range (`_held_within_model`)."""
        periods = periods or {}
        counter_gpus = [d.name for d in self._domains if d.kind == "gpu" and d.provenance is Provenance.COUNTER]
        for window in run.windows:
            duration_s = window.duration_s
            if duration_s is None:
                continue
            notes = []
            short = [g for g in counter_gpus if duration_s < periods.get(g, _COUNTER_UPDATE_S)]
            if short:
                period_s = max(periods.get(g, _COUNTER_UPDATE_S) for g in short)
                how = "measured" if all(g in periods for g in short) else "typical"
                notes.append(f"shorter than the ~{period_s * 1000:.0f} ms update period ({how}) of the GPU "
                             "energy counter: GPU energy may read low or 0")
            notes += _held_within_model(window, duration_s, self._power_bounds)
            if notes:
                window.note = "; ".join(notes)

    def _max_interval(self, sampled: list[str]) -> float:
        """The adaptive timeline's longest interval: the one asked for, else _MAX_INTERVAL_S;
        the fixed interval where a domain's energy is integrated from sampled power, or where
        there is no timeline to stretch."""
        assert self.interval_s is not None
        if not self.timeline:
            return self.interval_s
        if sampled:
            if (self.max_interval_s or 0) > self.interval_s:
                log.info("the timeline stays at every %g s: %s measured by sampling power",
                         self.interval_s, ", ".join(sampled))
            return self.interval_s
        return max(self.max_interval_s or _MAX_INTERVAL_S, self.interval_s)

    def _open_sources(self) -> None:
        self._find_sources()
        # only sources that override synchronize have a queue: an edge skips the others
        self._queued_sources = [
            s for s in self._sources if self.sync_devices and type(s).synchronize is not Source.synchronize
        ]

    def _find_sources(self) -> None:
        if self._given_sources is not None:
            self._sources = self._given_sources
            self._domains = [d for s in self._sources for d in s.open()]
            return
        from joulemeter.meter.sources import discover

        found = discover(self.devices, pid=self.pid, replay=self.replay)
        self._sources, self._domains, self._fallbacks = found.sources, found.domains, found.fallbacks
        for note in self._fallbacks:
            log.info("%s", note)
        if not self._domains:
            raise MeterStateError(
                f"no power source can read the devices {self.devices!r} here; "
                "run `joulemeter devices` to see why"
            )

    def _close_sources(self) -> None:
        for source in self._sources:
            try:
                source.close()
            except Exception:
                log.exception("closing %s failed", source.name)

    def _measure_idle(self) -> dict[str, float]:
        """Mean power per domain over `idle_baseline_s` of doing nothing, before the run."""
        assert self.interval_s is not None
        sampler = Sampler(self._sources, self._domains, interval_s=self.interval_s)
        sampler.start()
        time.sleep(self.idle_baseline_s)  # the baseline is, by definition, time spent idle
        sampler.stop()
        duration = sampler.now()
        energy = sampler.energy_j()
        return {name: e / duration for name, e in energy.items()} if duration > 0 else {}

    def _open_ledger(self) -> Ledger:
        """The ledger given, or the one at the location given, opened without recovering
        other runs (that happens on a thread of its own once this run has started)."""
        from joulemeter.meter.store import Ledger, open_ledger

        if isinstance(self._ledger_location, Ledger):
            return self._ledger_location
        return open_ledger(self._ledger_location, recover=False)

    def _start_writer(self, ledger: Ledger, run: Run, sampler: Sampler) -> None:
        from joulemeter.meter.store import Ledger, open_ledger
        from joulemeter.meter.store.writer import RunWriter

        location = self._ledger_location
        ours = not isinstance(location, Ledger)
        self._writer = RunWriter(
            ledger,
            run,
            sampler,
            interval_s=self.flush_interval_s,
            timeline=self.timeline,
            reopen=(lambda: open_ledger(location, recover=False)) if ours else None,  # type: ignore[arg-type]
        )
        self._writer.begin()
        sampler.after_tick = self._writer.flush_to_journal
        if ours:
            threading.Thread(target=_recover, args=(ledger,), name="joulemeter-recovery", daemon=True).start()

    def _install_exit_handlers(self) -> None:
        atexit.register(self._stop_at_exit)
        if threading.current_thread() is threading.main_thread():
            previous = signal.getsignal(signal.SIGTERM)
            if previous in (signal.SIG_DFL, None):
                self._previous_sigterm = previous
                signal.signal(signal.SIGTERM, _raise_system_exit)

    def _remove_exit_handlers(self) -> None:
        atexit.unregister(self._stop_at_exit)
        if self._previous_sigterm is not None and threading.current_thread() is threading.main_thread():
            if signal.getsignal(signal.SIGTERM) is _raise_system_exit:
                signal.signal(signal.SIGTERM, self._previous_sigterm)
            self._previous_sigterm = None

    def _stop_at_exit(self) -> None:
        if self._sampler is not None:
            self.stop(Status.INTERRUPTED, "interpreter exited before the meter was stopped")


class _WindowScope:
    """`with meter.window(name)`: a plain class rather than a generator, as a window per step
    must cost next to nothing."""

    __slots__ = ("meter", "name", "window")

    def __init__(self, meter: EnergyMeter, name: str) -> None:
        self.meter = meter
        self.name = name
        self.window: Window | None = None

    def __enter__(self) -> Window:
        self.window = self.meter._open_window(self.name)
        return self.window

    def __exit__(self, *exc_info: object) -> None:
        if self.window is not None:
            self.meter._close_window(self.window)


def _held_within_model(window: Window, duration_s: float,
                       bounds: Mapping[str, tuple[float, float, str]]) -> list[str]:
    """Hold each estimated domain's energy in `window` within its model's power range × the
    window's duration (a window a few counter ticks long can read more, or less, than the
    model allows); a note for each domain held."""
    notes = []
    for domain, (low_w, high_w, why) in bounds.items():
        joules = window.energy_j.get(domain)
        if joules is None or duration_s <= 0:
            continue
        held = min(max(joules, low_w * duration_s), high_w * duration_s)
        if held != joules:
            window.energy_j[domain] = held
            notes.append(f"{domain}: read {joules / duration_s:.3g} W, held to the estimate's {low_w:.3g}–{high_w:.3g} W "
                         f"({why}: too coarse for a window this short)")
    return notes


def metered(name: str | F | None = None, **meter_options: Unpack[MeterOptions]) -> Any:
    """Decorator: meter every call of a function (sync or async) as its own run, named `name`
    (default: the function's qualified name); `@metered` and `@metered("train", project=…)` alike.

    The latest run is at `fn.last_run`; inside the function `current_meter()` gives
    the meter, for windows and counts.
    """
    if callable(name):  # @metered, without parentheses
        return metered(None, **meter_options)(name)
    check_meter_options(meter_options, "metered")

    def decorate(fn: F) -> F:
        run_name = name or fn.__qualname__
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with EnergyMeter(run_name, **meter_options) as m:
                    async_wrapper.last_run = m.run  # type: ignore[attr-defined]
                    return await fn(*args, **kwargs)

            async_wrapper.last_run = None  # type: ignore[attr-defined]
            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with EnergyMeter(run_name, **meter_options) as m:
                wrapper.last_run = m.run  # type: ignore[attr-defined]
                return fn(*args, **kwargs)

        wrapper.last_run = None  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


def _raise_system_exit(signum: int, frame: Any) -> None:
    """SIGTERM handler while a meter runs: unwind so the run closes as `interrupted`."""
    raise SystemExit(128 + signum)


def _recover(ledger: Ledger) -> None:
    """Deliver spooled runs and close dead ones in `ledger`, off the metered code's path."""
    try:
        ledger.recover()
    except Exception as exc:  # another process may do it; never worth disturbing a run
        log.info("recovering runs in %s failed: %s", ledger.location, exc)


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _host_info() -> dict[str, Any]:
    from joulemeter.meter.hostinfo import host_info

    try:
        return host_info()
    except Exception as exc:  # host details are nice to have, never worth failing a run
        log.warning("could not read host info: %s", exc)
        return {}
