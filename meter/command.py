"""Meter a whole command: start the meter, run the child, forward signals, close the run.

The run's status follows the child: exit 0 is `completed`, a non-zero exit `failed`,
a child ended by a signal (or a SIGINT/SIGTERM we forwarded) `interrupted`. The command
is kept in the run's metadata with its secrets redacted (`redacted`).
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from joulemeter.meter.meter import EnergyMeter
from joulemeter.meter.run import Run, Status

log = logging.getLogger("joulemeter.command")

_FORWARDED = (signal.SIGINT, signal.SIGTERM)

#: What stands for a secret in a stored command.
REDACTED = "***"
#: A word of a flag or variable name that says its value is a secret: --hf-token, --api-key,
#: --password, --client-secret, --use-auth-token, HF_TOKEN=, AWS_SECRET_ACCESS_KEY=, DB_PASS=.
_SECRET_WORDS = frozenset(
    {"token", "secret", "password", "passwd", "pass", "pwd", "apikey", "credential", "credentials", "auth"}
)
_FLAG = re.compile(r"(-{1,2})([A-Za-z][\w-]*)(?:=(.*))?", re.DOTALL)
_ASSIGNMENT = re.compile(r"([A-Za-z_]\w*)=(.*)", re.DOTALL)
_URL_PASSWORD = re.compile(r"(\w[\w+.-]*://[^/\s:@]*:)[^/\s@]+@")  # scheme://user:password@host
#: Words that make a name say where a secret is kept, not the secret: TOKEN_FILE=~/.token.
_NOT_SECRET_LAST_WORDS = frozenset({"file", "path", "dir"})
#: A stored command keeps its arguments up to this many characters (each cut at
#: _ARGUMENT_MAX_CHARS), so that it stays far within the metadata bound
#: (joulemeter.meter.limits) however long the command line is (Linux allows 2 MB).
_COMMAND_MAX_CHARS = 4096
_ARGUMENT_MAX_CHARS = 512


@dataclass
class CommandResult:
    """The metered run and the child's exit code (128 + N when ended by signal N)."""

    run: Run
    returncode: int


def run_command(
    argv: Sequence[str],
    meter: EnergyMeter,
    *,
    on_tick: Callable[[EnergyMeter], None] | None = None,
    tick_s: float = 0.25,
    stdout: int | None = None,
) -> CommandResult:
    """Run `argv` under `meter`; `on_tick` is called every `tick_s` while the child runs.

    `stdout`: a file descriptor for the child's standard output (None: ours)."""
    if not argv:
        raise ValueError("no command given to meter")
    meter.metadata.setdefault("command", stored_command(argv))
    orphans = _Orphans() if meter.pid == os.getpid() else None  # the tree metered is ours
    meter.start()
    received: list[int] = []
    try:
        child = subprocess.Popen(list(argv), stdout=stdout)
    except OSError as exc:
        meter.stop(Status.FAILED, f"could not start {argv[0]!r}: {exc}")
        if orphans:
            orphans.close(None)
        raise
    previous = {sig: signal.signal(sig, _forwarder(child, received)) for sig in _FORWARDED}
    try:
        returncode = _wait(child, meter, on_tick, tick_s, orphans)
    except BaseException as exc:  # our own failure: stop the child, keep what was measured
        child.terminate()
        child.wait()
        meter.stop(Status.INTERRUPTED, f"joulemeter stopped: {type(exc).__name__}: {exc}")
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if orphans:
            orphans.close(child.pid)
    if returncode < 0:  # Popen reports death by signal N as -N
        returncode = 128 - returncode
    if received or returncode > 128:
        names = ", ".join(signal.Signals(s).name for s in received) or "a signal"
        status, error = Status.INTERRUPTED, f"command ended by {names} (exit {returncode})"
    elif returncode != 0:
        status, error = Status.FAILED, f"command exited with code {returncode}"
    else:
        status, error = Status.COMPLETED, None
    return CommandResult(meter.stop(status, error), returncode)


