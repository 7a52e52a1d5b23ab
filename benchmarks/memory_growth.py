"""Resident memory of a long run, measured on a shortened one and extrapolated.

A 24-hour run at the default 1 s timeline with 8 GPUs, CPU and RAM is 86,400 ticks of 10
samples. The shortened run is that run with its clock sped up: 8 simulated GPU counters plus
this machine's CPU and RAM sources ticking every `interval_s` (a few ms), with a flush to the
journal every tick as the default run flushes every second (and so a ledger write every 30
ticks), into a SQLite ledger as the meter writes. Resident memory (RSS) is read every
`every` ticks; its growth per tick once the bounded timeline has filled twice (2 × its 4,096
ticks: after that it only thins and refills) is extrapolated to 86,400 ticks. The samples
still held in memory are counted too: flat means bounded.
"""

from __future__ import annotations

import gc
import os
import sys
import time
from pathlib import Path
from typing import Any

from joulemeter.meter.run import Domain, Provenance
from joulemeter.meter.sources.base import Reading, Source
from joulemeter.meter.timeline import DEFAULT_MAX_TICKS

TICKS_PER_DAY = 86_400  # the default 1 s timeline


class SimulatedGpus(Source):
    """`gpus` counter domains at fixed powers: what NVML gives, without a GPU."""

    name = "simulated-gpus"

    def __init__(self, gpus: int) -> None:
        self.domains = [Domain(f"gpu:{i}", "gpu", "simulated GPU", Provenance.COUNTER, "benchmark: simulated counter")
                        for i in range(gpus)]

    def open(self) -> list[Domain]:
        return self.domains

    def read(self) -> list[Reading]:
        now = time.monotonic()
        return [Reading(d.name, power_w=300.0, energy_j=300.0 * now) for d in self.domains]

    def read_counters(self) -> list[Reading]:
        now = time.monotonic()
        return [Reading(d.name, energy_j=300.0 * now) for d in self.domains]


def _rss_mib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _sqlite_mib() -> float | None:
    """Memory SQLite's allocator holds in this process (page caches, statements), if the
    library Python uses can be asked (sqlite3_memory_used)."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("sqlite3")
    if name is None:
        return None
    try:
        used = ctypes.CDLL(name).sqlite3_memory_used
    except (OSError, AttributeError):
        return None
    used.restype = ctypes.c_int64
    return used() / 2**20


def run(*, ticks: int, interval_s: float, gpus: int, workdir: Path, every: int = 500) -> dict[str, Any]:
    """Meter `ticks` ticks of `gpus` simulated GPUs (plus this machine's CPU and RAM sources)."""
    from joulemeter.meter import EnergyMeter
    from joulemeter.meter.sources import discover

    host = discover(["cpu", "ram"])
    gc.collect()
    rss_before = _rss_mib()
    meter = EnergyMeter("memory-growth", ledger=workdir / "memory.sqlite", interval_s=interval_s,
                        flush_interval_s=interval_s, sources=[SimulatedGpus(gpus), *host.sources],
                        sync_devices=False)
    meter.start()
    sampler = meter._sampler
    assert sampler is not None
    points: list[dict[str, float]] = []
    started = time.perf_counter()
    taken = 0
    while taken < ticks * len(meter.domains):
        time.sleep(every * interval_s)  # the run goes on: memory is read between its ticks
        held, taken = sampler.unwritten(0)
        points.append({"ticks": taken / len(meter.domains), "rss_mib": _rss_mib(), "sqlite_mib": _sqlite_mib(),
                       "python_blocks": sys.getallocatedblocks(),
                       "held_samples": len(held), "timeline_samples": len(sampler.timeline)})
    wall_s = time.perf_counter() - started
    run_ = meter.stop()
    steady = [p for p in points if p["ticks"] >= 2 * DEFAULT_MAX_TICKS] or points[len(points) // 2:]
    slope = _slope([p["ticks"] for p in steady], [p["rss_mib"] for p in steady])
    blocks_slope = _slope([p["ticks"] for p in steady], [p["python_blocks"] for p in steady])
    last = points[-1]
    return {
        "gpus": gpus,
        "domains": [d.name for d in run_.domains],
        "interval_s": interval_s,
        "ticks": last["ticks"],
        "wall_s": wall_s,
        "rss_before_mib": rss_before,
        "rss_end_mib": last["rss_mib"],
        "fit_from_ticks": steady[0]["ticks"],
        "rss_growth_mib_per_1000_ticks": slope * 1000,
        "rss_24h_extrapolated_mib": last["rss_mib"] + slope * max(TICKS_PER_DAY - last["ticks"], 0),
        "python_blocks_per_1000_ticks": blocks_slope * 1000,
        "sqlite_mib_steady": [min(p["sqlite_mib"] or 0.0 for p in steady), max(p["sqlite_mib"] or 0.0 for p in steady)],
        "held_samples_max_steady": max(p["held_samples"] for p in steady),
        "timeline_samples_end": last["timeline_samples"],
        "points": points,
    }


def _slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs (0 for fewer than two points)."""
    n = len(xs)
    if n < 2:
        return 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var if var else 0.0


def in_subprocess(ticks: int, interval_s: float = 0.002, gpus: int = 8) -> dict[str, Any]:
    """`run` in a fresh Python, so its memory is the meter's and not a previous benchmark's."""
    import json
    import subprocess

    repo = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-m", "benchmarks.memory_growth", str(ticks), str(interval_s), str(gpus)],
                          cwd=repo, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


if __name__ == "__main__":
    import json
    import tempfile

    args = sys.argv[1:]
    with tempfile.TemporaryDirectory(prefix="jm-memory-") as tmp:
        os.environ["JOULEMETER_SPOOL"] = str(Path(tmp) / "spool")  # the journal too stays in here
        result = run(ticks=int(args[0]) if args else 20_000, interval_s=float(args[1]) if len(args) > 1 else 0.002,
                     gpus=int(args[2]) if len(args) > 2 else 8, workdir=Path(tmp))
    print(json.dumps(result))
