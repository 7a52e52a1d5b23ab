"""A ledger that fails mid-run loses nothing and stops nothing (issue 18, items 1, 2, 3, 9, 15).

Each fault is real or a faithful double: SQLite's own "database or disk is full", a full
tmpfs mounted in a user namespace, a lock held by another process, a PostgreSQL server
that goes away (a TCP proxy in front of it is closed), a ledger file deleted mid-run. In
each, the metered code runs to its end, the failure is a warning, sampling goes on, and
the samples reach the ledger exactly once when it takes writes again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from joulemeter.meter import EnergyMeter, Status
from joulemeter.meter.errors import LedgerWriteWarning, RunNotFoundError
from joulemeter.meter.store import open_ledger
from tests.conftest import POSTGRES_URL_ENV, _fresh_postgres_schema
from tests.doubles import LinearCounterSource
from tests.polling import wait_until

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def spool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "spool"
    monkeypatch.setenv("JOULEMETER_SPOOL", str(folder))
    return folder


def _spool_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.jsonl")) if folder.is_dir() else []


def _stored(location: str | Path, run_id: str):
    with open_ledger(location) as ledger:  # opening delivers what waits in the spool
        return ledger.get_run(run_id)


def _stored_yet(location: str | Path, run_id: str) -> bool:
    """True once the ledger at `location` holds samples of the run; False while the file
    exists but the writer has not begun the run there yet."""
    try:
        return bool(_stored(location, run_id).samples)
    except RunNotFoundError:
        return False


@contextlib.contextmanager
def sqlite_cannot_grow() -> Iterator[None]:
    """Every SQLite connection opened meanwhile may not grow its database: a write that needs
    a new page fails with SQLITE_FULL, "database or disk is full", what a full disk gives."""

    def limit(dbapi_connection, _record) -> None:
        pages = dbapi_connection.execute("PRAGMA page_count").fetchone()[0]
        dbapi_connection.execute(f"PRAGMA max_page_count = {pages}")

    sa.event.listen(sa.pool.Pool, "connect", limit)
    try:
        yield
    finally:
        sa.event.remove(sa.pool.Pool, "connect", limit)


def test_a_full_disk_warns_keeps_sampling_and_spools_every_sample_for_later(tmp_path, spool, caplog):
    path = tmp_path / "ledger.sqlite"
    open_ledger(path).close()
    caplog.set_level(logging.WARNING, logger="joulemeter")
    flush_s = 0.05
    with sqlite_cannot_grow(), pytest.warns(LedgerWriteWarning, match="full"):
        with EnergyMeter("disk-full", ledger=path, sources=[LinearCounterSource()],
                         interval_s=0.001, flush_interval_s=flush_s) as m:
            problem = wait_until(lambda: m.ledger_problem, "a failed ledger write")
            wait_until(lambda: _spool_files(spool), "samples in the spool")
    run = m.run
    assert "full" in problem
    assert run.status is Status.COMPLETED
    assert run.gaps == []  # sampling never stalled for the ledger
    assert any("full" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    failed = run.metadata["ledger_writes"]["failed_writes"]
    # retries back off (doubling from the flush interval), they do not come every round
    assert failed <= 3 + math.log2(run.duration_s / flush_s + 1), failed
    (spooled,) = _spool_files(spool)
    assert spooled.stat().st_mode & 0o777 == 0o600
    assert spool.stat().st_mode & 0o777 == 0o700
    stored = _stored(path, run.id)
    assert stored.status is Status.COMPLETED
    assert stored.samples == run.samples  # every sample, once
    assert stored.energy == run.energy and stored.windows == run.windows
    assert _spool_files(spool) == []


_FULL_TMPFS_CHILD = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path
    from joulemeter.meter import EnergyMeter
    from joulemeter.meter.store import open_ledger
    from tests.doubles import LinearCounterSource

    disk = Path(sys.argv[1])
    ledger = disk / "ledger.sqlite"
    with EnergyMeter("tmpfs-full", ledger=ledger, sources=[LinearCounterSource()],
                     interval_s=0.001, flush_interval_s=0.05) as m:
        with open(disk / "filler", "wb", buffering=0) as f:  # the disk fills up mid-run
            try:
                while True:
                    f.write(bytes(65536))
            except OSError:
                pass
        deadline = time.monotonic() + 60
        while m.ledger_problem is None and time.monotonic() < deadline:
            time.sleep(0.01)
        problem = m.ledger_problem
    os.remove(disk / "filler")
    with open_ledger(ledger) as book:
        stored = book.get_run(m.run.id)
    print(json.dumps({"problem": problem, "status": m.run.status.value, "stored": stored.status.value,
                      "same_samples": stored.samples == m.run.samples, "samples": len(m.run.samples)}))
    """
)


def _user_namespaces_work() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(not _user_namespaces_work(), reason="needs `unshare -rm` to mount a small tmpfs")
def test_a_real_full_filesystem_loses_no_sample(tmp_path, spool):
    disk = tmp_path / "disk"
    disk.mkdir()
    mount_and_run = 'mount -t tmpfs -o size=4m tmpfs "$1" && exec "$2" -c "$3" "$1"'
    child = subprocess.run(
        ["unshare", "-rm", "sh", "-c", mount_and_run, "sh", str(disk), sys.executable, _FULL_TMPFS_CHILD],
        cwd=REPO, capture_output=True, text=True, timeout=180,
    )
    assert child.returncode == 0, child.stderr
    result = json.loads(child.stdout.splitlines()[-1])
    assert result["problem"] and "full" in result["problem"]
    assert result["status"] == result["stored"] == "completed"
    assert result["same_samples"] and result["samples"] > 0
    assert "LedgerWriteWarning" in child.stderr


