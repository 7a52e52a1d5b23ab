"""LLM inference as figures: per generate call its prefill and decode energy, energy per
input token (prefill ÷ prompt tokens), per output token (whole call ÷ new tokens) and
per decode token (decode ÷ tokens of decode steps), time to first token and tokens per
second; per sweep point the same over its trials, with a 95 % interval. Read from the
windows and metadata that joulemeter.integrations.llm writes; rendered by
joulemeter.reports.render.llm.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from joulemeter.meter.errors import ReportError
from joulemeter.meter.run import Run, Window
from joulemeter.reports.confidence import relative_half_width
from joulemeter.reports.units import INPUT_UNIT, OUTPUT_UNIT

PREFILL_WINDOW = "prefill"
DECODE_WINDOW = "decode"
SEQUENCE_UNIT = "sequences"
#: run.metadata key of a sweep's per-point records
SWEEP_KEY = "llm_sweep"


@dataclass(frozen=True)
class GenerationFigures:
    """One metered generate call (its outer window and the prefill/decode inside)."""

    window: str
    sequences: float
    input_tokens: float
    output_tokens: float  # every new token
    decode_tokens: float  # new tokens made by decode steps (all but each sequence's first)
    prefill_j: float | None
    decode_j: float | None  # None when no decode step ran
    total_j: float
    ttft_s: float | None  # the prefill window's length: call start to first new token
    duration_s: float | None

    @property
    def energy_per_input_token_j(self) -> float | None:
        return _per(self.prefill_j, self.input_tokens)

    @property
    def energy_per_output_token_j(self) -> float | None:
        """The whole call's energy per new token: what serving one token costs."""
        return _per(self.total_j, self.output_tokens)

    @property
    def energy_per_decode_token_j(self) -> float | None:
        return _per(self.decode_j, self.decode_tokens)

    @property
    def output_tokens_per_s(self) -> float | None:
        return _per(self.output_tokens, self.duration_s)


def generation_figures(run: Run) -> list[GenerationFigures]:
    """Every generate call of `run`: each window holding a "prefill" window, in order."""
    children: dict[str, dict[str, Window]] = {}
    for window in run.windows:
        parent, _, name = window.path.rpartition("/")
        if name in (PREFILL_WINDOW, DECODE_WINDOW):
            children.setdefault(parent, {})[name] = window
    calls = []
    for window in run.windows:
        inner = children.get(window.path)
        if not inner or PREFILL_WINDOW not in inner:
            continue
        prefill, decode = inner[PREFILL_WINDOW], inner.get(DECODE_WINDOW)
        calls.append(
            GenerationFigures(
                window=window.path,
                sequences=window.units.get(SEQUENCE_UNIT, 0.0),
                input_tokens=window.units.get(INPUT_UNIT, 0.0),
                output_tokens=window.units.get(OUTPUT_UNIT, 0.0),
                decode_tokens=0.0 if decode is None else decode.units.get(OUTPUT_UNIT, 0.0),
                prefill_j=prefill.total_energy_j if prefill.energy_j else None,
                decode_j=None if decode is None or not decode.energy_j else decode.total_energy_j,
                total_j=window.total_energy_j,
                ttft_s=prefill.duration_s if decode is not None else None,
                duration_s=window.duration_s,
            )
        )
    return calls


@dataclass(frozen=True)
class Estimate:
    """A figure over repeated trials: geometric mean, and the 95 % interval's half-width as
    a fraction (None with fewer than 2 trials)."""

    value: float | None
    half_width: float | None
    trials: int

    @classmethod
    def of(cls, values: Sequence[float | None]) -> Estimate:
        positive = [v for v in values if v is not None and v > 0]
        value = math.exp(statistics.fmean(math.log(v) for v in positive)) if positive else None
        return cls(value, relative_half_width(positive), len(positive))


@dataclass(frozen=True)
class PointFigures:
    """One sweep point: its configuration and figures over its trials."""

    name: str
    batch_size: int
    input_length: int
    new_tokens: int
    per_input_token_j: Estimate
    per_output_token_j: Estimate
    per_decode_token_j: Estimate
    ttft_s: float | None  # median over trials
    output_tokens_per_s: float | None  # median over trials
    calls: list[GenerationFigures]


def sweep_figures(run: Run) -> list[PointFigures]:
    """The points of a sweep run (integrations.llm.sweep_generation), in sweep order."""
    records = run.metadata.get(SWEEP_KEY)
    if not isinstance(records, list) or not records:
        raise ReportError(f"run {run.id[:8]} holds no LLM sweep (no {SWEEP_KEY!r} in its metadata)")
    calls = generation_figures(run)
    points = []
    for record in records:
        prefix = f"{record['window']}/"
        mine = [c for c in calls if c.window.startswith(prefix)]
        points.append(
            PointFigures(
                name=record["window"],
                batch_size=int(record["batch_size"]),
                input_length=int(record["input_length"]),
                new_tokens=int(record["new_tokens"]),
                per_input_token_j=Estimate.of([c.energy_per_input_token_j for c in mine]),
                per_output_token_j=Estimate.of([c.energy_per_output_token_j for c in mine]),
                per_decode_token_j=Estimate.of([c.energy_per_decode_token_j for c in mine]),
                ttft_s=_median([c.ttft_s for c in mine]),
                output_tokens_per_s=_median([c.output_tokens_per_s for c in mine]),
                calls=mine,
            )
        )
    return points


def _per(amount: float | None, count: float | None) -> float | None:
    if amount is None or not count:
        return None
    return amount / count


def _median(values: Sequence[Any]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None
