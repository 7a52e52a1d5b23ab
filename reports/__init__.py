"""joulemeter's accounting layer: joules × cited factors -> kWh, CO2e, cost and comparisons."""

from joulemeter.reports.accounting import (
    Equivalence,
    Footprint,
    footprint,
    per_unit,
    projection,
    uncertainty_bands,
)
from joulemeter.reports.estimates import (
    Estimate,
    Hardware,
    PublishedRun,
    estimate,
    find_hardware,
    hardware_table,
    published_run,
    published_runs,
)
from joulemeter.reports.factors import (
    Citation,
    Factors,
    known_regions,
    pue_presets,
    resolve_factors,
)
from joulemeter.reports.render.formatting import format_number

__all__ = [
    "Citation",
    "Equivalence",
    "Estimate",
    "Factors",
    "Footprint",
    "Hardware",
    "PublishedRun",
    "estimate",
    "find_hardware",
    "footprint",
    "format_number",
    "hardware_table",
    "known_regions",
    "per_unit",
    "projection",
    "published_run",
    "published_runs",
    "pue_presets",
    "resolve_factors",
    "uncertainty_bands",
]
