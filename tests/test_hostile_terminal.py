"""User text holding terminal escapes (OSC titles, CSI clears, OSC-8 links, C1 controls,
bidi overrides) through every command that prints it: nothing in it reaches the terminal
as a control character; it is shown as an escape (\\x1b) instead.

Commands run through typer's CliRunner (every byte of output checked), and the main ones
in a real pseudo-terminal whose output is played into pyte, a terminal emulator, which
shows whether the window title was set or the screen cleared.
"""

from __future__ import annotations

import json
import logging
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from joulemeter.integrations.cli import app
from joulemeter.integrations.cli._common import SafeFormatter
from joulemeter.meter.energy import summarise
from joulemeter.meter.run import Domain, Gap, Provenance, Run, Sample, Status, Window
from joulemeter.meter.store import open_ledger
from joulemeter.reports.render.terminal import visible
from tests.polling import wait_until

TITLE = "\x1b]0;pwned\x07"
PAYLOADS = [
    TITLE,  # OSC 0: set the window title
    "\x1b[2J\x1b[H",  # CSI: clear the screen, cursor home
    "\x1b]8;;http://evil.test/\x1b\\click me\x1b]8;;\x1b\\",  # OSC 8: a hyperlink
    "\x9b2J",  # C1 CSI
    "\x9d0;pwned\x9c",  # C1 OSC ... ST
    "a\rb\x08c\x07",  # carriage return, backspace, bell
    "\u202eevil\u202c",  # bidi override
]
HOSTILE = "run " + " ".join(PAYLOADS)
#: what no output may hold: every control character but line feed and tab
FORBIDDEN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")

runner = CliRunner()


def hostile_run(run_id: str, started_at: str) -> Run:
    """A completed run whose every free-text field carries the payloads."""
    domains = [Domain("gpu:0", "gpu", HOSTILE, Provenance.COUNTER, HOSTILE, note=HOSTILE)]
    samples = [Sample(float(t), "gpu:0", 100.0, 100.0 * t) for t in range(11)]
    run = Run(
        id=run_id,
        name=HOSTILE,
        project=HOSTILE,
        tags=PAYLOADS,
        status=Status.FAILED,
        started_at=started_at,
        ended_at=started_at.replace("00:00:00", "00:00:10"),
        duration_s=10.0,
        domains=domains,
        windows=[Window(HOSTILE, HOSTILE, 0.0, 5.0, {"gpu:0": 500.0}, {HOSTILE: 3.0})],
        units={HOSTILE: 3.0},
        samples=samples,
        gaps=[Gap("gpu:0", 6.0, 7.0, HOSTILE)],
        metadata={HOSTILE: HOSTILE, "variant": HOSTILE},
        error=HOSTILE,
    )
    run.energy = summarise(domains, samples, run.duration_s)
    return run


