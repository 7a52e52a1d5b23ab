"""Meter a whole command: start the meter, run the child, forward signals, close the run.

The run's status follows the child: exit 0 is `completed`, a non-zero exit `failed`,
a child ended by a signal (or a SIGINT/SIGTERM we forwarded) `interrupted`.
"""

from __future__ import annotations

import logging
import os
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
) -> CommandResult:
    """Run `argv` under `meter`; `on_tick` is called every `tick_s` while the child runs."""
    if not argv:
        raise ValueError("no command given to meter")
    meter.metadata.setdefault("command", list(argv))
    meter.start()
    received: list[int] = []
    try:
        child = subprocess.Popen(list(argv))
    except OSError as exc:
        meter.stop(Status.FAILED, f"could not start {argv[0]!r}: {exc}")
        raise
    previous = {sig: signal.signal(sig, _forwarder(child, received)) for sig in _FORWARDED}
    try:
        returncode = _wait(child, meter, on_tick, tick_s)
    except BaseException as exc:  # our own failure: stop the child, keep what was measured
        child.terminate()
        child.wait()
        meter.stop(Status.INTERRUPTED, f"joulemeter stopped: {type(exc).__name__}: {exc}")
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
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


def _wait(
    child: subprocess.Popen[Any],
    meter: EnergyMeter,
    on_tick: Callable[[EnergyMeter], None] | None,
    tick_s: float,
) -> int:
    while True:
        try:
            return child.wait(timeout=tick_s)
        except subprocess.TimeoutExpired:
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
