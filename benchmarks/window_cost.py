"""Cost of entering and leaving `with m.window("w"):` (no sync), in microseconds per window."""

from __future__ import annotations

import time
from typing import Any

from benchmarks._stats import spread


def run(*, repeats: int, windows: int) -> dict[str, Any]:
    """`repeats` timed loops of `windows` empty windows inside one running meter."""
    from joulemeter.meter import EnergyMeter

    per_window_us = []
    with EnergyMeter("window-cost", store=False) as meter:
        for _ in range(repeats):
            t0 = time.perf_counter_ns()
            for _ in range(windows):
                with meter.window("w"):
                    pass
            per_window_us.append((time.perf_counter_ns() - t0) / windows / 1000)
    return {
        "windows_per_repeat": windows,
        "domains": [d.name for d in meter.domains],
        "per_window_us": spread(per_window_us).to_dict(),
    }
