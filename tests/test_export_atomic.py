"""Writing an export or a report: a bad target is a clear error, and a write that fails part
way (a full disk) leaves the old file as it was and no partial or temporary file behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from joulemeter.integrations.cli import app
from joulemeter.meter.errors import ReportError
from joulemeter.meter.export import export_runs, write_text
from joulemeter.meter.run import Domain, Provenance, Run, Sample, Status
from joulemeter.meter.store import open_ledger

runner = CliRunner()


def long_run() -> Run:
    """A run whose samples table is about 100 kB as CSV."""
    domain = Domain("gpu:0", "gpu", "GPU", Provenance.COUNTER, "counter")
    samples = [Sample(t * 0.1, "gpu:0", 250.0, 25.0 * t) for t in range(2000)]
    return Run(id="c" * 32, name="long", status=Status.COMPLETED, started_at="2026-01-01T00:00:00+00:00",
               duration_s=200.0, domains=[domain], samples=samples)


@pytest.fixture
def ledger(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "ledger.sqlite"
    with open_ledger(path) as book:
        book.save_run(long_run())
    monkeypatch.setenv("JOULEMETER_LEDGER", str(path))
    return path


@pytest.mark.parametrize(
    ("target", "why"),
    [
        (lambda tmp: tmp, "it is a folder"),
        (lambda tmp: tmp / "no" / "such" / "folder" / "out.csv", "there is no folder"),
        (lambda tmp: Path("/proc/version"), "no new file can be made in /proc"),
    ],
    ids=["a folder", "a missing folder", "/proc/version"],
)
def test_a_target_that_cannot_be_written_is_a_clear_error_from_export_and_report(ledger, tmp_path, target, why):
    path = target(tmp_path)
    for args in (["export", "last", "-f", "csv", "-o", str(path)],
                 ["report", "last", "-f", "md", "--intensity", "400", "-o", str(path)]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        assert f"cannot write {path}: {why}" in result.stderr and "(--output)" in result.stderr
        assert "Traceback" not in result.output
    with pytest.raises(ReportError, match=why):
        write_text(path, "text")


DISK_FULL = """
import resource, signal, sys
from joulemeter.meter.errors import ReportError
from joulemeter.meter.export import export_runs
from joulemeter.meter.store import open_ledger

ledger, fmt, out = sys.argv[1:]
with open_ledger(ledger, for_reading=True) as book:
    runs = [book.get_run("last")]
# from here files may not grow past 4 kB: writes past it fail with EFBIG, as on a full disk
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
try:
    export_runs(runs, fmt, out)
except ReportError as exc:
    sys.exit(f"error: {exc}")
"""


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_a_write_that_fails_part_way_keeps_the_old_file_whole_and_leaves_nothing_behind(ledger, tmp_path, fmt):
    out = tmp_path / f"out.{fmt}"
    out.write_text("the previous export\n")
    done = subprocess.run([sys.executable, "-c", DISK_FULL, str(ledger), fmt, str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert f"cannot write {out}: " in done.stderr and "File too large" in done.stderr
    assert "Traceback" not in done.stderr
    assert out.read_text() == "the previous export\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ledger.sqlite", out.name]


def test_a_write_replaces_the_file_whole_and_keeps_its_permissions(tmp_path):
    out = tmp_path / "out.csv"
    out.write_text("old")
    out.chmod(0o640)
    export_runs([long_run()], "csv", out)
    assert out.read_text().startswith("run_id,") and len(out.read_text()) > 4096
    assert out.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_a_device_such_as_dev_null_is_written_in_place():
    write_text("/dev/null", "discarded")  # os.replace onto a device would fail; it is not tried
