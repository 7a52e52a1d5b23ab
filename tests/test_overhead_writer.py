"""Flushes go to the run's journal, the ledger gets a write every _LEDGER_FLUSHES flushes,
and a killed writer's journal gives the ledger every sample it flushed (issue 17)."""

from __future__ import annotations

from pathlib import Path

import pytest

from joulemeter.meter.run import Status
from joulemeter.meter.sampler import Sampler
from joulemeter.meter.store import open_ledger, writer as writer_module
from joulemeter.meter.store.ledger import Ledger
from joulemeter.meter.store.spool import RunSpool
from joulemeter.meter.store.writer import _LEDGER_FLUSHES, RunWriter
from tests.doubles import LinearCounterSource
from tests.test_ledger import make_run


class Counting:
    """Counts a ledger's sample writes, passing them on."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.appends = 0
        real = ledger.append_samples

        def append(*args, **kwargs):
            self.appends += 1
            return real(*args, **kwargs)

        ledger.append_samples = append  # type: ignore[method-assign]


def _writer(tmp_path: Path, spool_dir: Path) -> tuple[RunWriter, Counting, Sampler]:
    """A writer of a new run (it begins the run in the ledger at its first write), its
    ledger's write count and its sampler; the writer's thread is not started: the test makes
    the flushes."""
    ledger = open_ledger(tmp_path / "ledger.sqlite")
    run = make_run(status=Status.RUNNING, samples=0)
    source = LinearCounterSource()
    sampler = Sampler([source], [source.domain], keep_unwritten=True)
    writer = RunWriter(ledger, run, sampler, interval_s=1.0, spool=RunSpool(run.id, ledger.location, spool_dir))
    return writer, Counting(ledger), sampler


@pytest.fixture
def rounds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """`_writer`'s three, and a function doing one flush a second later (on a clock of the test's)."""
    now = [1000.0]
    monkeypatch.setattr(writer_module.time, "monotonic", lambda: now[0])
    writer, counting, sampler = _writer(tmp_path, tmp_path / "spool")

    def flush() -> None:
        sampler.read_once()
        now[0] += 1.0
        writer._write(final=False)

    yield writer, counting, flush, sampler
    writer._spool.close()
    writer.ledger.close()


def test_a_healthy_run_flushes_to_its_journal_and_writes_to_the_ledger_once_in_30_flushes(rounds):
    writer, counting, flush, sampler = rounds
    for _ in range(2 * _LEDGER_FLUSHES + 5):
        flush()
    assert counting.appends == 2
    assert writer._spooled == sampler.unwritten(0)[1]  # every sample taken is in the journal or the ledger
    assert len(sampler.unwritten(0)[0]) <= 6  # the ledger's write let the others leave memory


def test_the_journal_of_a_writer_gone_gives_the_ledger_every_sample_it_flushed(rounds, tmp_path, monkeypatch):
    writer, counting, flush, sampler = rounds
    for _ in range(_LEDGER_FLUSHES + 7):
        flush()
    flushed_t = sampler.unwritten(0)[0][-1].t_s
    writer._spool.close()  # what dying does: the file stays, its lock goes
    monkeypatch.setenv("JOULEMETER_SPOOL", str(tmp_path / "spool"))
    with open_ledger(tmp_path / "ledger.sqlite") as ledger:  # opening delivers the journal
        assert ledger.last_sample_t(writer.run.id) == flushed_t
    assert counting.appends == 1  # the run's writer itself wrote once


def _flushes(writer: RunWriter, sampler: Sampler, n: int) -> None:
    for _ in range(n):
        sampler.read_once()
        writer._write(final=False)


def test_without_file_locks_every_flush_goes_to_the_ledger(tmp_path, monkeypatch):
    monkeypatch.setattr(writer_module, "LOCKS", False)
    writer, counting, sampler = _writer(tmp_path, tmp_path / "spool")
    _flushes(writer, sampler, 5)
    assert counting.appends == 5
    assert not (tmp_path / "spool").exists()  # nothing was journaled
    writer.ledger.close()


def test_a_spool_folder_that_cannot_be_made_sends_every_flush_to_the_ledger(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the spool folder should be")
    writer, counting, sampler = _writer(tmp_path, blocker / "spool")
    _flushes(writer, sampler, 3)
    assert counting.appends == 3
    assert writer.problem is None
    writer.ledger.close()


def test_the_sampler_flushes_each_tick_to_the_journal_so_the_writer_thread_sleeps_until_the_ledger_is_due(
    tmp_path, monkeypatch
):
    now = [1000.0]
    monkeypatch.setattr(writer_module.time, "monotonic", lambda: now[0])
    writer, counting, sampler = _writer(tmp_path, tmp_path / "spool")
    sampler.read_once()
    writer.flush_to_journal()  # not due: a flush interval has not passed
    assert writer._spooled == 0
    for _ in range(_LEDGER_FLUSHES - 1):  # what the sampler's thread does at each tick, a second apart
        now[0] += 1.0
        sampler.read_once()
        writer.flush_to_journal()
        assert writer._spooled == sampler.unwritten(0)[1]  # the tick is in the journal at once
        assert writer._next_round_at() > now[0]  # and the writer's thread still sleeps
    assert counting.appends == 0  # nothing went to the ledger yet
    assert writer._next_round_at() == writer._ledger_at  # its thread wakes when the ledger is due
    writer._spool.close()
    writer.ledger.close()


def test_a_flush_from_the_sampler_waits_for_no_lock_the_writer_holds(rounds):
    writer, counting, flush, sampler = rounds
    sampler.read_once()
    writer._journal_at = 0.0  # due
    with writer._lock:  # the writer's thread is writing to the ledger
        writer.flush_to_journal()
    assert writer._spooled == 0  # skipped, not blocked: the thread journals in its round


def test_without_a_journal_the_writer_thread_flushes_every_interval(tmp_path, monkeypatch):
    monkeypatch.setattr(writer_module, "LOCKS", False)
    writer, counting, sampler = _writer(tmp_path, tmp_path / "spool")
    writer._round_at = 123.0
    assert writer._next_round_at() == 123.0
    writer.ledger.close()
