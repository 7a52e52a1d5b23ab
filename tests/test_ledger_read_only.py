"""A ledger that cannot be written here can still be read (issue 18, item 14).

Reading commands open the ledger with `for_reading=True`: on a read-only mount, or in a
folder or file without write permission, it opens read-only, reads every run, writes
nothing (no -wal or -shm file appears) and refuses writes with a clear LedgerError.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from joulemeter.meter.errors import LedgerError
from joulemeter.meter.store import open_ledger
from tests.test_ledger import make_run

REPO = Path(__file__).resolve().parent.parent

_READER = textwrap.dedent(
    """
    import json, sys
    from joulemeter.meter.errors import LedgerError
    from joulemeter.meter.store import open_ledger
    from tests.test_ledger import make_run
    with open_ledger(sys.argv[1], for_reading=True) as ledger:
        runs = [r.id for r in ledger.list_runs()]
        samples = len(ledger.get_run("kept").samples)
        try:
            ledger.save_run(make_run("new"))
            refused = None
        except LedgerError as exc:
            refused = str(exc)
    print(json.dumps({"runs": runs, "samples": samples, "refused": refused}))
    """
)


def _ledger_with_one_run(folder: Path) -> Path:
    folder.mkdir()
    path = folder / "ledger.sqlite"
    with open_ledger(path) as ledger:
        ledger.save_run(make_run("kept"))
    return path


def _check_read(result: dict, folder: Path) -> None:
    assert result["runs"] == ["kept"]
    assert result["samples"] == len(make_run().samples)
    assert result["refused"] is not None and "read-only" in result["refused"]
    assert sorted(p.name for p in folder.iterdir()) == ["ledger.sqlite"]  # nothing was written


def _user_namespaces_work() -> bool:
    return shutil.which("unshare") is not None and subprocess.run(["unshare", "-rm", "true"]).returncode == 0


@pytest.mark.skipif(not _user_namespaces_work(), reason="needs `unshare -rm` for a read-only bind mount")
def test_a_ledger_on_a_read_only_mount_is_read_and_never_written(tmp_path):
    path = _ledger_with_one_run(tmp_path / "ro")
    mount_ro = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && exec "$2" -c "$3" "$4"'
    child = subprocess.run(
        ["unshare", "-rm", "sh", "-c", mount_ro, "sh", str(path.parent), sys.executable, _READER, str(path)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert child.returncode == 0, child.stderr
    _check_read(json.loads(child.stdout.splitlines()[-1]), path.parent)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes whatever the permissions say")
def test_a_ledger_in_a_folder_without_write_permission_is_read(tmp_path):
    path = _ledger_with_one_run(tmp_path / "locked")
    path.chmod(0o444)
    path.parent.chmod(0o555)
    try:
        child = subprocess.run([sys.executable, "-c", _READER, str(path)], cwd=REPO,
                               capture_output=True, text=True, timeout=120)
    finally:
        path.parent.chmod(0o755)
    assert child.returncode == 0, child.stderr
    _check_read(json.loads(child.stdout.splitlines()[-1]), path.parent)


def test_a_writable_ledger_opened_for_reading_is_the_usual_ledger(tmp_path):
    path = _ledger_with_one_run(tmp_path / "rw")
    with open_ledger(path, for_reading=True) as ledger:
        assert not ledger.read_only
        ledger.save_run(make_run("second"))
        assert {r.id for r in ledger.list_runs()} == {"kept", "second"}


def test_writes_to_a_read_only_ledger_are_refused_before_touching_it(tmp_path):
    path = _ledger_with_one_run(tmp_path / "ro-object")
    from joulemeter.meter.store.ledger import Ledger
    from joulemeter.meter.store.sqlite_file import configure, read_only_engine

    engine = read_only_engine(path)
    configure(engine, read_only=True)
    with Ledger(engine, str(path), read_only=True, path=path) as ledger:
        with pytest.raises(LedgerError, match="read-only"):
            ledger.update_metadata("kept", {"x": 1})
        assert ledger.get_run("kept").metadata == make_run().metadata


@pytest.mark.parametrize("command", [["runs"], ["show", "last"], ["report", "last", "-f", "md"], ["inventory"]],
                         ids=" ".join)
def test_a_reading_command_refuses_a_ledger_that_does_not_exist_and_creates_nothing(tmp_path, command):
    missing = tmp_path / "nonexistent" / "dir" / "l.sqlite"
    env = os.environ | {"JOULEMETER_LEDGER": str(missing)}
    result = subprocess.run([sys.executable, "-m", "joulemeter.integrations.cli", *command],
                            capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 2
    assert "no ledger at" in result.stderr and "nonexistent" in result.stderr
    assert not (tmp_path / "nonexistent").exists()
