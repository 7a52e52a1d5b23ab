"""Table rows the renderers share: energy per domain and per window of a run, and a
comparison's frame as records.

Plain lists of dicts in SI units; each renderer formats them its own way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from joulemeter.meter.run import Provenance, Run

if TYPE_CHECKING:
    import pandas


@dataclass
class WindowGroup:
    """Every occurrence of one window path, added up (a step repeated 10,000 times is one row)."""

    path: str
    occurrences: int = 0
    start_s: float = 0.0
    duration_s: float | None = 0.0  # None if an occurrence never ended
    energy_j: dict[str, float] = field(default_factory=dict)
    units: dict[str, float] = field(default_factory=dict)

    @property
    def total_energy_j(self) -> float:
        return sum(self.energy_j.values())

    @property
    def label(self) -> str:
        return self.path if self.occurrences == 1 else f"{self.path} ×{self.occurrences}"

    def energy_per_unit_j(self, unit: str) -> float | None:
        count = self.units.get(unit)
        return self.total_energy_j / count if count else None


def window_groups(run: Run) -> list[WindowGroup]:
    """The run's windows grouped by path, in order of first start."""
    groups: dict[str, WindowGroup] = {}
    for window in sorted(run.windows, key=lambda w: w.start_s):
        group = groups.get(window.path)
        if group is None:
            group = groups[window.path] = WindowGroup(window.path, start_s=window.start_s)
        group.occurrences += 1
        if group.duration_s is not None:
            d = window.duration_s
            group.duration_s = None if d is None else group.duration_s + d
        for domain, energy in window.energy_j.items():
            group.energy_j[domain] = group.energy_j.get(domain, 0.0) + energy
        for unit, count in window.units.items():
            group.units[unit] = group.units.get(unit, 0.0) + count
    return list(groups.values())


def one_level(groups: list[WindowGroup]) -> tuple[list[WindowGroup], str | None]:
    """The groups of one nesting level, so a chart never stacks a window beside its own
    children: the shallowest level, or the children of a lone window there (then its path)."""
    if not groups:
        return [], None
    top = min(g.path.count("/") for g in groups)  # windows opened inside no other window
    level = [g for g in groups if g.path.count("/") == top]
    parent = None
    while len(level) == 1 and (children := _children(groups, level[0].path)):
        parent, level = level[0].path, children
    return level, parent


def _children(groups: list[WindowGroup], path: str) -> list[WindowGroup]:
    depth = path.count("/") + 1
    return [g for g in groups if g.path.startswith(path + "/") and g.path.count("/") == depth]


def run_label(name: str, variant: object) -> str:
    """A run's name with its variant when the name does not already say it:
    "digits-mlp/full" stays so, "sweep-3" with variant "int8" is "sweep-3 (int8)"."""
    if not isinstance(variant, str) or not variant or name == variant or name.endswith("/" + variant):
        return name
    return f"{name} ({variant})"


def window_domains(groups: list[WindowGroup]) -> list[str]:
    """Domains that appear in any window group, in first-seen order."""
    seen: dict[str, None] = {}
    for group in groups:
        seen.update(dict.fromkeys(group.energy_j))
    return list(seen)


def domain_rows(run: Run) -> list[dict]:
    """One row per domain: what it is, how it is measured, its energy and power."""
    described = {d.name: d for d in run.domains}
    rows = []
    for name, energy in run.energy.items():
        domain = described.get(name)
        rows.append(
            {
                "domain": name,
                "kind": domain.kind if domain else name.split(":")[0],
                "device": domain.device if domain else None,
                "method": domain.method if domain else None,
                "note": domain.note if domain else None,
                "provenance": energy.provenance.value,
                "energy_j": energy.energy_j,
                "avg_power_w": energy.avg_power_w,
                "peak_power_w": energy.peak_power_w,
                "idle_power_w": energy.idle_power_w,
            }
        )
    return rows


def provenance_text(provenance: Provenance | str | None) -> str:
    """'counter', 'sampled', 'estimated', 'replayed', or 'unknown'."""
    if provenance is None:
        return "unknown"
    return provenance.value if isinstance(provenance, Provenance) else str(provenance)


def methods_text(run: Run) -> str:
    """How the run was measured, in words: 'NVML total energy counter; RAPL counter'."""
    methods = dict.fromkeys(d.method for d in run.domains if d.method)
    return "; ".join(methods) or "unknown method"


def frame_records(frame: pandas.DataFrame) -> list[dict[str, Any]]:
    """DataFrame rows as JSON-ready dicts: NaN becomes None, numpy scalars become Python."""
    return [{key: _plain(value) for key, value in row.items()} for row in frame.to_dict("records")]


def _plain(value: Any) -> Any:
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
