"""The local spool is delivered into its ledger once, whole, and only when its writer is gone;
ledger and spool files are private (issue 18, items 1, 9, 10)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from joulemeter.meter.run import Sample, Status
from joulemeter.meter.store import open_ledger
from joulemeter.meter.store.ledger import writer_identity
from joulemeter.meter.store.spool import RunSpool, deliver_all
from tests.test_ledger import make_run

SAMPLES = [Sample(float(t), "gpu:0", 100.0, 100.0 * t) for t in range(10)]


@pytest.fixture
def ledger_path(tmp_path: Path) -> Path:
    return tmp_path / "ledger.sqlite"


def _spooled(folder: Path, ledger_location: str, *, finish: bool, batches=(SAMPLES[:4], SAMPLES[4:]),
             run_id: str = "spooled"):
    """A closed spool of a run, as a writer leaves it when the ledger refused its writes."""
    run = make_run(run_id, status=Status.RUNNING, samples=0)
    spool = RunSpool(run.id, ledger_location, folder)
    spool.write_begin(run, writer_identity())
    for batch in batches:
        spool.write_samples(batch)
    if finish:
        spool.write_finish(dataclasses.replace(run, status=Status.COMPLETED))
    spool.close()
    return run, spool.path


def test_a_finished_spooled_run_is_delivered_once_even_when_delivery_runs_twice(tmp_path, ledger_path):
    with open_ledger(ledger_path, recover=False) as ledger:
        run, path = _spooled(tmp_path, ledger.location, finish=True)
        copy = tmp_path / "copy.bak"
        copy.write_bytes(path.read_bytes())
        assert deliver_all(ledger, tmp_path) == 1
        assert not path.exists()
        copy.rename(path)  # the same spool again, as if removing it had failed
        assert deliver_all(ledger, tmp_path) == 1
        stored = ledger.get_run(run.id)
    assert stored.status is Status.COMPLETED
    assert stored.samples == SAMPLES


def test_a_spool_the_ledger_refuses_is_kept_and_the_others_are_still_delivered(tmp_path, ledger_path):
    with open_ledger(ledger_path, recover=False) as ledger:
        _, refused = _spooled(tmp_path, ledger.location, finish=True, run_id="a-refused")  # delivered first
        run, path = _spooled(tmp_path, ledger.location, finish=True, run_id="b-kept")
        head, rest = refused.read_text().split("\n", 1)
        refused.write_text(head.replace('"name": "resnet-train"', '"name": null') + "\n" + rest)  # NOT NULL
        assert deliver_all(ledger, tmp_path) == 1
        assert ledger.get_run(run.id).samples == SAMPLES
        assert refused.exists() and not path.exists()  # kept for a later try


def test_samples_already_in_the_ledger_are_skipped_and_a_torn_last_line_ignored(tmp_path, ledger_path):
    with open_ledger(ledger_path, recover=False) as ledger:
        run, path = _spooled(tmp_path, ledger.location, finish=False)
        ledger.begin_run(run)
        ledger.append_samples(run.id, SAMPLES[:6])  # the ledger took part of it before failing
        with path.open("a") as f:
            f.write('{"kind": "samples", "rows": [[99.0, "gpu:0"')  # the writer was killed here
        assert deliver_all(ledger, tmp_path) == 1
        stored = ledger.get_run(run.id)
    assert stored.samples == SAMPLES
    assert stored.status is Status.RUNNING  # no end in the spool: recovery decides, see below


def test_a_spool_whose_writer_died_makes_the_run_interrupted_with_all_its_energy(tmp_path, ledger_path, monkeypatch):
    monkeypatch.setenv("JOULEMETER_SPOOL", str(tmp_path))
    with open_ledger(ledger_path) as ledger:
        run = make_run("dead-writer", status=Status.RUNNING, samples=0)
        dead = {**writer_identity(), "pid": _a_finished_pid()}
        ledger.begin_run(run, writer=dead)
        spool = RunSpool(run.id, ledger.location, tmp_path)
        spool.write_begin(run, dead)
        spool.write_samples(SAMPLES)
        spool.close()
    with open_ledger(ledger_path) as ledger:  # opening delivers, then recovers the dead run
        stored = ledger.get_run(run.id)
    assert stored.status is Status.INTERRUPTED
    assert stored.duration_s == 9.0
    assert stored.energy["gpu:0"].energy_j == 900.0


def _a_finished_pid() -> int:
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(child.stdout)


_LIVE_WRITER = textwrap.dedent(
    """
    import sys
    from joulemeter.meter.store.ledger import writer_identity
    from joulemeter.meter.store.spool import RunSpool
    from tests.test_ledger import make_run
    from pathlib import Path
    run = make_run("live")
    spool = RunSpool(run.id, sys.argv[2], Path(sys.argv[1]))
    spool.write_begin(run, writer_identity())
    print("spooled", flush=True)
    sys.stdin.readline()
    """
)


def test_a_spool_still_held_by_its_writer_is_left_to_it(tmp_path, ledger_path):
    with open_ledger(ledger_path, recover=False) as ledger:
        writer = subprocess.Popen(
            [sys.executable, "-c", _LIVE_WRITER, str(tmp_path), ledger.location],
            cwd=Path(__file__).resolve().parent.parent, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        try:
            assert writer.stdout is not None and writer.stdout.readline().strip() == "spooled"
            assert deliver_all(ledger, tmp_path) == 0
            assert ledger.existing_ids(["live"]) == set()
        finally:
            writer.communicate("\n", timeout=30)
        assert deliver_all(ledger, tmp_path) == 1  # its writer is gone now
        assert ledger.existing_ids(["live"]) == {"live"}


def test_a_spool_for_another_ledger_is_left_alone(tmp_path, ledger_path):
    with open_ledger(ledger_path, recover=False) as ledger:
        _, path = _spooled(tmp_path, "/somewhere/else.sqlite", finish=True)
        assert deliver_all(ledger, tmp_path) == 0
        assert path.exists()


def test_a_new_ledger_is_private_and_so_is_a_folder_made_for_it(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))  # only the default ledger's folder is made
    path = tmp_path / "joulemeter" / "ledger.sqlite"
    with open_ledger(path) as ledger:
        ledger.save_run(make_run("first"))
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    for side in path.parent.glob("ledger.sqlite-*"):  # -wal, -shm: SQLite gives them the file's mode
        assert side.stat().st_mode & 0o777 == 0o600


def test_an_existing_ledger_keeps_the_mode_its_owner_gave_it(tmp_path):
    path = tmp_path / "shared.sqlite"
    open_ledger(path).close()
    path.chmod(0o640)
    open_ledger(path).close()
    assert path.stat().st_mode & 0o777 == 0o640
