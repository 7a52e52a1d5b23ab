"""Machine-readable reports: JSON (runs, footprints, comparison, factors with sources) and
CSV (one row per run and domain). SI units and each figure's provenance throughout;
samples are left out (export them with `joulemeter export`)."""

from __future__ import annotations

import dataclasses
from typing import Any

from joulemeter.meter.export import csv_text, json_text
from joulemeter.reports.accounting import footprint, per_unit
from joulemeter.reports.render._report import Report
from joulemeter.reports.render._tables import domain_rows

SCHEMA = "joulemeter-report/1"
UNITS = {
    "energy_j": "J at the devices",
    "facility_energy_j": "J including PUE",
    "energy_kwh": "kWh including PUE",
    "kg_co2e": "kg CO2e",
    "power_w": "W",
    "duration_s": "s",
    "intensity_g_per_kwh": "g CO2e per kWh",
}
_DOMAIN_COLUMNS = (
    "domain", "kind", "device", "method", "provenance", "energy_j", "avg_power_w",
    "peak_power_w", "idle_power_w",
)


def render_json(report: Report) -> str:
    data: dict[str, Any] = {
        "schema": SCHEMA,
        "title": report.title,
        "generated_at": report.generated_at,
        "units": UNITS,
        "notes": report.notes,
        "runs": [
            {
                "run": rr.run.to_dict(samples=False),
                "footprint": rr.footprint.to_dict(),
                "figures": [
                    {**dataclasses.asdict(f), "full_text": f.full_text} for f in rr.figures
                ],
                "per_unit": {
                    unit: per_unit(rr.run, unit, report.factors) for unit in rr.run.units
                },
                "notes": rr.notes,
            }
            for rr in report.runs
        ],
        "comparison": report.comparison.to_dict() if report.comparison else None,
        "factors": report.factors.to_dict(),
        "factor_sources": [dataclasses.asdict(line) for line in report.factor_lines],
    }
    return json_text(data, ensure_ascii=False) + "\n"  # NaN and infinities as null: JSON has none


def render_csv(report: Report) -> str:
    """One row per run and domain; a run without domains still gets one row."""
    import pandas

    factors = report.factors
    rows = []
    for rr in report.runs:
        run = rr.run
        run_columns = {
            "run_id": run.id,
            "run_name": run.name,
            "project": run.project,
            "variant": run.metadata.get("variant"),
            "status": run.status.value,
            "started_at": run.started_at,
            "duration_s": run.duration_s,
        }
        for d in domain_rows(run) or [{}]:
            fp = footprint(d["energy_j"], factors, provenance=d["provenance"]) if d else None
            rows.append(
                {
                    **run_columns,
                    **{key: d.get(key) for key in _DOMAIN_COLUMNS},
                    "facility_energy_kwh": fp.energy_kwh if fp else None,
                    "kg_co2e": fp.kg_co2e if fp else None,
                    "cost": fp.cost if fp else None,
                    "currency": factors.currency,
                    "pue": factors.pue,
                    "intensity_g_per_kwh": factors.intensity_g_per_kwh,
                    "intensity_source": str(factors.intensity_citation),
                    "region": factors.region,
                }
            )
    return csv_text(pandas.DataFrame(rows))
