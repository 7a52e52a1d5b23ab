"""`joulemeter run`: exit codes, JSON output, and what the ledger keeps after SIGTERM and SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from joulemeter.meter.store import open_ledger
from tests.flushed import flushed_samples
from tests.polling import wait_until

BUSY = "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end: pass\n"


def joulemeter(*args: str) -> list[str]:
    return [sys.executable, "-m", "joulemeter.integrations.cli", *args]


@pytest.fixture
def ledger_path(tmp_path, monkeypatch):
    path = tmp_path / "ledger.sqlite"
    monkeypatch.setenv("JOULEMETER_LEDGER", str(path))
    return path


def running_run_with_samples(path):
    """The running run once it has flushed samples (to the ledger or its journal), with
    the (t_s, domain) of each; None before."""
    if not path.exists():
        return None
    try:
        with open_ledger(path, recover=False) as book:
            runs = book.list_runs(status="running")
            if runs:
                flushed = flushed_samples(book, runs[0].id)
                return (runs[0], flushed) if flushed else None
    except Exception:  # the ledger is being created by the other process
        return None
    return None


@pytest.mark.slow
def test_run_json_reports_energy_and_exit_code_of_the_command(ledger_path):
    result = subprocess.run(
        joulemeter("run", "--json", "--name", "busy", "--interval", "0.05", "--", sys.executable, "-c", BUSY.format(seconds=1)),
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["status"] == "completed" and data["exit_code"] == 0
    assert data["duration_s"] >= 1.0
    assert data["total_energy_j"] > 0
    assert all(e["provenance"] in ("counter", "sampled", "estimated") for e in data["energy"].values())
    with open_ledger(ledger_path) as book:
        assert book.get_run("last").id == data["id"]


@pytest.mark.slow
def test_run_exits_with_the_commands_code_and_marks_the_run_failed(ledger_path):
    result = subprocess.run(
        joulemeter("run", "--", sys.executable, "-c", "import sys; sys.exit(3)"),
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 3
    with open_ledger(ledger_path) as book:
        run = book.get_run("last")
    assert run.status.value == "failed" and "3" in run.error


def test_runs_on_an_empty_ledger_says_so_and_how_to_make_one(ledger_path):
    open_ledger(ledger_path).close()  # a ledger with no run yet (a missing one is refused)
    result = subprocess.run(joulemeter("runs"), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout == ""
    assert result.stderr == (f"no runs in {ledger_path}: meter one with `joulemeter run -- CMD` "
                             "or `joulemeter demo`\n")


def test_a_missing_command_exits_127_and_records_no_run(ledger_path):
    result = subprocess.run(joulemeter("run", "--", "no-such-command-xyz", "--flag"),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 127
    assert "command not found: no-such-command-xyz" in result.stderr
    assert not ledger_path.exists()  # nothing metered, so nothing written


def test_an_unusable_ledger_location_is_one_line_naming_it_not_a_missing_command(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("JOULEMETER_LEDGER", str(blocker / "ledger.sqlite"))
    result = subprocess.run(joulemeter("run", "--", sys.executable, "-c", "pass"),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr == (f"error: the ledger's folder {blocker} exists but is not a folder; "
                             f"`{os.path.basename(sys.executable)} -c pass` was not run\n")


def test_a_ledger_in_a_folder_that_does_not_exist_is_refused_and_no_folder_is_made(tmp_path, monkeypatch):
    typo = tmp_path / "nonexistent" / "dir"
    monkeypatch.setenv("JOULEMETER_LEDGER", str(typo / "l.sqlite"))
    result = subprocess.run(joulemeter("run", "--", sys.executable, "-c", "pass"),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f"the ledger's folder {typo} does not exist" in result.stderr and "create the folder first" in result.stderr
    assert not (tmp_path / "nonexistent").exists()


@pytest.mark.slow
def test_sigterm_is_forwarded_and_the_run_closes_interrupted_with_its_samples(ledger_path):
    proc = subprocess.Popen(
        joulemeter("run", "--name", "victim", "--interval", "0.05", "--", sys.executable, "-c", BUSY.format(seconds=60)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_until(lambda: running_run_with_samples(ledger_path), "flushed samples", timeout_s=30)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM
    with open_ledger(ledger_path) as book:
        run = book.get_run("last")
    assert run.status.value == "interrupted"
    assert "SIGTERM" in run.error
    assert run.samples and run.total_energy_j > 0
    assert run.duration_s > 0


@pytest.mark.slow
def test_sigkill_loses_at_most_the_last_flush_and_the_run_reads_interrupted(ledger_path):
    proc = subprocess.Popen(
        joulemeter("run", "--name", "killed", "--interval", "0.05", "--", sys.executable, "-c", BUSY.format(seconds=60)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        victim, flushed = wait_until(lambda: running_run_with_samples(ledger_path), "flushed samples", timeout_s=30)
        os.killpg(proc.pid, signal.SIGKILL)  # joulemeter and its child, no chance to clean up
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    with open_ledger(ledger_path) as book:  # this open recovers the dead run
        run = book.get_run(victim.id)
    assert run.status.value == "interrupted"
    assert flushed <= {(s.t_s, s.domain) for s in run.samples}  # every flushed sample survived
    last = max(s.t_s for s in run.samples)
    assert run.duration_s == pytest.approx(last, abs=1e-6)
    assert run.total_energy_j > 0
    for name, energy in run.energy.items():
        cumulative = [s.energy_j for s in run.samples if s.domain == name and s.energy_j is not None]
        assert energy.energy_j == pytest.approx(cumulative[-1])


@pytest.mark.slow
def test_run_json_keeps_stdout_for_the_json_and_the_commands_output_on_stderr(ledger_path):
    printing = "print('epoch 1 loss 0.5'); print('{not json')"
    result = subprocess.run(joulemeter("run", "--json", "--device", "cpu", "--", sys.executable, "-c", printing),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["exit_code"] == 0
    assert "epoch 1 loss 0.5" in result.stderr and "{not json" in result.stderr


@pytest.mark.parametrize("make, says", [
    (lambda d: (d / "data.txt").write_text("x") and d / "data.txt", "permission denied"),
    (lambda d: d, "is a directory"),
], ids=["not executable", "directory"])
def test_a_command_that_cannot_run_exits_126_as_a_shell_does_and_leaves_no_run(ledger_path, tmp_path, make, says):
    target = make(tmp_path)
    result = subprocess.run(joulemeter("run", "--", str(target)), capture_output=True, text=True, timeout=60)
    assert result.returncode == 126
    assert says in result.stderr
    assert not ledger_path.exists()


def test_a_command_not_on_the_path_exits_127():
    result = subprocess.run(joulemeter("run", "--", "no-such-command-xyz"), capture_output=True, text=True, timeout=60)
    assert result.returncode == 127 and "command not found" in result.stderr


@pytest.mark.parametrize("command", [[], ["run"], ["runs"], ["import", "codecarbon"], ["delete"], ["show"]], ids=" ".join)
def test_help_gives_flags_no_value_placeholder_and_run_its_command(command):
    result = subprocess.run(joulemeter(*command, "--help"), capture_output=True, text=True, timeout=60,
                            env=os.environ | {"COLUMNS": "200"})
    assert result.returncode == 0
    assert "<bool>" not in result.stdout
    assert "<list[str]>" not in result.stdout  # an argument is named by its metavar, no type label
    if command == ["show"]:
        assert "<str>" not in result.stdout
    if command == ["run"]:
        assert "run [OPTIONS] -- CMD [ARGS]..." in result.stdout
    if command == []:
        assert "<int>" not in result.stdout and "[default: 0]" not in result.stdout  # -v counts: -vv, not -v 2


def test_no_timeline_meters_counter_devices_only_and_says_what_lacks_one(ledger_path):
    refused = subprocess.run(joulemeter("run", "--no-timeline", "-d", "ram", "--", sys.executable, "-c", "pass"),
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "needs a timeline" in refused.stderr
    done = subprocess.run(joulemeter("run", "--no-timeline", "-d", "cpu", "--json", "--", sys.executable, "-c", "pass"),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)
    assert run["metadata"]["timeline"].startswith("off") and run["energy"]["cpu"]["energy_j"] > 0


def test_the_timeline_is_adaptive_by_default_and_its_bounds_can_be_set(ledger_path):
    default = subprocess.run(joulemeter("run", "--json", "--", sys.executable, "-c", "pass"),
                             capture_output=True, text=True, timeout=60)
    assert default.returncode == 0, default.stderr
    assert json.loads(default.stdout)["metadata"]["timeline"].startswith("adaptive: a tick every 1 s")
    chosen = subprocess.run(joulemeter("run", "--json", "--interval", "0.5", "--max-interval", "4", "--",
                                       sys.executable, "-c", "pass"), capture_output=True, text=True, timeout=60)
    assert chosen.returncode == 0, chosen.stderr
    assert "every 0.5 s while power moves, stretching to every 4 s" in json.loads(chosen.stdout)["metadata"]["timeline"]
    refused = subprocess.run(joulemeter("run", "--interval", "2", "--max-interval", "1", "--", sys.executable, "-c", "pass"),
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "must be at least --interval" in refused.stderr
    endless = subprocess.run(joulemeter("run", "--interval", "inf", "--", sys.executable, "-c", "pass"),
                             capture_output=True, text=True, timeout=60)
    assert endless.returncode == 2 and "--interval must be a finite number of seconds" in endless.stderr
    assert "Traceback" not in endless.stderr


def test_the_run_summary_says_each_fallback_reason_once_without_repeating_the_method():
    import dataclasses
    import io

    from rich.console import Console

    from joulemeter.integrations.cli.meter_cmd import _print_run_summary
    from joulemeter.meter.run import Domain, DomainEnergy, Provenance
    from tests.test_ledger import GPU, make_run

    cpu_method, ram_method = "estimate: CCF per-vCPU 0.74–3.5 W × utilisation", "estimate: CCF 0.392 W per GB"
    rapl = "RAPL unavailable: no RAPL powercap interface (common in VMs and containers)"
    cpu = Domain("cpu", "cpu", "2 logical CPUs", Provenance.ESTIMATED, cpu_method)
    ram = Domain("ram", "ram", "system memory", Provenance.ESTIMATED, ram_method)
    run = dataclasses.replace(
        make_run(),
        domains=[GPU, cpu, ram],
        energy={"gpu:0": DomainEnergy("gpu:0", 600.0, Provenance.COUNTER, 200.0, 200.0),
                "cpu": DomainEnergy("cpu", 15.0, Provenance.ESTIMATED, 5.0, 5.0),
                "ram": DomainEnergy("ram", 1.0, Provenance.ESTIMATED, 0.3, 0.3)},
        metadata={"fallbacks": [f"{rapl}; CPU {cpu_method}", f"{rapl}; RAM {ram_method}"]},
    )
    out = io.StringIO()
    _print_run_summary(run, console=Console(file=out, width=200, color_system=None))
    text = out.getvalue()
    assert text.count(cpu_method) == 1 and text.count(ram_method) == 1, text  # in the method lines only
    assert text.count(rapl) == 1 and f"fallback (cpu, ram): {rapl}\n" in text, text
