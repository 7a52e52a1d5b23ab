"""`joulemeter run` on a real terminal: the command's own output all stays on screen (issue 12, item 2).

The CLI runs on a pseudo-terminal; what it and the metered command write is played into
pyte, a terminal emulator. The command waits at fixed points until the test has seen the
status line drawn, so each check follows a draw for certain, with no timing to hope on.
"""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
import time

import pytest

pyte = pytest.importorskip("pyte")

ROWS, COLUMNS = 20, 100
STATUS = "joulemeter ·".encode()

CHILD = """
import pathlib, sys, time
go = pathlib.Path(sys.argv[1])
def wait_for(n):
    while not (go / str(n)).exists():
        time.sleep(0.01)
for i in range(20):
    print(f"epoch {i} loss", flush=True)
print("half way", flush=True)
wait_for(1)
for i in range(20, 40):
    print(f"epoch {i} loss", flush=True)
for step in range(5):  # as tqdm draws a bar: carriage returns on one line
    sys.stdout.write(f"\\rprogress {step}/4"); sys.stdout.flush()
print(flush=True)
print("ready for ctrl-c", flush=True)
try:
    wait_for(2)
except KeyboardInterrupt:
    print("saving checkpoint", flush=True)
    sys.exit(130)
"""


def _own_terminal() -> None:
    """In the CLI's process before exec: a session of its own with the pty as its controlling
    terminal, so a typed Ctrl-C signals its foreground process group as a shell's would."""
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    """The leader side of a pseudo-terminal of ROWS × COLUMNS running the CLI."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.leader, follower = pty.openpty()
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "joulemeter.integrations.cli", *args],
            stdin=follower, stdout=follower, stderr=follower, env=env, close_fds=True,
            preexec_fn=_own_terminal,
        )
        os.close(follower)
        self.output = b""

    def read_until(self, after: bytes, wanted: bytes, timeout_s: float = 60.0) -> None:
        """Read until `wanted` appears in what came after the first `after`."""
        deadline = time.monotonic() + timeout_s
        while True:
            start = self.output.find(after)
            if start >= 0 and self.output.find(wanted, start + len(after)) >= 0:
                return
            assert time.monotonic() < deadline, f"no {wanted!r} after {after!r} in {self.output[-2000:]!r}"
            self._read()

    def read_to_end(self) -> int:
        while self._read():
            pass
        os.close(self.leader)
        return self.process.wait(timeout=60)

    def _read(self) -> bool:
        try:
            chunk = os.read(self.leader, 65536)
        except OSError:  # EIO: every process closed the terminal
            return False
        self.output += chunk
        return bool(chunk)

    def screen_lines(self) -> tuple[list[str], pyte.Screen]:
        """Every line the terminal shows or has scrolled off, after all that was written."""
        screen = pyte.HistoryScreen(COLUMNS, ROWS, history=1000)
        pyte.Stream(screen).feed(self.output.decode("utf-8", errors="replace"))
        scrolled = ["".join(row[x].data for x in range(COLUMNS)).rstrip() for row in screen.history.top]
        return scrolled + [line.rstrip() for line in screen.display], screen


@pytest.mark.slow
def test_every_line_the_command_prints_survives_the_status_line_and_ctrl_c(tmp_path):
    go = tmp_path / "go"
    go.mkdir()
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = os.environ | {"TERM": "xterm-256color", "JOULEMETER_LEDGER": str(tmp_path / "ledger.sqlite")}
    env.pop("COLUMNS", None)
    env.pop("LINES", None)
    terminal = Terminal(["run", "--name", "train", "--device", "cpu", "--", sys.executable, str(script), str(go)], env)

    terminal.read_until(b"half way", STATUS)  # the status was drawn over 21 lines of output
    (go / "1").touch()
    terminal.read_until(b"ready for ctrl-c", STATUS)
    os.write(terminal.leader, b"\x03")  # Ctrl-C, typed: the terminal signals its foreground group
    code = terminal.read_to_end()

    lines, screen = terminal.screen_lines()
    for i in range(40):
        assert lines.count(f"epoch {i} loss") == 1, f"epoch {i} lost or repeated:\n" + "\n".join(lines)
    assert "progress 4/4" in lines, "a carriage-return progress bar did not end on its own line"
    # the terminal echoes the typed Ctrl-C as ^C before the message
    assert any(line.endswith("saving checkpoint") for line in lines), "the command's Ctrl-C message was wiped"
    assert code == 130
    assert not any(line.startswith("joulemeter ·") for line in lines), "the status line was left on screen"
    assert screen.margins is None or (screen.margins.top, screen.margins.bottom) == (0, ROWS - 1), \
        "the scrolling region was not given back"
    assert any("train" in line and "interrupted" in line for line in lines), "no run summary after the command"


def drained(leader: int, follower: int) -> bytes:
    """All that was written to the follower side, once it is closed."""
    os.close(follower)
    os.set_blocking(leader, False)
    data = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EAGAIN: nothing more; EIO: the follower is closed and read out
            break
        if not chunk:
            break
        data += chunk
    os.close(leader)
    return data


def test_no_status_line_on_a_terminal_too_small_for_one(tmp_path, monkeypatch):
    from joulemeter.integrations.cli.status_line import StatusLine

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 3, 40, 0, 0))
    monkeypatch.setenv("TERM", "xterm-256color")
    line = StatusLine(follower)
    line.show("joulemeter · 1 s")
    line.close()
    assert not line.active and drained(leader, follower) == b""


def test_a_resized_terminal_gets_its_scrolling_region_set_for_the_new_height(tmp_path, monkeypatch):
    from joulemeter.integrations.cli.status_line import StatusLine

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 20, 60, 0, 0))
    monkeypatch.setenv("TERM", "xterm-256color")
    line = StatusLine(follower)
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 60, 0, 0))
    line.show("joulemeter · 2 s")
    line.close()
    data = drained(leader, follower)
    screen = pyte.Screen(60, 30)
    stream = pyte.Stream(screen)
    first = data.index(b"\x1b[1;29r")  # the region for 30 rows, set at the draw after the resize
    stream.feed(data[:first].decode())
    assert b"\x1b[1;19r" in data[:first]  # the region for the first 20 rows
    stream.feed(data[first:].decode())
    assert screen.margins is None or (screen.margins.top, screen.margins.bottom) == (0, 29)
