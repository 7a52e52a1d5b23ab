"""`joulemeter runs` reads in an 80-column terminal (issue 12, item 7): one line per run, long
names cut with an ellipsis (whole in `show`), every figure whole."""

from __future__ import annotations

import os
import subprocess
import sys

from joulemeter.meter import EnergyMeter
from tests.doubles import LinearCounterSource

LONG_NAME = "sweep-" + "x" * 250  # near the 256-character limit on names (meter.limits)


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "joulemeter.integrations.cli", *args],
                          capture_output=True, text=True, timeout=60, env=env)


def test_runs_fit_80_columns_one_line_each_with_the_long_name_cut(tmp_path):
    ledger = tmp_path / "ledger.sqlite"
    for name, project in ((LONG_NAME, "default"), ("bert-base", "a-project-with-a-long-name")):
        with EnergyMeter(name, project=project, sources=[LinearCounterSource(30.0)], interval_s=0.01, ledger=ledger):
            pass
    env = os.environ | {"COLUMNS": "80", "JOULEMETER_LEDGER": str(ledger)}
    listing = cli("runs", env=env)
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.rstrip("\n").splitlines()
    assert max(len(line) for line in lines) <= 80, listing.stdout
    assert len(lines) == 4  # title, header, one line per run
    header = lines[1].split()
    assert header == ["id", "name", "project", "status", "started", "UTC", "duration", "energy", "measured"]
    newest, oldest = lines[2], lines[3]
    assert "bert-base" in newest and "a-proj" in newest
    assert "sweep-x…xx" in oldest  # cut in the middle: its start and its end kept
    for line in (newest, oldest):  # whole words, not "comple/ted"; a counter source: "counter"
        assert " completed " in line and line.rstrip().endswith("counter")
    shown = cli("show", "last", "--json", env=env)
    assert '"bert-base"' in shown.stdout  # the newest, in full


def test_compare_refuses_a_run_beside_itself(tmp_path):
    ledger = tmp_path / "ledger.sqlite"
    with EnergyMeter("only", sources=[LinearCounterSource(30.0)], interval_s=0.01, ledger=ledger) as m:
        pass
    env = os.environ | {"JOULEMETER_LEDGER": str(ledger)}
    result = cli("compare", "last", m.run.id[:8], "--intensity", "400", env=env)
    assert result.returncode == 2
    assert "same run" in result.stderr and m.run.id[:8] in result.stderr


def test_runs_says_how_many_it_shows_of_how_many_there_are(tmp_path):
    ledger = tmp_path / "ledger.sqlite"
    for i in range(3):
        with EnergyMeter(f"run-{i}", sources=[LinearCounterSource(30.0)], interval_s=0.01, ledger=ledger):
            pass
    env = os.environ | {"COLUMNS": "80", "JOULEMETER_LEDGER": str(ledger)}
    assert cli("runs", "--limit", "2", env=env).stdout.startswith("showing 2 of 3 runs")
    assert cli("runs", env=env).stdout.startswith("3 run(s)")


def test_show_and_devices_fit_80_columns_with_whole_headers(tmp_path):
    ledger = tmp_path / "ledger.sqlite"
    with EnergyMeter("bert", sources=[LinearCounterSource(30.0)], interval_s=0.01, ledger=ledger):
        pass
    env = os.environ | {"COLUMNS": "80", "JOULEMETER_LEDGER": str(ledger)}
    for args in (("show", "last"), ("devices",)):
        out = cli(*args, env=env)
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert max(len(line) for line in lines) <= 80, out.stdout
        assert any(line.split().count("measured") == 1 for line in lines)  # headers whole, on one line
        assert "provenanc" not in out.stdout and "utilisati\n" not in out.stdout


def test_show_claims_no_peak_below_the_average_power(tmp_path):
    from dataclasses import replace

    from joulemeter.meter.store import open_ledger
    from tests.test_ledger import make_run

    run = make_run("short")
    # the ticks saw 20 W while the counters at the edges give 250 W on average: they missed the peak
    run = replace(run, samples=[replace(s, power_w=10.0) for s in run.samples])
    with open_ledger(tmp_path / "ledger.sqlite") as book:
        book.save_run(run)
    env = os.environ | {"COLUMNS": "100", "JOULEMETER_LEDGER": str(tmp_path / "ledger.sqlite")}
    out = cli("show", "short", env=env)
    assert out.returncode == 0, out.stderr
    assert "avg 250 W · peak not caught" in out.stdout
    assert "20.0 W" not in out.stdout and "too short for its timeline" in out.stdout