def redacted(argv: Sequence[str]) -> list[str]:
    """`argv` with the values of secret flags (`--hf-token=…`, `--password …`), secret
    variables (`HF_TOKEN=…`) and passwords in URLs (`postgresql://user:…@host`) as ***."""
    out: list[str] = []
    secret_next = False
    for arg in argv:
        if secret_next and not arg.startswith("-"):
            out.append(REDACTED)
            secret_next = False
            continue
        secret_next = False
        flag, assignment = _FLAG.fullmatch(arg), _ASSIGNMENT.fullmatch(arg)
        if flag and _names_secret(flag[2]):
            if flag[3] is None:
                secret_next = True  # `--token VALUE`: the next argument is the secret
                out.append(arg)
            else:
                out.append(f"{flag[1]}{flag[2]}={REDACTED}")
        elif assignment and _names_secret(assignment[1]):
            out.append(f"{assignment[1]}={REDACTED}")
        else:
            out.append(_URL_PASSWORD.sub(rf"\1{REDACTED}@", arg))
    return out


def stored_command(argv: Sequence[str]) -> list[str]:
    """The command as kept in a run's metadata: redacted, and cut after _COMMAND_MAX_CHARS."""
    kept: list[str] = []
    size = 0
    for arg in redacted(argv):
        if len(arg) > _ARGUMENT_MAX_CHARS:
            arg = arg[: _ARGUMENT_MAX_CHARS - 1] + "…"
        size += len(arg) + 1
        if size > _COMMAND_MAX_CHARS:
            kept.append(f"… ({len(argv) - len(kept)} more argument(s) not kept)")
            break
        kept.append(arg)
    return kept


def _names_secret(name: str) -> bool:
    """Whether a flag or variable name says it holds a secret: a secret word, or ending in key."""
    words = [w for w in re.split(r"[-_]", name.lower()) if w]
    if not words or words[-1] in _NOT_SECRET_LAST_WORDS:
        return False
    return words[-1] == "key" or any(w in _SECRET_WORDS for w in words)


class _Orphans:
    """Keeps a metered command's double-forked descendants in our process tree (Linux).

    A process whose parent exits is re-parented to the nearest "child subreaper" ancestor,
    else to init, and would leave the tree a `pid=` meter reads. As a subreaper
    (prctl PR_SET_CHILD_SUBREAPER, man 2 prctl, Linux ≥ 3.4) we receive them instead; each
    that ends is reaped, so its CPU time moves into our children's times, still counted.
    Only zombies that were not our children before the command started, and are not the
    command itself, are reaped: a caller's own subprocesses keep their exit status.
    """

    _PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>

    def __init__(self) -> None:
        import psutil

        self._me = psutil.Process()
        self._before = {p.pid for p in self._me.children()}
        self.adopting = sys.platform.startswith("linux") and self._subreaper(True)

    def _subreaper(self, on: bool) -> bool:
        import ctypes

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            return libc.prctl(self._PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) == 0
        except (OSError, AttributeError):
            log.info("cannot become a child subreaper: double-forked processes leave the metered tree")
            return False

    def reap(self, command_pid: int | None) -> None:
        """Reap the adopted descendants that have ended."""
        import psutil

        if not self.adopting:
            return
        for proc in self._me.children():
            if proc.pid == command_pid or proc.pid in self._before:
                continue
            try:
                if proc.status() == psutil.STATUS_ZOMBIE:
                    os.waitpid(proc.pid, os.WNOHANG)
            except (psutil.NoSuchProcess, ChildProcessError):
                continue

    def close(self, command_pid: int | None) -> None:
        """Reap what has ended and stop adopting; descendants still running go on, unmetered."""
        self.reap(command_pid)
        if self.adopting:
            self._subreaper(False)
            self.adopting = False


def _wait(
    child: subprocess.Popen[Any],
    meter: EnergyMeter,
    on_tick: Callable[[EnergyMeter], None] | None,
    tick_s: float,
    orphans: _Orphans | None = None,
) -> int:
    while True:
        try:
            return child.wait(timeout=tick_s)
        except subprocess.TimeoutExpired:
            if orphans:
                orphans.reap(child.pid)
            if on_tick is not None:
                on_tick(meter)


def _forwarder(child: subprocess.Popen[Any], received: list[int]) -> Callable[[int, Any], None]:
    """A handler that passes SIGINT/SIGTERM on to the child once.

    A Ctrl-C typed at a terminal already reaches the child (same foreground process
    group), so SIGINT is forwarded only when we are not that foreground group.
    """

    def forward(signum: int, frame: Any) -> None:
        received.append(signum)
        if signum == signal.SIGINT and _child_got_it_from_terminal():
            return
        try:
            child.send_signal(signum)
        except ProcessLookupError:
            pass
        log.info("forwarded %s to pid %d", signal.Signals(signum).name, child.pid)

    return forward


def _child_got_it_from_terminal() -> bool:
    try:
        return os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
    except (OSError, ValueError):
        return False
