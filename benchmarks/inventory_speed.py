"""`joulemeter inventory` over a ledger of 100,000 runs: seconds to build it, per group-by.

The ledger is made with bulk inserts through the schema (a run: its row, 2 GPU and 1 CPU
domains with their energy, a tag) over a year of start times, so it holds what a team's
year would. Run it alone: `python -m benchmarks.inventory_speed [runs]`.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks._stats import spread

RUNS = 100_000
_CHUNK = 10_000
_DEVICES = ("NVIDIA A100-SXM4-80GB", "NVIDIA H100 80GB HBM3", "Tesla T4")


def build_ledger(path: Path, runs: int = RUNS) -> float:
    """A ledger of `runs` finished runs at `path`; returns the seconds it took to write."""
    import sqlalchemy as sa

    from joulemeter.meter.store import open_ledger, schema

    t0 = time.perf_counter()
    open_ledger(path).close()  # creates the tables and stamps the schema version
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        for start in range(0, runs, _CHUNK):
            rows, domains, energy, tags = [], [], [], []
            for i in range(start, min(start + _CHUNK, runs)):
                run_id = uuid.UUID(int=i).hex
                day, hour = divmod(i * 365 * 24 // runs, 24)
                device = _DEVICES[i % len(_DEVICES)]
                rows.append({
                    "id": run_id, "name": f"run-{i}", "project": f"project-{i % 7}", "status": "completed",
                    "started_at": f"2025-{1 + day * 12 // 365:02d}-{1 + day % 28:02d}T{hour:02d}:00:00+00:00",
                    "duration_s": 60.0 + i % 3600, "interval_s": 1.0,
                    "host": {"hostname": f"node-{i % 16}", "user": f"user-{i % 5}"},
                    "units": {}, "metadata": {}, "hostname": f"node-{i % 16}",
                })
                for k, (name, kind, dev, prov) in enumerate(
                    (("gpu:0", "gpu", device, "counter"), ("gpu:1", "gpu", device, "counter"),
                     ("cpu:0", "cpu", "Intel Xeon", "estimated"))
                ):
                    domains.append({"run_id": run_id, "position": k, "name": name, "kind": kind,
                                    "device": dev, "provenance": prov, "method": "benchmark"})
                    energy.append({"run_id": run_id, "position": k, "domain": name,
                                   "energy_j": 1000.0 + i % 977 * (k + 1), "provenance": prov})
                tags.append({"run_id": run_id, "position": 0, "tag": "sweep" if i % 2 else "prod"})
            conn.execute(sa.insert(schema.runs), rows)
            conn.execute(sa.insert(schema.domains), domains)
            conn.execute(sa.insert(schema.energy), energy)
            conn.execute(sa.insert(schema.tags), tags)
    engine.dispose()
    return time.perf_counter() - t0


def run(*, repeats: int = 3, runs: int = RUNS) -> dict[str, Any]:
    from joulemeter.meter.store import open_ledger
    from joulemeter.reports.factors import resolve_factors
    from joulemeter.reports.inventory import GROUP_BYS, inventory
    from joulemeter.reports.render.inventory import render_inventory

    factors = resolve_factors("US", pue="hyperscale")
    with tempfile.TemporaryDirectory(prefix="jm-inventory-bench-") as tmp:
        path = Path(tmp) / "ledger.sqlite"
        build_s = build_ledger(path, runs)
        out: dict[str, Any] = {"runs": runs, "build_ledger_s": build_s, "inventory_s": {}}
        with open_ledger(path, for_reading=True) as ledger:
            for group_by in GROUP_BYS:
                seconds = []
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    inv = inventory(ledger, group_by=group_by, factors=factors, wue="aws-2021")
                    seconds.append(time.perf_counter() - t0)
                assert inv.totals.runs == runs
                out["inventory_s"][group_by] = spread(seconds).to_dict()
            t0 = time.perf_counter()
            inv = inventory(ledger, since="2025-03-01", until="2025-05-31", tag="prod", factors=factors)
            out["filtered_quarter_tag_s"] = time.perf_counter() - t0
            out["filtered_runs"] = inv.totals.runs
            for fmt in ("html", "md", "csv"):
                t0 = time.perf_counter()
                render_inventory(inv, fmt)
                out[f"render_{fmt}_s"] = time.perf_counter() - t0
    return out


if __name__ == "__main__":
    print(json.dumps(run(runs=int(sys.argv[1]) if len(sys.argv) > 1 else RUNS), indent=2))
