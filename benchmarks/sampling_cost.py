"""Where a tick's time goes: each source's read, each psutil call under it, the meter's own
accounting, and the CPU its threads use per second of an idle run at each interval.

Part costs are CPU time of this thread (time.thread_time) over many calls in a row, so
caches are warm: a lower bound. A real tick comes after the thread slept, with cold caches
and a wake-up; the thread figures (Linux schedstat of the named thread) include that.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks._stats import spread
from benchmarks._worker import SAMPLER_THREAD, _thread_cpu_s

WRITER_THREAD = "joulemeter-writer"  # the name meter/store/writer.py gives its thread


def _us_per_call(fn: Callable[[], object], calls: int) -> float:
    fn()
    t0 = time.thread_time()
    for _ in range(calls):
        fn()
    return (time.thread_time() - t0) / calls * 1e6


def parts(repeats: int, calls: int) -> dict[str, Any]:
    """CPU µs per call of each part of a tick, with the sources discovery finds here."""
    import psutil

    from joulemeter.meter.sampler import Sampler, read_counters
    from joulemeter.meter.sources import discover
    from joulemeter.meter.sources.estimate import process_tree_cpu_seconds, process_tree_rss_bytes

    found = discover(None)
    logical = psutil.cpu_count() or 1
    probes: dict[str, Callable[[], object]] = {
        "psutil.cpu_times (/proc/stat)": psutil.cpu_times,
        "psutil.virtual_memory (/proc/meminfo)": psutil.virtual_memory,
        "process tree CPU times (pid mode: a /proc walk)": process_tree_cpu_seconds(os.getpid(), logical),
        "process tree RSS (pid mode: a /proc walk)": process_tree_rss_bytes(os.getpid()),
    }
    for source in found.sources:
        probes[f"{source.name}.read() (a tick)"] = source.read
        probes[f"{source.name}.read_counters() (an edge)"] = lambda s=source: read_counters(s)
    sampler = Sampler(found.sources, found.domains, interval_s=1.0)
    sampler.read_once()
    probes["Sampler.read_once() (a whole tick, warm)"] = sampler.read_once
    out = {name: spread([_us_per_call(fn, calls) for _ in range(repeats)]).to_dict()
           for name, fn in probes.items()}
    for source in found.sources:
        source.close()
    return {"sources": [s.name for s in found.sources], "processes": len(psutil.pids()), "us_per_call": out}


def threads(intervals: list[float | None], idle_s: float, repeats: int, ledger: Path) -> dict[str, Any]:
    """CPU ms per second of the sampler and writer threads while the code sleeps."""
    from joulemeter.meter import EnergyMeter

    out: dict[str, Any] = {}
    for interval in intervals:
        label = "default" if interval is None else f"{interval * 1000:g}ms"
        sampler_ms, writer_ms, chosen = [], [], None
        for _ in range(repeats):
            options: dict[str, Any] = {} if interval is None else {"interval_s": interval}
            meter = EnergyMeter("sampling-cost", ledger=ledger, **options)
            meter.start()
            chosen = meter.interval_s
            s0, w0, t0 = _thread_cpu_s(SAMPLER_THREAD), _thread_cpu_s(WRITER_THREAD), time.perf_counter()
            time.sleep(idle_s)  # the point: what the threads cost while the code does nothing
            s1, w1, t1 = _thread_cpu_s(SAMPLER_THREAD), _thread_cpu_s(WRITER_THREAD), time.perf_counter()
            meter.stop()
            if None not in (s0, s1):
                sampler_ms.append((s1 - s0) / (t1 - t0) * 1000)  # type: ignore[operator]
            if None not in (w0, w1):
                writer_ms.append((w1 - w0) / (t1 - t0) * 1000)  # type: ignore[operator]
        out[label] = {
            "interval_s": chosen,
            "sampler_ms_per_s": spread(sampler_ms).to_dict() if sampler_ms else None,
            "writer_ms_per_s": spread(writer_ms).to_dict() if writer_ms else None,
        }
    return out


def run(*, repeats: int, calls: int, idle_s: float, workdir: Path) -> dict[str, Any]:
    return {
        "parts": parts(repeats, calls),
        "threads": threads([None, 0.1, 0.01], idle_s, repeats, workdir / "sampling-cost.sqlite"),
    }


if __name__ == "__main__":
    import json
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(run(repeats=3, calls=300, idle_s=2.0, workdir=Path(tmp)), indent=1))
