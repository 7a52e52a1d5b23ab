"""Several processes and threads writing one ledger at once lose no row."""

from __future__ import annotations

import multiprocessing
import threading

from joulemeter.meter.run import Sample, Status
from joulemeter.meter.store import open_ledger
from tests.test_ledger import make_run

PROCESSES = 2
THREADS = 4
RUNS_PER_THREAD = 3
FLUSHES_PER_RUN = 3
SAMPLES_PER_FLUSH = 20  # 10 ticks × 2 domains


def _write_runs(ledger, prefix: str) -> None:
    """Write runs the way the meter does: begin, flush samples several times, finish."""
    for r in range(RUNS_PER_THREAD):
        run = make_run(f"{prefix}-r{r}", status=Status.RUNNING, samples=0)
        ledger.begin_run(run)
        for f in range(FLUSHES_PER_RUN):
            ticks = [float(f * 10 + i) for i in range(SAMPLES_PER_FLUSH // 2)]
            batch = [
                s
                for t in ticks
                for s in (Sample(t, "gpu:0", 200.0, 200.0 * t), Sample(t, "cpu:package-0", 50.0, 50.0 * t))
            ]
            ledger.append_samples(run.id, batch)
            run.samples.extend(batch)
        run.status = Status.COMPLETED
        ledger.finish_run(run)
        ledger.update_metadata(run.id, {"writer": prefix})


def _writer_process(location: str, process: int, start: multiprocessing.synchronize.Event) -> None:
    """One process: its own ledger, shared by THREADS threads that all start together."""
    start.wait()
    errors: list[BaseException] = []
    with open_ledger(location) as ledger:

        def thread_body(t: int) -> None:
            try:
                _write_runs(ledger, f"p{process}-t{t}")
            except BaseException as exc:  # reported through the exit code below
                errors.append(exc)

        threads = [threading.Thread(target=thread_body, args=(t,)) for t in range(THREADS)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    if errors:
        raise errors[0]


def test_two_processes_with_several_threads_each_lose_no_row(ledger_location: str) -> None:
    open_ledger(ledger_location).close()  # create the schema once, as a first meter would
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    workers = [
        context.Process(target=_writer_process, args=(ledger_location, p, start))
        for p in range(PROCESSES)
    ]
    for w in workers:
        w.start()
    start.set()
    for w in workers:
        w.join(timeout=120)
    assert [w.exitcode for w in workers] == [0] * PROCESSES

    with open_ledger(ledger_location) as ledger:
        listed = ledger.list_runs()
        expected_ids = {
            f"p{p}-t{t}-r{r}"
            for p in range(PROCESSES)
            for t in range(THREADS)
            for r in range(RUNS_PER_THREAD)
        }
        assert {r.id for r in listed} == expected_ids
        for summary in listed:
            run = ledger.get_run(summary.id)
            assert run.status is Status.COMPLETED
            assert len(run.samples) == FLUSHES_PER_RUN * SAMPLES_PER_FLUSH
            assert len(run.windows) == 3 and len(run.gaps) == 2 and len(run.tags) == 2
            assert run.metadata["writer"] == run.id.rsplit("-", 1)[0]


def test_threads_opening_a_new_ledger_at_the_same_moment_all_succeed(ledger_location: str) -> None:
    """Ranks of a distributed job may all create the ledger at once; one creates, none fail."""
    openers = 4
    barrier = threading.Barrier(openers)
    errors: list[BaseException] = []

    def open_and_write(i: int) -> None:
        barrier.wait()
        try:
            with open_ledger(ledger_location) as ledger:
                ledger.save_run(make_run(f"rank-{i}"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_and_write, args=(i,)) for i in range(openers)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    with open_ledger(ledger_location) as ledger:
        assert sorted(r.id for r in ledger.list_runs()) == [f"rank-{i}" for i in range(openers)]
