"""The local spool: samples and run records that the ledger could not take, kept on disk.

The run's writer appends what the ledger lacks to `<spool dir>/<run id>.jsonl`, one JSON
record a line: the run as it began, batches of samples, the run as it finished. It is the
run's journal (every flush goes here, the ledger gets a write less often, and `empty`
drops what the ledger then holds), and where a failing ledger's writes wait (disk full,
lock held, server down, file deleted). The file is private (0600, in a 0700 folder) and
locked by its writer while it lives, so another process delivers it into the ledger only
once its writer is gone (`deliver`): a killed run's last flushes come from here. Delivery
is idempotent: samples already in the ledger (by time) are skipped.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO

from joulemeter.meter.errors import ForeignLedgerError, LedgerBusyError, LedgerCorruptError, LedgerError
from joulemeter.meter.run import Run, Sample
from joulemeter.meter.store.location import spool_dir

if TYPE_CHECKING:
    from joulemeter.meter.store.ledger import Ledger

log = logging.getLogger("joulemeter.spool")

SUFFIX = ".jsonl"
_DELIVERY_CHUNK = 5000  # samples per transaction when delivering: bounded memory and lock time

try:
    import fcntl
except ImportError:  # Windows: no advisory locks here; a spool is then delivered by its own writer
    fcntl = None  # type: ignore[assignment]

#: Whether a live writer's spool is safe from delivery by others (file locks exist here), so
#: that it can serve as the run's journal.
LOCKS = fcntl is not None


class RunSpool:
    """The append-only spool file of one run, created on first use and locked while open."""

    def __init__(self, run_id: str, ledger_location: str, directory: Path | None = None) -> None:
        self.path = (directory or spool_dir()) / f"{run_id}{SUFFIX}"
        self.ledger_location = ledger_location
        self._file: BinaryIO | None = None
        self._head_bytes = 0  # the size of the file holding only the run as it began

    @property
    def exists(self) -> bool:
        return self._file is not None

    def write_begin(self, run: Run, writer: dict[str, Any]) -> None:
        """Create the file with the run as it began (no samples) and who writes it."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
        self._file = os.fdopen(fd, "ab", buffering=0)  # each record one write(2): no buffer to flush
        _lock(self._file, blocking=True)
        self._append({"kind": "run", "ledger": self.ledger_location, "writer": writer,
                      "run": run.to_dict(samples=False)})
        self._head_bytes = os.fstat(fd).st_size

    def write_samples(self, samples: Sequence[Sample]) -> None:
        if samples:
            self._append({"kind": "samples", "rows": [[s.t_s, s.domain, s.power_w, s.energy_j] for s in samples]})

    def write_finish(self, run: Run) -> None:
        """The run as it ended (status, energy, windows, units, gaps; samples went before)."""
        self._append({"kind": "finish", "run": run.to_dict(samples=False)})

    def empty(self) -> None:
        """Drop the samples (the ledger holds them), keeping the run as it began; OSError
        leaves them, as delivery skips what the ledger has."""
        if self._file is not None:
            try:
                os.ftruncate(self._file.fileno(), self._head_bytes)
            except OSError as exc:
                log.info("could not empty the spool %s: %s", self.path, exc)

    def close(self) -> None:
        """Release the file (and its lock), leaving it for delivery."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def discard(self) -> None:
        """Remove the file: the ledger holds everything it kept."""
        if self._file is not None:
            self.path.unlink(missing_ok=True)
            self.close()

    def _append(self, record: dict[str, Any]) -> None:
        assert self._file is not None, "write_begin first"
        line = (json.dumps(record) + "\n").encode()
        if self._file.write(line) != len(line):  # in the kernel now: it survives a SIGKILL of this process
            raise OSError(f"a short write to {self.path} (the disk is full?)")


def deliver_all(ledger: Ledger, directory: Path | None = None) -> int:
    """Deliver every spool of `ledger` whose writer is gone; returns how many were delivered.

    A spool the ledger refuses is kept and the others still go; a ledger that is busy or
    unusable stops the round (LedgerError: each spool would wait or fail the same way)."""
    folder = directory or spool_dir()
    if not folder.is_dir():
        return 0
    delivered = 0
    for path in sorted(folder.glob(f"*{SUFFIX}")):
        try:
            delivered += deliver(ledger, path)
        except OSError as exc:
            log.warning("cannot read the spool %s: %s", path, exc)
        except (LedgerBusyError, LedgerCorruptError, ForeignLedgerError):
            raise
        except LedgerError as exc:
            log.warning("the spool %s was not delivered (kept for a later try): %s", path, exc)
    return delivered


def deliver(ledger: Ledger, path: Path) -> bool:
    """Write one spool file into `ledger` and remove it; False if it is in use or not for it.

    Raises LedgerError when the ledger refuses it (the file is kept for a later try).
    """
    with path.open("r", encoding="utf-8") as f:
        if not _lock(f, blocking=False):
            return False  # its writer is alive and delivers it itself
        records = _records(f)
        head = next(records, None)
        if head is None or head.get("kind") != "run":
            log.warning("the spool %s has no run record; left as it is", path)
            return False
        if head.get("ledger") != ledger.location:
            return False
        begun = Run.from_dict(head["run"])
        if not ledger.existing_ids([begun.id]):
            ledger.begin_run(begun, writer=head.get("writer"))
        stored_t = ledger.last_sample_t(begun.id)
        finished: Run | None = None
        count = 0
        for chunk, finished in _sample_chunks(records, stored_t):
            ledger.append_samples(begun.id, chunk, heartbeat=False)
            count += len(chunk)
        if finished is not None:
            ledger.finish_run(finished)
        else:
            ledger.resummarise_if_interrupted(begun.id)
        path.unlink()
    log.warning(
        "delivered run %s from the spool %s into %s: %d samples%s", begun.id[:8], path,
        ledger.location, count, ", finished" if finished is not None else "",
    )
    return True


def _sample_chunks(
    records: Iterator[dict[str, Any]], stored_t: float | None
) -> Iterator[tuple[list[Sample], Run | None]]:
    """Samples later than `stored_t` in chunks, and the finished run if the spool has one."""
    chunk: list[Sample] = []
    finished: Run | None = None
    for record in records:
        if record.get("kind") == "finish":
            finished = Run.from_dict(record["run"])
        elif record.get("kind") == "samples":
            chunk.extend(Sample(*row) for row in record["rows"] if stored_t is None or row[0] > stored_t)
            if len(chunk) >= _DELIVERY_CHUNK:
                yield chunk, None
                chunk = []
    yield chunk, finished


def _records(f: IO[str]) -> Iterator[dict[str, Any]]:
    """Each whole record; a last line cut short by a killed writer is ignored."""
    for line in f:
        if not line.endswith("\n"):
            log.info("ignoring a spool line cut short (its writer was killed while writing it)")
            return
        with contextlib.suppress(ValueError):
            yield json.loads(line)


def _lock(f: IO[Any], blocking: bool) -> bool:
    """An exclusive lock on the open file, held until it is closed; False if another holds it."""
    if fcntl is None:
        return True
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    return True
