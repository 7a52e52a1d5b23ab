"""Ledger: sustained sample ingest through `append_samples`, and size on disk per hour.

The load is the meter's worst realistic case: 8 GPUs sampled every 10 ms, i.e. 800
samples/s, written in 1 s batches (the meter's default write interval) of 800 rows.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks._stats import spread

GPUS = 8
INTERVAL_S = 0.01
FLUSH_S = 1.0
NEEDED_PER_S = GPUS / INTERVAL_S


def _ledger_bytes(path: Path) -> int:
    """The database file and its WAL and shared-memory side files."""
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def _batch(start_tick: int, ticks: int) -> list:
    from joulemeter.meter.run import Sample

    out = []
    for tick in range(start_tick, start_tick + ticks):
        t_s = tick * INTERVAL_S
        for gpu in range(GPUS):
            power_w = 250.0 + gpu + (tick % 50)
            out.append(Sample(t_s, f"gpu:{gpu}", power_w, 300.0 * t_s + gpu))
    return out


def run(*, repeats: int) -> dict[str, Any]:
    from joulemeter.meter.run import Domain, Provenance, Run
    from joulemeter.meter.store import open_ledger

    ticks = int(FLUSH_S / INTERVAL_S)
    with tempfile.TemporaryDirectory(prefix="jm-ledger-bench-") as tmp:
        path = Path(tmp) / "ledger.sqlite"
        domains = [
            Domain(f"gpu:{i}", "gpu", "synthetic", Provenance.COUNTER, "benchmark") for i in range(GPUS)
        ]
        run_ = Run(id=uuid.uuid4().hex, name="ingest", domains=domains, interval_s=INTERVAL_S,
                   started_at="2026-01-01T00:00:00.000+00:00")
        ledger = open_ledger(path)
        ledger.begin_run(run_)
        ledger.close()
        empty_bytes = _ledger_bytes(path)
        batches = [_batch(i * ticks, ticks) for i in range(repeats)]
        ledger = open_ledger(path)
        rates = []
        try:
            for batch in batches:
                t0 = time.perf_counter()
                ledger.append_samples(run_.id, batch)
                rates.append(len(batch) / (time.perf_counter() - t0))
        finally:
            ledger.close()
        written = sum(len(b) for b in batches)
        bytes_per_sample = (_ledger_bytes(path) - empty_bytes) / written
    rate = spread(rates)
    return {
        "gpus": GPUS,
        "interval_s": INTERVAL_S,
        "batch_samples": GPUS * ticks,
        "needed_samples_per_s": NEEDED_PER_S,
        "samples_per_s": rate.to_dict(),
        "ratio_to_need": spread([r / NEEDED_PER_S for r in rates]).to_dict(),
        "samples_written": written,
        "bytes_per_sample": bytes_per_sample,
        "mib_per_hour": bytes_per_sample * NEEDED_PER_S * 3600 / 2**20,
    }