@pytest.fixture
def hostile_ledger(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "ledger.sqlite"
    with open_ledger(path) as ledger:
        ledger.save_run(hostile_run("a" * 32, "2026-01-01T00:00:00.000+00:00"))
        ledger.save_run(hostile_run("b" * 32, "2026-01-02T00:00:00.000+00:00"))
    monkeypatch.setenv("JOULEMETER_LEDGER", str(path))
    monkeypatch.setenv("COLUMNS", "200")
    return path


COMMANDS = {
    "runs": ["runs"],
    "runs --json": ["runs", "--json"],
    "show": ["show", "last"],
    "show --json": ["show", "last", "--json"],
    "compare": ["compare", "aaaa", "bbbb", "--intensity", "400"],
    "compare --json": ["compare", "aaaa", "bbbb", "--intensity", "400", "--json"],
    **{f"report -f {f}": ["report", "aaaa", "bbbb", "-f", f, "--intensity", "400", "--title", HOSTILE]
       for f in ("md", "latex", "csv", "json")},
    "export json": ["export", "last", "-f", "json"],
    "export csv windows": ["export", "last", "-f", "csv", "--table", "windows"],
    "export csv domains": ["export", "last", "-f", "csv", "--table", "domains"],
    "export codecarbon": ["export", "last", "-f", "codecarbon"],
    "an error naming the run asked for": ["show", HOSTILE],
}


@pytest.mark.parametrize("args", COMMANDS.values(), ids=COMMANDS.keys())
def test_no_control_character_of_user_text_reaches_the_output(hostile_ledger, args):
    result = runner.invoke(app, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    for stream in (result.stdout, result.stderr):
        bad = FORBIDDEN.search(stream)
        assert bad is None, f"{bad[0]!r} at {bad.start()}: {stream[max(bad.start() - 40, 0):bad.start() + 40]!r}"
    if "json" not in " ".join(args) and args[0] != "export":
        assert "x1b" in result.stdout + result.stderr  # shown as an escape, not dropped


@pytest.mark.parametrize("args", [a for a in COMMANDS.values() if "json" in a], ids=str)
def test_json_output_with_hostile_text_is_valid_and_keeps_the_text_exactly(hostile_ledger, args):
    result = runner.invoke(app, args)
    data = json.loads(result.stdout, parse_constant=lambda name: pytest.fail(f"{name} is not JSON"))
    assert HOSTILE in strings(data)  # escaped in the text, exact once parsed


def strings(value: object) -> set[str]:
    """Every string in a parsed JSON value, keys included."""
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        return set(value) | {s for v in value.values() for s in strings(v)}
    if isinstance(value, list):
        return {s for v in value for s in strings(v)}
    return set()


def test_the_run_command_summary_shows_a_hostile_name_as_escapes(tmp_path, monkeypatch):
    monkeypatch.setenv("JOULEMETER_LEDGER", str(tmp_path / "ledger.sqlite"))
    result = runner.invoke(app, ["run", "--name", HOSTILE, "--device", "cpu", "--", sys.executable, "-c", "pass"])
    assert result.exit_code == 0, result.output
    assert FORBIDDEN.search(result.stdout + result.stderr) is None
    assert "\\x1b]0;pwned" in result.stderr


def test_log_lines_show_control_characters_as_escapes():
    record = logging.LogRecord("joulemeter", logging.WARNING, __file__, 1, "run %s spooled", (HOSTILE,), None)
    assert FORBIDDEN.search(SafeFormatter().format(record)) is None


def test_visible_escapes_every_control_character_and_leaves_other_text_alone():
    assert visible("Ünïcödé 名前 ✓ plain") == "Ünïcödé 名前 ✓ plain"
    assert visible("\x1b]0;t\x07\x9b\u202e") == "\\x1b]0;t\\x07\\x9b\\u202e"
    assert visible("a\nb\tc", keep="\n") == "a\nb\\x09c"


# -- in a real terminal ---------------------------------------------------------------
def in_pseudo_terminal(args: list[str], env: dict[str, str]) -> str:
    """Run the CLI with stdin, stdout and stderr on a pseudo-terminal; all it wrote, decoded."""
    leader, follower = pty.openpty()
    child = subprocess.Popen([sys.executable, "-m", "joulemeter.integrations.cli", *args],
                             stdin=follower, stdout=follower, stderr=follower, env=env, close_fds=True)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert child.wait(timeout=120) in (0, 2)
    return b"".join(chunks).decode("utf-8", errors="replace")


@pytest.mark.parametrize("args", [["runs"], ["show", "last"], ["compare", "aaaa", "bbbb", "--intensity", "400"],
                                  ["report", "last", "-f", "md", "--intensity", "400"]], ids=" ".join)
def test_in_a_terminal_no_title_is_set_and_the_screen_is_not_cleared(hostile_ledger, args):
    pyte = pytest.importorskip("pyte")
    env = os.environ | {"COLUMNS": "200", "LINES": "500", "TERM": "xterm-256color"}
    output = in_pseudo_terminal(args, env)
    screen = pyte.Screen(200, 500)
    stream = pyte.Stream(screen)
    stream.feed("first line\r\n")
    stream.feed(output)
    assert screen.title == "", "the run name set the window title"
    assert screen.display[0].startswith("first line"), "the run name cleared the screen"
    assert re.search(r"x1b\\?\]0;pwned", "\n".join(screen.display))  # Markdown escapes the ]
    assert not re.search("\x1b\\](?!\\d*;?\\x07)", output.replace("\x1b]8;;\x1b\\", "")), "an OSC reached the terminal"


def test_the_live_view_of_run_in_a_terminal_survives_a_hostile_name(tmp_path):
    pyte = pytest.importorskip("pyte")
    marker = tmp_path / "started"
    env = os.environ | {"COLUMNS": "120", "LINES": "200", "TERM": "xterm-256color",
                        "JOULEMETER_LEDGER": str(tmp_path / "ledger.sqlite")}
    wait_for_live = (f"import pathlib, time; pathlib.Path({str(marker)!r}).touch(); "
                     "end = time.monotonic() + 1.0\nwhile time.monotonic() < end: time.sleep(0.05)")
    output = in_pseudo_terminal(["run", "--name", HOSTILE, "--device", "cpu", "--", sys.executable, "-c",
                                 wait_for_live], env)
    wait_until(marker.exists, "the metered command to start")
    screen = pyte.Screen(120, 200)
    pyte.Stream(screen).feed(output)
    assert screen.title == ""
    assert "\\x1b]0;pwned" in "\n".join(screen.display)
