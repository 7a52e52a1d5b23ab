"""The ledger keeps runs whole on SQLite and PostgreSQL: round trips, lookups, filters, recovery.

Every ledger test runs on SQLite (a temp file) and, when JOULEMETER_TEST_POSTGRES_URL
points at a server (`eval "$(bash .ci/postgres.sh)"`), on PostgreSQL in a fresh schema.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from joulemeter.meter.errors import LedgerError, RunNotFoundError
from joulemeter.meter.run import Domain, DomainEnergy, Gap, Provenance, Run, Sample, Status, Window
from joulemeter.meter.store import default_location, open_ledger
from joulemeter.meter.store.location import resolve

GPU = Domain(
    "gpu:0", "gpu", "NVIDIA H100 80GB HBM3", Provenance.COUNTER, "NVML total energy counter"
)
CPU = Domain(
    "cpu:package-0", "cpu", "Intel Xeon", Provenance.COUNTER, "RAPL package counter",
    counter_range_j=262143.328850, note="package domain includes the uncore",
)


def make_run(
    run_id: str | None = None,
    *,
    name: str = "resnet-train",
    project: str = "default",
    tags: list[str] | None = None,
    started_at: str = "2026-03-01T12:00:00+00:00",
    status: Status = Status.COMPLETED,
    samples: int = 4,
) -> Run:
    """A finished two-domain run with nested windows, units, a gap, tags and metadata.

    GPU samples draw 200 W and CPU samples 50 W, one tick per second, so the energies
    below are those powers times the 3 s the ticks span.
    """
    ticks = [float(t) for t in range(samples)]
    sample_rows = [
        s
        for t in ticks
        for s in (Sample(t, "gpu:0", 200.0, 200.0 * t), Sample(t, "cpu:package-0", 50.0, 50.0 * t))
    ]
    return Run(
        id=run_id or uuid.uuid4().hex,
        name=name,
        project=project,
        tags=list(tags if tags is not None else ["baseline", "fp32"]),
        status=status,
        started_at=started_at,
        ended_at="2026-03-01T12:00:03+00:00",
        duration_s=3.0,
        interval_s=0.5,
        host={"hostname": "node-1", "gpus": ["NVIDIA H100 80GB HBM3"], "cpu_count": 64},
        domains=[GPU, CPU],
        energy={
            "gpu:0": DomainEnergy("gpu:0", 600.0, Provenance.COUNTER, 200.0, 200.0, 60.5),
            "cpu:package-0": DomainEnergy("cpu:package-0", 150.0, Provenance.COUNTER, 50.0, 50.0),
        },
        windows=[
            Window(
                "train", "train", 0.0, 3.0,
                {"gpu:0": 600.0, "cpu:package-0": 150.0}, {"samples": 1024.0},
            ),
            Window(
                "epoch-1", "train/epoch-1", 0.0, 1.5,
                {"gpu:0": 300.0}, {"samples": 512.0, "steps": 8.0},
            ),
            Window("eval", "eval", 3.0, None, {}, {}, note="never closed"),
        ],
        units={"samples": 1024.0, "steps": 16.0},
        samples=sample_rows,
        gaps=[
            Gap("gpu:0", 1.0, 1.25, "GPU lost"),
            Gap("cpu:package-0", 2.5, None, "RAPL unreadable"),
        ],
        metadata={
            "model": "resnet50", "params": 25_557_032, "accuracy": 0.7613, "variant": {"bits": 8}
        },
        error=None,
    )


# -- round trips ---------------------------------------------------------------------
def test_a_saved_run_reads_back_equal_to_the_original(ledger_location: str) -> None:
    run = make_run()
    with open_ledger(ledger_location) as ledger:
        ledger.save_run(run)
    with open_ledger(ledger_location) as ledger:
        assert ledger.get_run(run.id).to_dict() == run.to_dict()


def test_a_run_written_as_it_goes_keeps_every_flushed_sample_once(ledger_location: str) -> None:
    final = make_run()
    begun = make_run(final.id, status=Status.RUNNING)
    begun.energy, begun.windows, begun.gaps, begun.samples = {}, [], [], []
    with open_ledger(ledger_location) as ledger:
        ledger.begin_run(begun)
        assert ledger.get_run(final.id).status is Status.RUNNING
        ledger.append_samples(final.id, final.samples[:3])
        ledger.append_samples(final.id, [])  # a flush with nothing new only marks the run alive
        ledger.append_samples(final.id, final.samples[3:])
        ledger.record_gaps(final.id, final.gaps[:1])
        ledger.finish_run(final)
        assert ledger.get_run(final.id).to_dict() == final.to_dict()


def test_gaps_recorded_while_running_are_kept_before_finish(ledger_location: str) -> None:
    run = make_run()
    begun = make_run(run.id, status=Status.RUNNING)
    begun.gaps = []
    with open_ledger(ledger_location) as ledger:
        ledger.begin_run(begun)
        ledger.record_gaps(run.id, [run.gaps[0]])
        ledger.record_gaps(run.id, [run.gaps[1]])
        assert ledger.get_run(run.id).gaps == run.gaps


def test_finishing_a_run_that_was_never_begun_saves_it_whole(ledger_location: str) -> None:
    run = make_run()
    with open_ledger(ledger_location) as ledger:
        ledger.finish_run(run)
        assert ledger.get_run(run.id).to_dict() == run.to_dict()


def test_update_metadata_merges_keys_and_keeps_the_others(ledger_location: str) -> None:
    run = make_run()
    with open_ledger(ledger_location) as ledger:
        ledger.save_run(run)
        ledger.update_metadata(run.id, {"accuracy": 0.80, "size_on_disk_bytes": 102_400})
        assert ledger.get_run(run.id, samples=False).metadata == {
            **run.metadata,
            "accuracy": 0.80,
            "size_on_disk_bytes": 102_400,
        }
        with pytest.raises(RunNotFoundError):
            ledger.update_metadata("no-such-run", {"accuracy": 1.0})


# -- lookups ---------------------------------------------------------------------------
def test_get_run_finds_a_unique_prefix_and_last_is_the_newest(ledger_location: str) -> None:
    older = make_run("aaaa1111", started_at="2026-03-01T10:00:00+00:00")
    newer = make_run("bbbb2222", started_at="2026-03-02T10:00:00+00:00")
    with open_ledger(ledger_location) as ledger:
        ledger.save_run(newer)
        ledger.save_run(older)
        assert ledger.get_run("aaaa").id == "aaaa1111"
        assert ledger.get_run("last").id == "bbbb2222"
        assert ledger.get_run("last", samples=False).samples == []


def test_existing_ids_are_whole_ids_never_prefixes(ledger_location: str) -> None:
    with open_ledger(ledger_location) as ledger:
        ledger.save_run(make_run("aaaa1111"))
        assert ledger.existing_ids(["aaaa1111", "aaaa", "cccc3333"]) == {"aaaa1111"}
        assert ledger.existing_ids([]) == set()


def test_an_ambiguous_prefix_raises_and_lists_the_candidates(ledger_location: str) -> None:
    with open_ledger(ledger_location) as ledger:
        ledger.save_run(make_run("abc-one", name="first"))
        ledger.save_run(make_run("abc-two", name="second"))
        with pytest.raises(RunNotFoundError, match="several runs") as caught:
            ledger.get_run("abc")
        assert "abc-one (first)" in str(caught.value) and "abc-two (second)" in str(caught.value)


def test_a_unique_name_names_a_run_and_a_shared_one_lists_the_candidates(ledger_location: str) -> None:
    with open_ledger(ledger_location) as ledger:
        ledger.save_run(make_run("aaaa1111", name="sigkill-test"))
        ledger.save_run(make_run("bbbb2222", name="sweep"))
        ledger.save_run(make_run("cccc3333", name="sweep"))
        assert ledger.get_run("sigkill-test").id == "aaaa1111"
        with pytest.raises(RunNotFoundError, match="several runs are named 'sweep'") as caught:
            ledger.get_run("sweep")
        assert "bbbb2222 (sweep)" in str(caught.value) and "cccc3333 (sweep)" in str(caught.value)
        ledger.save_run(make_run("dddd4444", name="aaaa"))
        assert ledger.get_run("aaaa").id == "aaaa1111"  # an id prefix comes before a name


def test_unknown_ids_and_last_of_an_empty_ledger_raise_run_not_found(ledger_location: str) -> None:
    with open_ledger(ledger_location) as ledger:
        with pytest.raises(RunNotFoundError, match="holds no run"):
            ledger.get_run("last")
        ledger.save_run(make_run("abc_1"))
        for ref in ("zzz", "", "ab%", "abc%1", "ab_"):  # LIKE wildcards are not wildcards here
            with pytest.raises(RunNotFoundError):
                ledger.get_run(ref)


def test_list_runs_filters_and_gives_newest_first_without_samples(ledger_location: str) -> None:
    runs = [
        make_run("r1", name="bert", project="nlp", tags=["fp32"], started_at="2026-03-01T00:00:00Z"),
        make_run("r2", name="bert", project="nlp", tags=["int8", "pruned"],
                 started_at="2026-03-02T00:00:00Z"),
        make_run("r3", name="resnet", project="vision", tags=["int8"],
                 started_at="2026-03-03T00:00:00Z", status=Status.FAILED),
    ]
    with open_ledger(ledger_location) as ledger:
        for run in runs:
            ledger.save_run(run)
        assert [r.id for r in ledger.list_runs()] == ["r3", "r2", "r1"]
        assert [r.id for r in ledger.list_runs(project="nlp")] == ["r2", "r1"]
        assert [r.id for r in ledger.list_runs(tag="int8")] == ["r3", "r2"]
        assert [r.id for r in ledger.list_runs(name="resnet")] == ["r3"]
        assert [r.id for r in ledger.list_runs(status=Status.FAILED)] == ["r3"]
        assert [r.id for r in ledger.list_runs(status="completed", tag="int8")] == ["r2"]
        assert [r.id for r in ledger.list_runs(limit=2)] == ["r3", "r2"]
        with pytest.raises(LedgerError, match="unknown run status"):
            ledger.list_runs(status="finished")
        listed = ledger.list_runs(project="vision")[0]
    assert listed.samples == []
    assert listed.to_dict(samples=False) == runs[2].to_dict(samples=False) | {"peak_power_w": None}


# -- bad input loses and half-writes nothing -----------------------------------------------
def test_a_run_id_already_in_the_ledger_is_refused_and_the_stored_run_kept(
    ledger_location: str,
) -> None:
    run = make_run("dup")
    with open_ledger(ledger_location) as ledger:
        ledger.save_run(run)
        with pytest.raises(LedgerError, match="already in"):
            ledger.save_run(make_run("dup", name="other"))
        with pytest.raises(LedgerError, match="already in"):
            ledger.begin_run(make_run("dup", name="other"))
        assert ledger.get_run("dup").to_dict() == run.to_dict()


@pytest.mark.parametrize("bad_value", [float("nan"), object()], ids=["nan", "object"])
def test_metadata_that_is_not_json_is_refused_and_nothing_written(
    ledger_location: str, bad_value: object
) -> None:
    run = make_run("bad")
    run.metadata["accuracy"] = bad_value
    with open_ledger(ledger_location) as ledger:
        with pytest.raises(LedgerError, match="JSON"):
            ledger.save_run(run)
        assert ledger.list_runs() == []
        ledger.save_run(make_run("good"))
        with pytest.raises(LedgerError, match="JSON"):
            ledger.update_metadata("good", {"loss": bad_value})
        assert ledger.get_run("good").metadata == make_run().metadata


def test_samples_for_a_run_that_was_never_begun_are_refused(ledger_location: str) -> None:
    with open_ledger(ledger_location) as ledger:
        with pytest.raises(RunNotFoundError, match="begin_run"):
            ledger.append_samples("ghost", [Sample(0.0, "gpu:0", 100.0, 0.0)])
        with pytest.raises(RunNotFoundError, match="begin_run"):
            ledger.record_gaps("ghost", [Gap("gpu:0", 0.0, None, "lost")])
        assert ledger.list_runs() == []


# -- recovery of runs whose process died ------------------------------------------------------
_KILLED_WRITER = textwrap.dedent(
    """
    import sys, time
    from joulemeter.meter.run import Run, Sample
    from joulemeter.meter.store import open_ledger
    from tests.test_ledger import GPU, CPU

    ledger = open_ledger(sys.argv[1])
    ledger.begin_run(Run(id="killed", name="train", started_at="2026-03-01T12:00:00+00:00",
                         domains=[GPU, CPU]))
    # GPU at 300 W and CPU at 40 W, read every 2 s, flushed twice
    ticks = [0.0, 2.0, 4.0, 6.0]
    rows = [s for t in ticks for s in (Sample(t, "gpu:0", 300.0, 300.0 * t),
                                         Sample(t, "cpu:package-0", 40.0, 40.0 * t))]
    ledger.append_samples("killed", rows[:4])
    ledger.append_samples("killed", rows[4:])
    print("flushed", flush=True)
    time.sleep(600)  # killed with SIGKILL long before this ends
    """
)


def test_a_run_whose_process_was_killed_is_interrupted_with_energy_from_its_samples(
    ledger_location: str,
) -> None:
    repo_root = Path(__file__).resolve().parent.parent
    writer = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, ledger_location],
        stdout=subprocess.PIPE, text=True, cwd=repo_root,
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "flushed"
    finally:
        writer.kill()  # SIGKILL: no atexit, no finish_run
        writer.wait()
    with open_ledger(ledger_location) as ledger:
        run = ledger.get_run("killed")
    assert run.status is Status.INTERRUPTED
    assert run.duration_s == 6.0  # the last flushed sample
    # energy is the last cumulative sample: 300 W × 6 s and 40 W × 6 s
    assert run.energy["gpu:0"].energy_j == 1800.0
    assert run.energy["cpu:package-0"].energy_j == 240.0
    assert run.energy["gpu:0"].avg_power_w == 300.0
    assert run.energy["gpu:0"].peak_power_w == 300.0
    assert run.energy["gpu:0"].provenance is Provenance.COUNTER
    assert len(run.samples) == 8
    assert run.ended_at is not None  # the last heartbeat
    assert datetime.fromisoformat(run.ended_at) > datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert f"pid {writer.pid}" in (run.error or "")


def test_a_run_whose_process_is_alive_stays_running(ledger_location: str) -> None:
    with open_ledger(ledger_location) as ledger:
        ledger.begin_run(make_run("alive", status=Status.RUNNING))
    with open_ledger(ledger_location) as ledger:
        assert ledger.get_run("alive").status is Status.RUNNING


def test_a_run_whose_pid_now_belongs_to_a_later_process_is_interrupted(
    ledger_location: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psutil

    with open_ledger(ledger_location) as ledger:
        with monkeypatch.context() as patched:  # the writer started long before this process
            patched.setattr(psutil.Process, "create_time", lambda self: 1_000_000.0)
            ledger.begin_run(make_run("reused-pid", status=Status.RUNNING))
    with open_ledger(ledger_location) as ledger:
        assert ledger.get_run("reused-pid").status is Status.INTERRUPTED


@pytest.mark.parametrize(
    ("silent_for_s", "expected"), [(301.0, Status.INTERRUPTED), (60.0, Status.RUNNING)]
)
def test_a_run_on_another_host_is_interrupted_only_after_five_silent_minutes(
    ledger_location: str, monkeypatch: pytest.MonkeyPatch, silent_for_s: float, expected: Status
) -> None:
    import sqlalchemy as sa

    from joulemeter.meter.store import schema

    last_heard = (datetime.now(timezone.utc) - timedelta(seconds=silent_for_s)).isoformat()
    with open_ledger(ledger_location) as ledger:
        with monkeypatch.context() as patched:
            patched.setattr("socket.gethostname", lambda: "some-other-node")
            ledger.begin_run(make_run("remote", status=Status.RUNNING))
        with ledger._engine.begin() as conn:  # its writer last wrote `silent_for_s` ago
            runs = schema.runs
            conn.execute(sa.update(runs).where(runs.c.id == "remote").values(heartbeat_at=last_heard))
    with open_ledger(ledger_location) as ledger:
        run = ledger.get_run("remote")
    assert run.status is expected
    if expected is Status.INTERRUPTED:
        assert run.ended_at == last_heard


def test_a_live_writer_whose_clock_is_ten_minutes_behind_stays_running(
    ledger_location: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Heartbeats are stamped and judged by the database's clock, not the writer's."""
    import joulemeter.meter.store.ledger as ledger_module

    class BehindClock(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.now(tz) - timedelta(seconds=600)

    with open_ledger(ledger_location) as ledger:
        with monkeypatch.context() as patched:
            patched.setattr("socket.gethostname", lambda: "node-with-a-slow-clock")
            patched.setattr(ledger_module, "datetime", BehindClock)
            ledger.begin_run(make_run("skewed", status=Status.RUNNING, samples=0))
            ledger.append_samples("skewed", [Sample(0.0, "gpu:0", 100.0, 0.0)])
    with open_ledger(ledger_location) as ledger:
        assert ledger.get_run("skewed").status is Status.RUNNING


@pytest.mark.parametrize("where", ["name", "tag", "window"])
def test_a_nul_character_is_refused_with_that_reason_on_either_backend(ledger_location: str, where: str) -> None:
    run = make_run("nul")
    if where == "name":
        run.name = "bad\x00name"
    elif where == "tag":
        run.tags.append("t\x00")
    else:
        run.windows[0].path = "train\x00"
    with open_ledger(ledger_location) as ledger:
        with pytest.raises(LedgerError, match="NUL") as info:
            ledger.save_run(run)
        assert "unreachable" not in str(info.value) and "reachable" not in str(info.value)
        assert ledger.list_runs() == []


def test_recovering_a_big_killed_run_holds_little_memory(ledger_location: str) -> None:
    """Energy is summed by the database: recovery never loads the run's samples."""
    import tracemalloc

    count = 100_000
    with open_ledger(ledger_location) as ledger:
        ledger.begin_run(make_run("big", status=Status.RUNNING, samples=0),
                         writer={"pid": 2**22 + 12345, "hostname": socket.gethostname(), "process_started_at": 1.0})
        for start in range(0, count, 20_000):
            ledger.append_samples("big", [Sample(float(t), "gpu:0", 200.0, 200.0 * t) for t in range(start, start + 20_000)])
    tracemalloc.start()
    try:
        with open_ledger(ledger_location) as ledger:
            _, peak = tracemalloc.get_traced_memory()
            run = ledger.get_run("big", samples=False)
    finally:
        tracemalloc.stop()
    assert run.status is Status.INTERRUPTED
    assert run.energy["gpu:0"].energy_j == 200.0 * (count - 1)
    assert run.duration_s == count - 1
    assert peak < 5_000_000, f"recovery held {peak / 1e6:.1f} MB"


def test_a_starting_meter_does_not_wait_for_recovery_of_other_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from joulemeter.meter import EnergyMeter
    from joulemeter.meter.store.ledger import Ledger
    from tests.doubles import LinearCounterSource
    from tests.polling import wait_until

    release, recovering = threading.Event(), threading.Event()

    def slow_recover(self) -> None:
        recovering.set()
        release.wait(60)

    monkeypatch.setattr(Ledger, "recover", slow_recover)
    path = tmp_path / "ledger.sqlite"
    try:
        with EnergyMeter("unrelated", ledger=path, sources=[LinearCounterSource()],
                         interval_s=0.01, flush_interval_s=0.05) as m:
            wait_until(recovering.is_set, "recovery to begin on its own thread")
            with open_ledger(path, recover=False) as ledger:
                wait_until(lambda: ledger.get_run(m.run.id).samples, "samples written while recovery runs")
        assert m.run.status is Status.COMPLETED
    finally:
        release.set()


# -- where the ledger lives ------------------------------------------------------------------
def test_default_location_follows_the_environment_then_xdg(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("JOULEMETER_LEDGER", "postgresql://team@db/ledger")
    assert default_location() == "postgresql://team@db/ledger"
    monkeypatch.delenv("JOULEMETER_LEDGER")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    monkeypatch.setattr(sys, "platform", "linux")
    assert default_location() == str(tmp_path / "joulemeter" / "ledger.sqlite")


def test_open_ledger_without_a_location_creates_the_default_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    target = tmp_path / "nested" / "dir" / "ledger.sqlite"
    target.parent.mkdir(parents=True)  # a folder the user names must exist (only the data folder is made)
    monkeypatch.setenv("JOULEMETER_LEDGER", str(target))
    with open_ledger() as ledger:
        ledger.save_run(make_run("x"))
        assert ledger.location == str(target)
    assert target.is_file()


def test_ledger_urls_pick_the_backend_and_hide_passwords(tmp_path: Path) -> None:
    assert resolve(f"sqlite:///{tmp_path}/l.sqlite").sqlite_path == tmp_path / "l.sqlite"
    pg = resolve("postgresql://alice:secret@db.example:5432/ledger")
    assert pg.url.drivername == "postgresql+psycopg" and pg.sqlite_path is None
    assert "secret" not in pg.display and pg.url.password == "secret"
    for bad in ("mysql://db/ledger", "sqlite://", "sqlite:///:memory:"):
        with pytest.raises(LedgerError):
            resolve(bad)


def test_an_unreachable_server_gives_a_ledger_error_saying_what_to_check() -> None:
    with pytest.raises(LedgerError, match="Check that the file or server is reachable"):
        open_ledger("postgresql://nobody@127.0.0.1:1/ledger")


def test_importing_meter_and_the_store_does_not_import_sqlalchemy() -> None:
    code = "import sys, joulemeter.meter, joulemeter.meter.store; print('sqlalchemy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_save_runs_writes_all_runs_or_none_when_one_id_exists(ledger_location):
    ledger = open_ledger(ledger_location)
    first, second = make_run(), make_run()
    ledger.save_run(second)
    with pytest.raises(LedgerError):
        ledger.save_runs([first, second])  # second already there: the whole batch is refused
    assert [r.id for r in ledger.list_runs()] == [second.id]
    ledger.close()
