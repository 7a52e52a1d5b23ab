"""joulemeter: the energy and carbon of machine learning, measured, with cited factors.

    from joulemeter import EnergyMeter, footprint, render
    with EnergyMeter("train") as m:
        ...
    print(footprint(m.run).co2e_kg)

These are the names a user needs in the first hour; everything else stays under its
layer: `joulemeter.meter` (measuring), `joulemeter.reports` (accounting and reports),
`joulemeter.integrations` (PyTorch, Lightning, Transformers, CLI, ...). Each name is
imported on first use, so `import joulemeter` stays as light as the meter itself.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# name -> module that defines it
_EXPORTS = {
    "EnergyMeter": "joulemeter.meter.meter",
    "metered": "joulemeter.meter.meter",
    "current_meter": "joulemeter.meter.meter",
    "Run": "joulemeter.meter.run",
    "Window": "joulemeter.meter.run",
    "Domain": "joulemeter.meter.run",
    "Provenance": "joulemeter.meter.run",
    "Status": "joulemeter.meter.run",
    "JoulemeterError": "joulemeter.meter.errors",
    "open_ledger": "joulemeter.meter.store",
    "Factors": "joulemeter.reports.factors",
    "resolve_factors": "joulemeter.reports.factors",
    "Footprint": "joulemeter.reports.accounting",
    "footprint": "joulemeter.reports.accounting",
    "compare": "joulemeter.reports.compare",
    "estimate": "joulemeter.reports.estimates",
    "render": "joulemeter.reports.render",
    "TrainingMeter": "joulemeter.integrations.pytorch",
    "benchmark_inference": "joulemeter.integrations.compression",
}

__all__ = [
    "Domain",
    "EnergyMeter",
    "Factors",
    "Footprint",
    "JoulemeterError",
    "Provenance",
    "Run",
    "Status",
    "TrainingMeter",
    "Window",
    "benchmark_inference",
    "compare",
    "current_meter",
    "estimate",
    "footprint",
    "metered",
    "open_ledger",
    "render",
    "resolve_factors",
]

if TYPE_CHECKING:
    from joulemeter.integrations.compression import benchmark_inference
    from joulemeter.integrations.pytorch import TrainingMeter
    from joulemeter.meter.errors import JoulemeterError
    from joulemeter.meter.meter import EnergyMeter, current_meter, metered
    from joulemeter.meter.run import Domain, Provenance, Run, Status, Window
    from joulemeter.meter.store import open_ledger
    from joulemeter.reports.accounting import Footprint, footprint
    from joulemeter.reports.compare import compare
    from joulemeter.reports.estimates import estimate
    from joulemeter.reports.factors import Factors, resolve_factors
    from joulemeter.reports.render import render


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'joulemeter' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext joulemeter` registers the `%%joulemeter` cell magic."""
    from joulemeter.integrations.notebook import load_ipython_extension as load

    load(ipython)
