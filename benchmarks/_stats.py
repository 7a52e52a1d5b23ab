"""Summaries of repeated measurements: median with interquartile range and min–max."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Spread:
    """Median, quartiles and extremes of `n` repeats of one figure."""

    median: float
    q1: float
    q3: float
    low: float
    high: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def text(self, fmt: str = "{:.3g}", scale: float = 1.0) -> str:
        """`median (IQR q1–q3)` with each number multiplied by `scale` then formatted."""
        m, a, b = (fmt.format(v * scale) for v in (self.median, self.q1, self.q3))
        return f"{m} (IQR {a} – {b})"


def spread(values: list[float]) -> Spread:
    """Median and quartiles (inclusive method, so n = 5 uses the 2nd and 4th values)."""
    if not values:
        raise ValueError("no values to summarise")
    ordered = sorted(values)
    if len(ordered) == 1:
        q1 = q3 = ordered[0]
    else:
        q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    return Spread(statistics.median(ordered), q1, q3, ordered[0], ordered[-1], len(ordered))
