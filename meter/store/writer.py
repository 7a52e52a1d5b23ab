"""The run's writer: a thread that moves a running meter's samples into the ledger.

Every `interval_s` (a flush) the samples taken since the last flush are appended to the
run's journal, the local spool file (meter/store/spool.py): one small write to a file kept
open, a few tens of microseconds, made on the sampler's thread just after its tick
(`flush_to_journal`), so this thread sleeps until the ledger is due. The ledger gets them every `_LEDGER_FLUSHES` flushes (every
`_LEDGER_TICKS` ticks of an adaptive timeline stretched further, or sooner once
`_MAX_HELD_SAMPLES` wait), in one transaction that waits at most `attempt_s`
for a lock; then they leave the sampler's memory (`release`) and the journal is emptied.
A transaction costs a millisecond or two of CPU (SQLAlchemy and SQLite), so one every
flush was most of an idle run's cost (docs/benchmarks.md). A killed process still loses
at most about `interval_s` plus one sampling interval: whoever opens the ledger next
delivers the journal of a process that is gone. Where the journal cannot be kept (no
file locks, as on Windows, or a spool folder that cannot be written) every flush goes
to the ledger, as before. A run without a timeline (`timeline=False`) has no samples: the
thread wakes only every `_LEDGER_FLUSHES` intervals for a heartbeat, each domain's energy
so far (one sample per domain, power None) into the journal, so a killed run keeps what it
measured up to then; every `_LEDGER_BEATS` heartbeats it goes to the ledger as well, which
tells other processes the run is alive (every heartbeat, where there is no journal).

When a ledger write fails (disk full, lock held, server down, ledger file deleted) the
writer warns once, keeps what the ledger lacks in the spool, and retries with backoff;
when the ledger takes writes again it gets everything and the spool is emptied. `finish`
never raises: a run the ledger cannot take stays in the spool, delivered the next time
this machine opens the ledger.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from joulemeter.meter.errors import LedgerBusyError, LedgerError, LedgerWriteWarning
from joulemeter.meter.run import Run, Sample
from joulemeter.meter.store.ledger import STALE_HEARTBEAT_S
from joulemeter.meter.store.spool import LOCKS, RunSpool

if TYPE_CHECKING:
    from joulemeter.meter.store.ledger import Ledger

log = logging.getLogger("joulemeter.writer")

_MAX_BACKOFF_S = 30.0  # the longest wait between tries of a failing ledger
#: The ledger gets a write every this many flushes (30 s at the default 1 s): its
#: heartbeat stays far inside STALE_HEARTBEAT_S, and a viewer of the ledger sees a running
#: run at most this late.
_LEDGER_FLUSHES = 30
#: ... and no more often than every this many ticks, while an adaptive timeline ticks
#: slower than the flushes (every 30 s, idle): each tick is in the journal at once, so the
#: ledger's write serves only its viewers and the heartbeat (2 minutes, far inside
#: STALE_HEARTBEAT_S), and an idle run pays one transaction in 2 minutes, not in 30 s.
_LEDGER_TICKS = 4
#: Without a timeline, every this many heartbeats go to the ledger too (the others to the
#: journal only): 2 minutes, the pace of a stretched timeline's ledger writes.
_LEDGER_BEATS = 4
#: ... and never further apart than this, however long the intervals asked for: a run silent
#: in the ledger for STALE_HEARTBEAT_S is taken for dead by the next joulemeter to open it.
_LONGEST_LEDGER_PERIOD_S = STALE_HEARTBEAT_S / 2
#: ... or sooner once this many samples wait for it in memory (about 2 MB of Samples).
_MAX_HELD_SAMPLES = 10_000
_FINISH_DEADLINE_S = 5.0  # how long closing a run waits for a locked ledger before spooling
_BUSY_WARN_AFTER_S = 5.0  # a lock held this long is worth a warning (shorter ones are routine)


class SampleFeed(Protocol):
    """Where the writer takes samples from (the Sampler); indexes count from the run's first."""

    def unwritten(self, start: int) -> tuple[list[Sample], int]:
        """Samples from the `start`-th on still in memory, and the count taken so far."""

    def release(self, upto: int) -> None:
        """The first `upto` samples are in the ledger or the spool."""

    def history(self) -> list[Sample]:
        """What the timeline kept of the released samples (for rewriting the whole run)."""

    def now(self) -> float:
        """Seconds since the run's start."""

    def energy_now_j(self) -> dict[str, float]:
        """Cumulative energy per domain now (read for it where a counter allows)."""

    def tick_interval_s(self) -> float:
        """How far apart the timeline's ticks are now (an adaptive timeline stretches)."""


