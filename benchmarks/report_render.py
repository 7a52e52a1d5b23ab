"""Time to render the HTML report of one run with 1,000,000 samples (reports.render)."""

from __future__ import annotations

import time
import uuid
from typing import Any

from benchmarks._stats import spread

DOMAINS = 4
SAMPLES = 1_000_000
INTERVAL_S = 0.01


def synthetic_run(samples: int = SAMPLES):
    """A finished run: 4 GPU counters at 10 ms with windows, its energy from its samples."""
    from joulemeter.meter.energy import summarise
    from joulemeter.meter.run import Domain, Provenance, Run, Sample, Status, Window

    ticks = samples // DOMAINS
    domains = [
        Domain(f"gpu:{i}", "gpu", "synthetic", Provenance.COUNTER, "benchmark") for i in range(DOMAINS)
    ]
    rows = []
    energy = [0.0] * DOMAINS
    for tick in range(ticks):
        t_s = tick * INTERVAL_S
        for i in range(DOMAINS):
            power_w = 200.0 + 50.0 * i + (tick % 100)
            if tick:
                energy[i] += power_w * INTERVAL_S
            rows.append(Sample(t_s, f"gpu:{i}", power_w, energy[i]))
    duration_s = (ticks - 1) * INTERVAL_S
    windows = [
        Window("epoch", f"epoch-{k}", k * duration_s / 10, (k + 1) * duration_s / 10,
               {d.name: 0.0 for d in domains}, {"samples": 50_000.0})
        for k in range(10)
    ]
    run = Run(id=uuid.uuid4().hex, name="one-million-samples", status=Status.COMPLETED,
              started_at="2026-01-01T00:00:00.000+00:00", duration_s=duration_s,
              interval_s=INTERVAL_S, domains=domains, windows=windows, samples=rows,
              units={"samples": 500_000.0})
    run.energy = summarise(domains, rows, duration_s)
    return run


def run(*, repeats: int) -> dict[str, Any]:
    from joulemeter.reports.render import render

    run_ = synthetic_run()
    seconds = []
    size = 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        html = render(run_, "html")
        seconds.append(time.perf_counter() - t0)
        size = len(html.encode())
    return {"samples": len(run_.samples), "render_s": spread(seconds).to_dict(), "html_bytes": size}
