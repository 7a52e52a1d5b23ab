"""Cost of entering and leaving a window, in microseconds per window, for each tool.

joulemeter: `with m.window("w"): pass` (no sync) in a running meter, its windows' energies
checked filled in at the end; Zeus:
`begin_window`/`end_window` (CPU and GPU counters read at both edges); CodeCarbon:
`start_task`/`stop_task`. Each tool runs in a fresh subprocess of the peers' Python
(benchmarks/.venv-peers, else this one), so none inherits another's threads.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks._stats import spread
from benchmarks.overhead import worker_python

REPO = Path(__file__).resolve().parent.parent
TOOLS = ("joulemeter", "zeus", "codecarbon")
#: CodeCarbon measures every source at each task edge (milliseconds), so it gets fewer.
WINDOWS_FOR = {"codecarbon": 20}


def _joulemeter(windows: int, repeats: int) -> tuple[tuple[list[float], list[float]], str]:
    from joulemeter.meter import EnergyMeter

    with EnergyMeter("window-cost", store=False, sync_devices=False) as meter:
        def one() -> None:
            with meter.window("w"):
                pass
        times = _time(one, windows, repeats)
    assert all(w.energy_j for w in meter.run.windows), "a window left without its energy"
    return times, ", ".join(d.name for d in meter.domains)


def _zeus(windows: int, repeats: int) -> tuple[tuple[list[float], list[float]], str]:
    from zeus.monitor import ZeusMonitor

    monitor = ZeusMonitor()

    def one() -> None:
        monitor.begin_window("w", sync_execution=False)
        monitor.end_window("w", sync_execution=False)

    return _time(one, windows, repeats), f"{len(monitor.gpu_indices)} GPUs"


def _codecarbon(windows: int, repeats: int) -> tuple[tuple[list[float], list[float]], str]:
    from codecarbon import OfflineEmissionsTracker

    tracker = OfflineEmissionsTracker(country_iso_code="USA", save_to_file=False, log_level="error")
    tracker.start()

    def one() -> None:
        tracker.start_task("w")
        tracker.stop_task()

    try:
        return _time(one, windows, repeats), "CPU, RAM (its own detection)"
    finally:
        tracker.stop()


def _time(one: Callable[[], None], windows: int, repeats: int) -> tuple[list[float], list[float]]:
    """Wall µs per window in the caller, and CPU µs per window of the whole process (every
    thread: what a tool's thread does later for the window, e.g. joulemeter filling in its
    energy, falls in a later repeat), per repeat."""
    one()
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter_ns(), time.process_time_ns()
        for _ in range(windows):
            one()
        wall.append((time.perf_counter_ns() - t0) / windows / 1000)
        cpu.append((time.process_time_ns() - c0) / windows / 1000)
    return wall, cpu


def run(*, repeats: int, windows: int) -> dict[str, Any]:
    """Per-window cost of every tool that runs here, each in its own subprocess."""
    out: dict[str, Any] = {}
    for tool in TOOLS:
        n = min(windows, WINDOWS_FOR.get(tool, windows))
        done = subprocess.run([worker_python(), "-m", "benchmarks.window_cost", tool, str(n), str(repeats)],
                              cwd=REPO, capture_output=True, text=True, check=False)
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode or not lines:
            out[tool] = {"error": (done.stderr.strip().splitlines() or ["no output"])[-1]}
            continue
        out[tool] = json.loads(lines[-1])
    return out


def main(tool: str, windows: int, repeats: int) -> None:
    measure = {"joulemeter": _joulemeter, "zeus": _zeus, "codecarbon": _codecarbon}[tool]
    (wall, cpu), metered = measure(windows, repeats)
    print(json.dumps({"windows_per_repeat": windows, "metered": metered,
                      "per_window_us": spread(wall).to_dict(), "cpu_per_window_us": spread(cpu).to_dict()}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