_LOCK_HOLDER = textwrap.dedent(
    """
    import sqlite3, sys
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    print("locked", flush=True)
    sys.stdin.readline()
    conn.execute("ROLLBACK")
    """
)


def test_a_ledger_locked_by_another_process_does_not_stop_sampling(tmp_path):
    path = tmp_path / "ledger.sqlite"
    source = LinearCounterSource()
    with EnergyMeter("locked-out", ledger=path, sources=[source], interval_s=0.01, flush_interval_s=0.1) as m:
        wait_until(lambda: _stored(path, m.run.id).samples, "a first write")
        holder = subprocess.Popen([sys.executable, "-c", _LOCK_HOLDER, str(path)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
            wait_until(lambda: m.ledger_problem, "a write refused by the lock")
            reads = source.reads
            wait_until(lambda: source.reads >= reads + 100, "100 readings while the ledger is locked")
            assert m.ledger_problem is not None  # still locked: the readings did not wait for it
        finally:
            holder.communicate("release\n", timeout=30)
        wait_until(lambda: m.ledger_problem is None, "the ledger to take writes again")
    run = m.run
    assert run.gaps == []
    assert run.metadata["ledger_writes"]["failed_writes"] >= 1
    stored = _stored(path, run.id)
    assert stored.status is Status.COMPLETED
    assert stored.samples == run.samples


def test_a_ledger_file_deleted_mid_run_is_noticed_and_gets_the_whole_run_back(tmp_path, caplog):
    path = tmp_path / "ledger.sqlite"
    caplog.set_level(logging.WARNING, logger="joulemeter")
    with pytest.warns(LedgerWriteWarning, match="deleted"):
        with EnergyMeter("deleted", ledger=path, sources=[LinearCounterSource()],
                         interval_s=0.01, flush_interval_s=0.05) as m:
            wait_until(lambda: _stored(path, m.run.id).samples, "a first write")
            for side in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                side.unlink(missing_ok=True)
            wait_until(lambda: path.exists() and _stored_yet(path, m.run.id), "the run in a new ledger file")
    assert any("deleted" in r.getMessage() for r in caplog.records)
    stored = _stored(path, m.run.id)
    assert stored.status is Status.COMPLETED
    assert stored.samples == m.run.samples


def test_unstorable_metadata_and_names_set_mid_run_still_close_the_run(tmp_path, caplog):
    path = tmp_path / "ledger.sqlite"
    caplog.set_level(logging.WARNING, logger="joulemeter")
    with EnergyMeter("odd-values", ledger=path, sources=[LinearCounterSource()], interval_s=0.01) as m:
        with m.window("a\x00b"):
            m.run.metadata["accuracy"] = float("nan")
            m.run.metadata["model"] = object()
    stored = _stored(path, m.run.id)
    assert stored.status is Status.COMPLETED
    assert stored.metadata["accuracy"] is None
    assert stored.metadata["model"].startswith("<object object")
    assert [w.path for w in stored.windows] == ["a\ufffdb"]
    assert any("metadata" in r.getMessage() for r in caplog.records)


# -- PostgreSQL going away ---------------------------------------------------------------
class Proxy:
    """A TCP forwarder on a fixed local port to a server; `down()` closes it and every
    connection through it, `up()` opens it again on the same port."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self.up()

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        self._sockets = [listener]
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        for s in self._sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        self._sockets = []

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            self._sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    if not os.environ.get(POSTGRES_URL_ENV):
        pytest.skip(f"{POSTGRES_URL_ENV} is not set (eval \"$(bash .ci/postgres.sh)\")")
    yield from _fresh_postgres_schema(os.environ[POSTGRES_URL_ENV])


@pytest.mark.postgres
def test_postgres_going_down_before_the_end_fails_nothing_and_delivers_when_back(postgres_url, spool):
    real = sa.make_url(postgres_url)
    proxy = Proxy(real.host or "127.0.0.1", real.port or 5432)
    url = real.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    try:
        with pytest.warns(LedgerWriteWarning):
            with EnergyMeter("pg-down", ledger=url, sources=[LinearCounterSource()],
                             interval_s=0.01, flush_interval_s=0.05) as m:
                wait_until(lambda: _stored(postgres_url, m.run.id).samples, "a first write")
                proxy.down()
                wait_until(lambda: m.ledger_problem, "a write refused by the missing server")
        assert m.run.status is Status.COMPLETED
        assert len(_spool_files(spool)) == 1
        assert _stored(postgres_url, m.run.id).status is Status.RUNNING  # the end is in the spool
        proxy.up()
        stored = _stored(url, m.run.id)  # the same ledger as the run's: its spool is delivered
    finally:
        proxy.down()
    assert stored.status is Status.COMPLETED
    assert stored.samples == m.run.samples
    assert _spool_files(spool) == []
