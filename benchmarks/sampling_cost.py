"""Where a tick's time goes: each source's read, each /proc or psutil call under it, the
meter's own accounting, a flush to the journal and a ledger write, and the CPU its threads
use per second of an idle run at each interval, and over a long idle run (`long_idle`: the
default timeline once stretched to its longest interval, and none at all).

Part costs are CPU time of this thread (time.thread_time) per call: warm, over many calls
in a row (a lower bound), and cold, each call after a pause as a tick comes after the
thread slept (caches cold: several times the warm figure). The thread figures (Linux
schedstat of the named thread) are what an idle run really costs.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks._stats import spread
from benchmarks._worker import _COUNTER_KINDS, SAMPLER_THREAD, _thread_cpu_s

WRITER_THREAD = "joulemeter-writer"  # the name meter/store/writer.py gives its thread
COLD_GAP_S = 0.02  # the pause before each cold call
COLD_CALLS = 20


def _us_per_call(fn: Callable[[], object], calls: int, gap_s: float = 0.0) -> float:
    fn()
    total = 0.0
    for _ in range(calls):
        if gap_s:
            time.sleep(gap_s)  # the point: the call after a pause, as a tick after a sleep
        t0 = time.thread_time()
        fn()
        total += time.thread_time() - t0
    return total / calls * 1e6


def _flush_probes(sampler: Any, workdir: Path) -> tuple[dict[str, Callable[[], object]], Callable[[], None]]:
    """A flush of one tick's samples to a journal, and a ledger write of the samples of
    _LEDGER_FLUSHES such ticks (one transaction), as the run's writer makes them."""
    from joulemeter.meter.run import Run, Status
    from joulemeter.meter.store import open_ledger
    from joulemeter.meter.store.spool import RunSpool
    from joulemeter.meter.store.writer import _LEDGER_FLUSHES

    tick = sampler.timeline.latest()
    run = Run(id=uuid.uuid4().hex, name="sampling-cost", project="benchmark", tags=[], status=Status.RUNNING,
              started_at="2026-01-01T00:00:00+00:00", interval_s=1.0, host={}, domains=[])
    ledger = open_ledger(workdir / "flush-cost.sqlite", recover=False)
    ledger.begin_run(run)
    spool = RunSpool(run.id, ledger.location, directory=workdir / "spool")
    spool.write_begin(run, {})
    batch = tick * _LEDGER_FLUSHES
    probes = {
        f"a flush: one tick's {len(tick)} samples to the journal (every second)": lambda: spool.write_samples(tick),
        f"a ledger write: {len(batch)} samples in one transaction (every {_LEDGER_FLUSHES} flushes)":
            lambda: ledger.append_samples(run.id, batch),
    }

    def close() -> None:
        spool.discard()
        ledger.close()

    return probes, close


def parts(repeats: int, calls: int, workdir: Path) -> dict[str, Any]:
    """CPU µs per call of each part of a tick and a flush, warm and cold, with the sources
    discovery finds here."""
    import psutil

    from joulemeter.meter.sampler import Sampler, read_counters
    from joulemeter.meter.sources import discover
    from joulemeter.meter.sources.estimate import (
        ProcMeminfoUsed,
        ProcStatCpuSeconds,
        process_tree_cpu_seconds,
        process_tree_rss_bytes,
    )

    found = discover(None)
    logical = psutil.cpu_count() or 1
    probes: dict[str, Callable[[], object]] = {
        "psutil.cpu_times (/proc/stat opened and parsed)": psutil.cpu_times,
        "/proc/stat kept open, first line (ProcStatCpuSeconds)": ProcStatCpuSeconds(),
        "psutil.virtual_memory (/proc/meminfo opened and parsed)": psutil.virtual_memory,
        "/proc/meminfo kept open, two fields (ProcMeminfoUsed)": ProcMeminfoUsed(),
        "process tree CPU times (pid mode: a /proc walk)": process_tree_cpu_seconds(os.getpid(), logical),
        "process tree RSS (pid mode: a /proc walk)": process_tree_rss_bytes(os.getpid()),
    }
    for source in found.sources:
        probes[f"{source.name}.read() (a tick)"] = source.read
        probes[f"{source.name}.read_counters() (an edge)"] = lambda s=source: read_counters(s)
    sampler = Sampler(found.sources, found.domains, interval_s=1.0)
    sampler.read_once()
    probes["Sampler.read_once() (a whole tick)"] = sampler.read_once
    flushes, close = _flush_probes(sampler, workdir)
    probes.update(flushes)
    warm = {name: spread([_us_per_call(fn, calls) for _ in range(repeats)]).to_dict() for name, fn in probes.items()}
    cold = {name: spread([_us_per_call(fn, COLD_CALLS, COLD_GAP_S) for _ in range(repeats)]).to_dict()
            for name, fn in probes.items()}
    close()
    for source in found.sources:
        source.close()
    return {"sources": [s.name for s in found.sources], "processes": len(psutil.pids()),
            "us_per_call": warm, "cold_us_per_call": cold, "cold_gap_s": COLD_GAP_S}


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