class RunWriter:
    """Writes `run` (begun by `begin`) to `ledger` from a thread, spooling what fails."""

    def __init__(
        self,
        ledger: Ledger,
        run: Run,
        feed: SampleFeed,
        *,
        interval_s: float = 1.0,
        attempt_s: float = 0.5,
        timeline: bool = True,
        reopen: Callable[[], Ledger] | None = None,
        spool: RunSpool | None = None,
    ) -> None:
        from joulemeter.meter.store.ledger import writer_identity

        self.ledger = ledger
        # the run as it begins, copied: the metered code keeps changing the live one
        self.run = dataclasses.replace(
            run, tags=list(run.tags), metadata=dict(run.metadata), units=dict(run.units), windows=[], samples=[]
        )
        self.interval_s = interval_s
        self.attempt_s = attempt_s
        self._timeline = timeline  # False: no samples come, nothing to flush between heartbeats
        self.failures = 0
        self.problem: str | None = None  # the latest failure, while the ledger keeps failing
        self.last_error: str | None = None
        self._feed = feed
        self._reopen = reopen
        self._spool = spool or RunSpool(run.id, ledger.location)
        self._identity = writer_identity()
        self._begun = False
        self._stored = 0  # the first _stored samples are in the ledger
        self._spooled = 0  # the first _spooled samples are in the ledger or the spool
        self._journal = LOCKS  # the spool takes every flush; the ledger every _LEDGER_FLUSHES
        self._journal_at = time.monotonic() + interval_s  # the next flush to the journal is due then
        self._round_at = self._journal_at  # the thread's next round where every round flushes
        self._beat_at = time.monotonic() + interval_s * _LEDGER_FLUSHES  # without a timeline: the next heartbeat
        self._ledger_at = time.monotonic() + self._ledger_period_s()  # the next ledger write is due then
        self._resync = False  # after a failed write: ask the ledger what it holds
        self._failing_since: float | None = None
        self._retry_at = 0.0
        self._backoff_s = interval_s
        self._warned = False
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # -- life cycle ------------------------------------------------------------------
    def begin(self) -> None:
        """Record the run as begun (or spool it if the ledger refuses) and start the thread.

        Samples follow at the first round: the first reading alone holds no energy yet."""
        with self._lock:
            try:
                self.ledger.begin_run(self.run, writer=self._identity, deadline_s=self.attempt_s)
                self._begun = True
            except Exception as exc:
                self._failed(exc)
                self._spool_samples()
        self._thread = threading.Thread(target=self._loop, name="joulemeter-writer", daemon=True)
        self._thread.start()

    def finish(self, run: Run) -> None:
        """Stop the thread, write the last samples and the finished run; spool what fails."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._lock:
            self.run = run
            try:
                if self._close(run):
                    return
            except Exception as exc:  # whatever happens, the run is kept
                log.exception("closing run %s in %s failed", run.id[:8], self.ledger.location)
                self.problem = self.last_error = str(exc)
            run.metadata["ledger_writes"] = self.summary()
            self._spool_rest(run)
            self._spool.close()
            log.warning(
                "run %s could not be closed in %s (%s); it is kept in %s and goes into the "
                "ledger the next time this machine opens it", run.id[:8], self.ledger.location,
                self.problem, self._spool.path,
            )

    def _close(self, run: Run) -> bool:
        """The last samples and the end of the run into the ledger; False if it refused."""
        if not self._write(final=True):
            return False
        if self.failures:
            run.metadata["ledger_writes"] = self.summary()
        try:
            self.ledger.finish_run(run, deadline_s=_FINISH_DEADLINE_S)
        except Exception as exc:
            self._failed(exc)
            return False
        self._spool.discard()
        return True

    def summary(self) -> dict[str, Any]:
        """What went wrong writing this run, as stored in its metadata."""
        return {"failed_writes": self.failures, "last_error": self.last_error, "spool": str(self._spool.path)}

    # -- writing -----------------------------------------------------------------------
    def flush_to_journal(self) -> None:
        """A flush to the journal, from the sampler's thread just after its tick (`after_tick`):
        the samples are in the kernel at once and the writer's thread wakes only for the
        ledger. Skipped until due, while the writer's thread holds the lock (it flushes then),
        and where the journal is off or the ledger failing (the writer's rounds go on then)."""
        if not self._journal or self.problem is not None or time.monotonic() < self._journal_at:
            return
        if self._lock.acquire(blocking=False):
            try:
                self._spool_samples()
            finally:
                self._lock.release()

    def _loop(self) -> None:
        while not self._stopping.wait(max(self._next_round_at() - time.monotonic(), 0.0)):
            if time.monotonic() < self._next_round_at():
                continue  # the sampler flushed while this thread slept: nothing is due yet
            self._round_at = time.monotonic() + min(self.interval_s, _LONGEST_LEDGER_PERIOD_S)
            with self._lock:
                try:
                    self._write(final=False)
                except Exception:  # a bug here must not end the thread: later rounds still write
                    log.exception("writing run %s failed unexpectedly", self.run.id[:8])

    def _write(self, final: bool) -> bool:
        """One round: the journal gets what is new, the ledger too when it is due (`final`:
        now); True if the ledger holds every sample taken so far."""
        if self._journal or self.problem is not None:
            self._spool_samples()
        if not final and not self._ledger_due():
            if not self._timeline and time.monotonic() >= self._beat_at:
                self._journal_heartbeat()
            return False
        try:
            self._to_ledger(heartbeat=not final)  # the run's end is sign enough that it lived
        except Exception as exc:
            self._failed(exc)
            self._spool_samples()
            return False
        self._ledger_at = time.monotonic() + self._ledger_period_s()
        self._beat_at = time.monotonic() + self.interval_s * _LEDGER_FLUSHES
        self._spooled = max(self._spooled, self._stored)
        self._feed.release(self._stored)  # not what is only spooled: the ledger gets it from memory
        if self.problem is not None:
            log.warning("%s takes writes again: run %s is whole there", self.ledger.location, self.run.id[:8])
            self.problem, self._failing_since, self._backoff_s = None, None, self.interval_s
        self._spool.empty()  # the ledger holds all it held
        if self._journal and not final:
            self._spool_samples()  # those of a tick whose flush found this thread writing
        return True

    def _ledger_period_s(self) -> float:
        """Until the next ledger write: every flush without a journal, else every
        _LEDGER_FLUSHES flushes, or _LEDGER_TICKS ticks of a timeline slower than that;
        without a timeline, every _LEDGER_BEATS heartbeats (each one, without a journal); never
        further apart than _LONGEST_LEDGER_PERIOD_S."""
        if not self._timeline:
            period_s = self.interval_s * _LEDGER_FLUSHES * (_LEDGER_BEATS if self._journal else 1)
        elif not self._journal:
            period_s = self.interval_s
        else:
            period_s = max(self.interval_s * _LEDGER_FLUSHES, _LEDGER_TICKS * self._feed.tick_interval_s())
        return min(period_s, _LONGEST_LEDGER_PERIOD_S)

    def _journal_heartbeat(self) -> None:
        """Without a timeline: each domain's energy so far into the journal (no ledger write)."""
        t_s = self._feed.now()
        beat = [Sample(t_s, domain, None, joules) for domain, joules in self._feed.energy_now_j().items()]
        try:
            if not self._spool.exists:
                self._spool.write_begin(self.run, self._identity)
            self._spool.write_samples(beat)
        except (OSError, ValueError) as exc:
            log.info("no journal for run %s (%s: %s): every heartbeat goes to the ledger",
                     self.run.id[:8], self._spool.path, exc)
            self._journal = False
            self._ledger_at = time.monotonic()  # due now
        self._beat_at = time.monotonic() + self.interval_s * _LEDGER_FLUSHES

    def _next_round_at(self) -> float:
        """When the thread next writes: when the ledger is due while the sampler flushes every
        tick to the journal; without a timeline, at the next heartbeat; else every interval."""
        if not self._timeline and self.problem is None:
            return min(self._ledger_at, self._beat_at)
        if self._journal and self.problem is None:
            return self._ledger_at
        return self._round_at

    def _ledger_due(self) -> bool:
        """Whether this round writes to the ledger: a retry once its backoff is over, else
        every round without a journal, else every _LEDGER_FLUSHES or when many samples wait."""
        now = time.monotonic()
        if self.problem is not None:
            return now >= self._retry_at
        if not self._journal or now >= self._ledger_at:
            return True
        return self._spooled - self._stored >= _MAX_HELD_SAMPLES

    def _to_ledger(self, heartbeat: bool) -> None:
        if self.ledger.replaced():
            self._start_over()
        if not self._begun:
            self.ledger.begin_run(self.run, writer=self._identity, deadline_s=self.attempt_s)
            self._begun = True
        taken, taken_upto = self._feed.unwritten(self._stored)
        if self._stored == 0:  # a new ledger file: what memory no longer holds, from the timeline
            taken = self._feed.history() + taken
        new = taken
        if self._resync:  # a failed write may have been committed after all: skip what is stored
            stored_t = self.ledger.last_sample_t(self.run.id)
            new = [s for s in taken if stored_t is None or s.t_s > stored_t]
        if heartbeat and not self._timeline:  # no samples come: the heartbeat carries the energy so far
            t_s = self._feed.now()
            new = [*new, *(Sample(t_s, domain, None, joules) for domain, joules in self._feed.energy_now_j().items())]
        if new or (heartbeat and not self._timeline):  # with no domain, a heartbeat alone
            self.ledger.append_samples(self.run.id, new, deadline_s=self.attempt_s)
        self._resync = False
        self._stored = taken_upto

    def _start_over(self) -> None:
        """The ledger file went away: open a new one at its path to write the whole run there."""
        why = f"the ledger file {self.ledger.location} was deleted or replaced while run {self.run.id[:8]} wrote to it"
        if self._reopen is None:
            raise LedgerError(why)
        self.failures += 1
        self.last_error = why
        self._warn(f"{why}; writing the whole run into a new ledger file there")
        self.ledger.close()
        self.ledger = self._reopen()
        self._begun = False
        self._stored = 0

    def _failed(self, exc: Exception) -> None:
        self.failures += 1
        self.problem = self.last_error = str(exc)
        self._resync = True
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
        busy = isinstance(exc, LedgerBusyError)
        if not busy:
            self._backoff_s = min(self._backoff_s * 2, _MAX_BACKOFF_S)
        self._retry_at = now + (self.interval_s if busy else self._backoff_s)
        if not busy or now - self._failing_since >= _BUSY_WARN_AFTER_S:
            self._warn(f"writing run {self.run.id[:8]} to {self.ledger.location} failed: {exc}; its "
                       f"samples are kept in {self._spool.path} and written when the ledger takes them")
        else:
            log.info("ledger busy, will retry: %s", exc)

    def _warn(self, message: str) -> None:
        log.warning("%s", message)
        if not self._warned:  # once per run, where logging is not set up (a library's NullHandler)
            self._warned = True
            warnings.warn(message, LedgerWriteWarning, stacklevel=2)

    # -- the spool -------------------------------------------------------------------
    def _spool_samples(self) -> None:
        """Append to the spool the samples that neither the ledger nor the spool has yet."""
        try:
            if not self._spool.exists:
                self._spool.write_begin(self.run, self._identity)
            fresh, upto = self._feed.unwritten(self._spooled)
            self._spool.write_samples(fresh)
            self._spooled = upto
            # due again 0.9 interval on: a tick a little early still flushes
            self._journal_at = time.monotonic() + 0.9 * self.interval_s
        except (OSError, ValueError) as exc:
            if self.problem is not None:
                log.error("cannot spool run %s to %s either (%s): its samples are only in memory",
                          self.run.id[:8], self._spool.path, exc)
            elif self._journal:
                log.info("no journal for run %s (%s: %s): every flush goes to the ledger",
                         self.run.id[:8], self._spool.path, exc)
            self._journal = False

    def _spool_rest(self, run: Run) -> None:
        self._spool_samples()
        try:
            self._spool.write_finish(run)
        except (OSError, AssertionError) as exc:
            log.error("cannot spool the end of run %s (%s): it stays `running` in the ledger "
                      "and is recovered from its samples", run.id[:8], exc)