def long_idle(measure_s: float, ledger: Path, *, timeline: bool = True) -> dict[str, Any]:
    """CPU ms per second of both threads of a meter over `measure_s` of sleep, with the ticks
    or counter reads and the ledger writes that fell in that span (counted, not estimated).

    The default meter is measured from the moment its adaptive timeline reached its longest
    interval; one without a timeline from 5 s after its first heartbeat (which also opens the
    run's journal, once), so that a span of 4 heartbeats holds the one that goes to the ledger."""
    from joulemeter.meter import EnergyMeter
    from joulemeter.meter.store.ledger import Ledger
    from joulemeter.meter.store.writer import _LEDGER_FLUSHES

    writes: list[float] = []
    real = Ledger.append_samples

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        writes.append(time.monotonic())
        return real(self, *args, **kwargs)

    Ledger.append_samples = counted  # type: ignore[method-assign]
    options: dict[str, Any] = {} if timeline else {"timeline": False, "devices": _COUNTER_KINDS}
    meter = EnergyMeter("sampling-cost-long-idle", ledger=ledger, **options)
    heartbeat_s: float | None = None  # without a timeline: the writer's beat
    try:
        meter.start()
        sampler = meter._sampler
        assert sampler is not None
        ramp0 = time.monotonic()
        if timeline:
            assert meter.max_interval_s is not None
            while sampler.tick_interval_s() < meter.max_interval_s:
                time.sleep(0.5)  # the ramp: 1, 2, 4, 8, 16 s between steady ticks
        else:
            heartbeat_s = meter.interval_s * _LEDGER_FLUSHES
            time.sleep(heartbeat_s + 5.0)  # past the first beat, off their phase
        ramp_s = time.monotonic() - ramp0
        s0, w0 = _thread_cpu_s(SAMPLER_THREAD), _thread_cpu_s(WRITER_THREAD)
        t0, readings0 = time.monotonic(), sampler._readings
        time.sleep(measure_s)  # the point: what the threads cost while the code does nothing
        s1, w1 = _thread_cpu_s(SAMPLER_THREAD), _thread_cpu_s(WRITER_THREAD)
        t1, readings1 = time.monotonic(), sampler._readings
    finally:
        meter.stop()
        Ledger.append_samples = real  # type: ignore[method-assign]
    span_s = t1 - t0
    return {
        "timeline": timeline,
        "interval_s": meter.interval_s,
        "max_interval_s": meter.max_interval_s,
        "heartbeat_s": heartbeat_s,
        "ramp_s": ramp_s,
        "measured_s": span_s,
        "readings": readings1 - readings0,
        "ledger_writes": sum(t0 <= t <= t1 for t in writes),
        "sampler_ms_per_s": None if None in (s0, s1) else (s1 - s0) / span_s * 1000,  # type: ignore[operator]
        "writer_ms_per_s": None if None in (w0, w1) else (w1 - w0) / span_s * 1000,  # type: ignore[operator]
    }


def run(*, repeats: int, calls: int, idle_s: float, long_idle_s: float, workdir: Path) -> dict[str, Any]:
    from joulemeter.meter.store.writer import _LEDGER_FLUSHES

    return {
        "ledger_flushes": _LEDGER_FLUSHES,
        "parts": parts(repeats, calls, workdir),
        "threads": threads([None, 0.1, 0.01], idle_s, repeats, workdir / "sampling-cost.sqlite"),
        "long_idle": {
            "default": long_idle(long_idle_s, workdir / "sampling-cost.sqlite"),
            "no timeline": long_idle(long_idle_s, workdir / "sampling-cost.sqlite", timeline=False),
        },
    }


if __name__ == "__main__":
    import json
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(run(repeats=3, calls=300, idle_s=2.0, long_idle_s=30.0, workdir=Path(tmp)), indent=1))
