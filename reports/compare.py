"""Comparisons between runs: side-by-side figures, ratios to a baseline, Pareto frontier,
the break-even of a compressed model, and carbontracker-style training prediction.

The figures are computed here; their words (phrases, texts) come from
joulemeter.reports.render.wording. pandas is imported inside the functions that build
frames, so importing this is cheap.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from joulemeter.meter.errors import ReportError
from joulemeter.meter.run import Provenance, Run
from joulemeter.reports.accounting import Footprint, footprint, provenance_band, scope2
from joulemeter.reports.confidence import RatioInterval, ratio_interval, trial_figures
from joulemeter.reports.factors import Factors, factors_for_run, resolve_factors
from joulemeter.reports.scope2 import MarketInstruments
from joulemeter.reports.render import frame_records
from joulemeter.reports.render.wording import (
    break_even_text,
    comparison_phrase,
    prediction_text,
    unit_notes,
)
from joulemeter.reports.units import TOKENS, units_counted

if TYPE_CHECKING:
    import pandas

# `per` option -> (units looked for in run.units, in order of preference; how many of them)
_PER_UNITS: dict[str, tuple[tuple[str, ...], int]] = {
    "sample": (("samples",), 1),
    "token": ((TOKENS,), 1),  # an LLM run's input + output tokens where it counted no tokens
    "inference": (("inferences", "requests", "samples"), 1),
    "1000": (("inferences", "requests", "samples"), 1000),
}
PER_CHOICES = tuple(_PER_UNITS)

# metadata keys shown first, in this order, when any run has them
_KNOWN_METADATA = (
    "accuracy",
    "parameters",
    "nonzero_parameters",
    "size_on_disk_bytes",
    "latency_p50_s",
    "latency_p99_s",
    "precision",
)


@dataclass
class Comparison:
    """Runs side by side (`frame`, one row per run) and readable ratios to the baseline.

    `per_column` names the per-unit energy column (e.g. "energy_per_1000_j", J per 1,000
    inferences) or is None when runs are compared on total energy; `ratio` in the frame
    is each run's compared figure divided by the baseline's.
    """

    frame: pandas.DataFrame
    phrases: list[str]
    baseline_id: str
    per: str | None
    per_column: str | None
    per_label: str  # "per 1,000 inferences", or "" for total energy
    metadata_columns: list[str] = field(default_factory=list)  # run.metadata keys shown
    footprints: dict[str, Footprint] = field(default_factory=dict)
    factors: Factors | None = None  # the baseline's (every run's, unless they ran on different grids)
    intervals: dict[str, RatioInterval | None] = field(default_factory=dict)  # run id -> CI
    trials: dict[str, list[float]] = field(default_factory=dict)  # run id -> per-trial figures
    factors_by_run: dict[str, Factors] = field(default_factory=dict)  # run id -> the factors it was given
    notes: list[str] = field(default_factory=list)  # how the units compared were counted, where it matters

    @property
    def same_factors(self) -> bool:
        """Whether every run was accounted with the same factors (one grid, one PUE, one price)."""
        return len(set(self.factors_by_run.values())) <= 1

    def frontier(self, y: str = "accuracy") -> pandas.Series:
        """The Pareto frontier of `y` against the compared figure, where two runs whose
        trials show no measurable difference count as equal on it."""
        ids = list(self.frame["id"])

        def tied(i: int, j: int) -> bool:
            ci = ratio_interval(self.trials.get(ids[i], []), self.trials.get(ids[j], []))
            return ci is not None and not ci.significant

        return pareto_frontier(self.frame, x=self.compared_column, y=y, x_tied=tied)

    def interval(self, run_id: str) -> RatioInterval | None:
        """The 95 % interval of a run's ratio to the baseline, None without repeated trials."""
        return self.intervals.get(run_id)

    @property
    def compared_column(self) -> str:
        """The frame column the ratios are computed on."""
        return self.per_column or "energy_j"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: rows in SI units with provenance, phrases, and the factors with sources."""
        return {
            "baseline_id": self.baseline_id,
            "per": self.per,
            "per_column": self.per_column,
            "per_label": self.per_label,
            "metadata_columns": list(self.metadata_columns),
            "rows": frame_records(self.frame),
            "phrases": list(self.phrases),
            "notes": list(self.notes),
            "intervals": {
                run_id: None if ci is None else ci.to_dict() for run_id, ci in self.intervals.items()
            },
            "factors": self.factors.to_dict() if self.factors is not None else None,
            "factors_by_run": {run_id: f.to_dict() for run_id, f in self.factors_by_run.items()},
        }


def compare(
    runs: Sequence[Run],
    baseline: Run | str | None = None,
    *,
    per: str | None = None,
    factors: Factors | Mapping[str, Factors] | None = None,
    market: MarketInstruments | None = None,
) -> Comparison:
    """Compare runs side by side against a baseline (a Run, added first if not among
    `runs`; an id, id prefix or name; the first run by default), optionally per unit of
    work ("sample", "token", "inference" or "1000": J per 1,000 inferences or samples).

    `factors`: one set for every run, one per run id, or None for each run's own location
    (factors_for_run). `kg_co2e` is location-based Scope 2; `kg_co2e_market` the
    market-based figure from `market` (the grid average, labelled, without one)."""
    import pandas

    runs = list(runs)
    if not runs:
        raise ReportError("nothing to compare: give at least one run")
    base = _resolve_baseline(runs, baseline)
    if all(run is not base for run in runs):
        runs.insert(0, base)
    by_run = _factors_by_run(runs, factors)
    unit, per_column, per_label = _per_unit(runs, per)
    count = _PER_UNITS[per][1] if per else 1

    footprints = {run.id: footprint(run, by_run[run.id]) for run in runs}
    rows = [_row(run, footprints[run.id], unit, count, per_column, by_run[run.id]) for run in runs]
    for row, run in zip(rows, runs):
        row["region"] = by_run[run.id].region
        row["kg_co2e_market"] = scope2(footprints[run.id], market=market).market_kg
        if per_column is not None:  # the whole run's market-based figure shared by its units
            counted = row.get("units_counted")
            row[market_per_unit_column(per_column)] = (
                None if not counted or row["kg_co2e_market"] is None else row["kg_co2e_market"] / counted * count)
    frame = pandas.DataFrame(rows)
    metadata_columns = _metadata_columns(runs)
    for key in metadata_columns:
        frame[key] = [run.metadata.get(key) for run in runs]

    compared = per_column or "energy_j"
    base_value = frame.loc[next(i for i, run in enumerate(runs) if run is base), compared]
    ratios = [_ratio(v, base_value) for v in frame[compared]]
    frame["ratio"] = ratios
    trials = {run.id: trial_figures(run, unit, count) for run in runs}
    intervals = {run.id: _interval(base, run, trials, footprints) for run in runs if run is not base}
    frame["ratio_ci_low"] = [None if (ci := intervals.get(r.id)) is None else ci.low for r in runs]
    frame["ratio_ci_high"] = [None if (ci := intervals.get(r.id)) is None else ci.high for r in runs]
    frame["verdict"] = [None if (ci := intervals.get(r.id)) is None else ci.verdict.value for r in runs]
    phrases = [
        comparison_phrase(
            run,
            base,
            ratio=ratios[i],
            interval=intervals[run.id],
            has_value=not _missing(frame.loc[i, compared]),
            base_has_value=not _missing(base_value),
            base_value=base_value,
            unit=unit,
            per_label=per_label,
            provenance=footprints[run.id].provenance,
            base_provenance=footprints[base.id].provenance,
        )
        for i, run in enumerate(runs)
        if run is not base
    ]
    return Comparison(
        frame,
        phrases,
        base.id,
        per,
        per_column,
        per_label,
        metadata_columns,
        footprints,
        by_run[base.id],
        intervals,
        trials,
        by_run,
        unit_notes(runs, unit),
    )


def _factors_by_run(runs: Sequence[Run], factors: Factors | Mapping[str, Factors] | None) -> dict[str, Factors]:
    """Each run's factors: the one set given, its entry in a mapping, else where it ran."""
    if isinstance(factors, Factors):
        return {run.id: factors for run in runs}
    given = factors or {}
    return {run.id: given.get(run.id) or factors_for_run(run) for run in runs}


def _interval(
    base: Run, run: Run, trials: dict[str, list[float]], footprints: dict[str, Footprint]
) -> RatioInterval | None:
    """`run` ÷ `base` over their trial windows, widened by an estimate's band where it does
    not cancel: the two were measured differently, or on different hosts."""
    kinds = {footprints[base.id].provenance, footprints[run.id].provenance}
    same_host = base.host.get("hostname") == run.host.get("hostname") and base.host.get(
        "cpu_model"
    ) == run.host.get("cpu_model")
    bands = [b for kind in kinds if (b := provenance_band(Provenance(kind))) is not None]
    cancels = len(kinds) == 1 and same_host
    model_band = None if cancels or not bands else (min(b[0] for b in bands), max(b[1] for b in bands))
    loads = [r.metadata.get("other_cpu_load") for r in (base, run)]
    known_loads = [float(x) for x in loads if isinstance(x, (int, float)) and math.isfinite(x)]
    return ratio_interval(
        trials[base.id],
        trials[run.id],
        model_band=model_band,
        other_cpu_load=max(known_loads, default=None),
    )


def pareto_frontier(
    frame: pandas.DataFrame,
    x: str = "energy_per_1000_j",
    y: str = "accuracy",
    minimize_x: bool = True,
    maximize_y: bool = True,
    x_tied: Callable[[int, int], bool] | None = None,
) -> pandas.Series:
    """True for rows no other row beats on both columns (at least as good on both and
    better on one); rows missing either value are never on the frontier. `x_tied(i, j)`
    (row positions) says two x values differ by less than was measured: equal, then."""
    import numpy
    import pandas

    for column in (x, y):
        if column not in frame.columns:
            raise ReportError(
                f"no column {column!r} to draw a Pareto frontier on; "
                f"choose among {', '.join(map(str, frame.columns))}"
            )
    a = pandas.to_numeric(frame[x], errors="coerce").to_numpy(dtype=float)
    b = pandas.to_numeric(frame[y], errors="coerce").to_numpy(dtype=float)
    a = a if minimize_x else -a  # both now "smaller is better"
    b = -b if maximize_y else b
    known = ~(numpy.isnan(a) | numpy.isnan(b))
    a_i, a_j = a[:, None], a[None, :]
    b_i, b_j = b[:, None], b[None, :]
    n = len(a)
    tied = numpy.array([[x_tied is not None and i != j and x_tied(i, j) for j in range(n)] for i in range(n)],
                       dtype=bool).reshape(n, n)
    x_at_least = (a_j <= a_i) | tied
    x_better = (a_j < a_i) & ~tied
    beaten_by = x_at_least & (b_j <= b_i) & (x_better | (b_j < b_i)) & known[None, :]
    on_frontier = known & ~beaten_by.any(axis=1)
    return pandas.Series(on_frontier, index=frame.index, name="pareto")


@dataclass(frozen=True)
class BreakEven:
    """After how many inferences producing a compressed model pays for itself.

    Counts are exact quotients (not rounded); None where the saving is not positive or
    the figure is unknown (no electricity price, no grid intensity).
    """

    extra_energy_j: float
    saving_per_inference_j: float
    inferences_for_energy: float | None
    inferences_for_co2e: float | None
    inferences_for_cost: float | None
    currency: str | None
    text: str

    @property
    def never(self) -> bool:
        """True when the compressed model saves nothing per inference."""
        return self.inferences_for_energy is None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "never": self.never}


def break_even(
    extra_energy_j: float, saving_per_inference_j: float, factors: Factors | None = None
) -> BreakEven:
    """Inferences after which the energy spent producing a compressed model (fine-tuning,
    distillation) is paid back by its saving per inference, in energy, CO2e and cost."""
    for label, value in (("extra energy", extra_energy_j), ("saving", saving_per_inference_j)):
        if not math.isfinite(value):
            raise ReportError(f"{label} must be a finite number of joules, got {value!r}")
    if extra_energy_j < 0:
        raise ReportError(
            f"extra energy must be ≥ 0 J, got {extra_energy_j!r}; it is the energy spent "
            "producing the compressed model (fine-tuning, distillation)"
        )
    factors = factors or resolve_factors()
    if saving_per_inference_j <= 0:
        text = break_even_text(extra_energy_j, saving_per_inference_j, None)
        return BreakEven(
            extra_energy_j, saving_per_inference_j, None, None, None, factors.currency, text
        )
    spent = footprint(extra_energy_j, factors)
    saved = footprint(saving_per_inference_j, factors)
    energy_count = extra_energy_j / saving_per_inference_j
    co2e_count = quotient(spent.kg_co2e, saved.kg_co2e)
    cost_count = quotient(spent.cost, saved.cost)
    text = break_even_text(extra_energy_j, saving_per_inference_j, energy_count)
    return BreakEven(
        extra_energy_j,
        saving_per_inference_j,
        energy_count,
        co2e_count,
        cost_count,
        factors.currency,
        text,
    )


@dataclass(frozen=True)
class TrainingPrediction:
    """A whole training's energy and duration extrapolated from its completed epochs
    (mean per completed epoch × total epochs, as carbontracker does)."""

    run_id: str
    completed_epochs: int
    total_epochs: int
    energy_per_epoch_j: float
    duration_per_epoch_s: float
    predicted_energy_j: float
    predicted_duration_s: float
    measured_provenance: Provenance | None  # how the completed epochs were measured
    footprint: Footprint

    @property
    def remaining_energy_j(self) -> float:
        return self.energy_per_epoch_j * (self.total_epochs - self.completed_epochs)

    @property
    def remaining_duration_s(self) -> float:
        return self.duration_per_epoch_s * (self.total_epochs - self.completed_epochs)

    @property
    def text(self) -> str:
        return prediction_text(self)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "completed_epochs": self.completed_epochs,
            "total_epochs": self.total_epochs,
            "energy_per_epoch_j": self.energy_per_epoch_j,
            "duration_per_epoch_s": self.duration_per_epoch_s,
            "predicted_energy_j": self.predicted_energy_j,
            "predicted_duration_s": self.predicted_duration_s,
            "remaining_energy_j": self.remaining_energy_j,
            "remaining_duration_s": self.remaining_duration_s,
            "provenance": Provenance.ESTIMATED.value,
            "measured_provenance": (
                self.measured_provenance.value if self.measured_provenance else None
            ),
            "footprint": self.footprint.to_dict(),
            "text": self.text,
        }


def predict_training(
    run: Run,
    total_epochs: int,
    *,
    window_prefix: str = "epoch",
    factors: Factors | None = None,
) -> TrainingPrediction:
    """Predict a training's energy from the windows named `window_prefix…` that ended."""
    if total_epochs < 1:
        raise ReportError(f"total_epochs must be at least 1, got {total_epochs}")
    epochs = [
        w for w in run.windows if w.name.startswith(window_prefix) and w.end_s is not None
    ]
    if not epochs:
        raise ReportError(
            f"run {run.id[:8]} has no completed window named {window_prefix!r}…; open one "
            f"per epoch with meter.window({window_prefix!r}) or pass window_prefix"
        )
    if len(epochs) > total_epochs:
        raise ReportError(
            f"run {run.id[:8]} already completed {len(epochs)} epochs, more than the "
            f"{total_epochs} asked for; pass the real total"
        )
    energy_per_epoch = sum(w.total_energy_j for w in epochs) / len(epochs)
    duration_per_epoch = sum(w.duration_s or 0.0 for w in epochs) / len(epochs)
    predicted = energy_per_epoch * total_epochs
    return TrainingPrediction(
        run_id=run.id,
        completed_epochs=len(epochs),
        total_epochs=total_epochs,
        energy_per_epoch_j=energy_per_epoch,
        duration_per_epoch_s=duration_per_epoch,
        predicted_energy_j=predicted,
        predicted_duration_s=duration_per_epoch * total_epochs,
        measured_provenance=run.provenance,
        footprint=footprint(
            predicted, factors or resolve_factors(), provenance=Provenance.ESTIMATED.value
        ),
    )


# -- helpers ---------------------------------------------------------------------------


def _resolve_baseline(runs: list[Run], baseline: Run | str | None) -> Run:
    if baseline is None:
        return runs[0]
    if isinstance(baseline, Run):
        return next((r for r in runs if r.id == baseline.id), baseline)
    exact = [r for r in runs if baseline in (r.id, r.name)]
    prefix = [r for r in runs if r.id.startswith(baseline)]
    matches = exact or prefix
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(f"{r.id[:8]} ({r.name})" for r in runs)
    why = "matches several runs" if matches else "matches none of the runs compared"
    raise ReportError(f"baseline {baseline!r} {why}; give one of: {known}")


def default_per(runs: Sequence[Run]) -> str | None:
    """The fairest `per` when none is asked for: per 1,000 inferences (or samples) when every
    run counted them, per token when every run counted tokens (an LLM run's input + output
    tokens, units_counted), else whole runs (None).

    Runs of different lengths are not comparable in total energy, so a demanding reader
    wants the unit of work whenever every run recorded one."""
    if not runs:
        return None
    for per in ("1000", "token"):
        if any(all(units_counted(run.units, unit) for run in runs) for unit in _PER_UNITS[per][0]):
            return per
    return None


def _per_unit(runs: list[Run], per: str | None) -> tuple[str | None, str | None, str]:
    """The unit counted, the frame column and the label for `per`."""
    if per is None:
        return None, None, ""
    if per not in _PER_UNITS:
        raise ReportError(
            f"unknown unit {per!r} to compare per; choose one of {', '.join(_PER_UNITS)}, "
            "or compare whole runs",
            parameter="per",
        )
    candidates, count = _PER_UNITS[per]
    counted = [u for u in candidates if any(units_counted(r.units, u) for r in runs)]
    in_all = [u for u in counted if all(units_counted(r.units, u) for r in runs)]
    if not counted:
        raise ReportError(
            f"none of the runs counted {' or '.join(candidates)}; count units of work with "
            "meter.count(...) or compare whole runs",
            parameter="per",
        )
    unit = (in_all or counted)[0]
    label = f"per 1,000 {unit}" if count == 1000 else f"per {unit.removesuffix('s')}"
    return unit, f"energy_per_{per}_j", label


def _row(
    run: Run,
    fp: Footprint,
    unit: str | None,
    count: int,
    per_column: str | None,
    factors: Factors,
) -> dict[str, Any]:
    """One run's figures; per unit of work, its CO2e and cost too (`per_unit_columns`)."""
    row: dict[str, Any] = {
        "id": run.id,
        "name": run.name,
        "variant": run.metadata.get("variant"),
        "provenance": fp.provenance,
        "energy_j": run.total_energy_j,
        "energy_kwh": fp.energy_kwh,
        "duration_s": run.duration_s,
        "avg_power_w": run.avg_power_w,
    }
    if per_column is not None and unit is not None:
        counted = units_counted(run.units, unit)
        row[per_column] = None if counted is None else run.total_energy_j / counted * count
        row["units_counted"] = counted
    row["kg_co2e"] = fp.kg_co2e
    row["cost"] = fp.cost
    row["currency"] = fp.currency
    if per_column is not None:
        co2e_column, cost_column = per_unit_columns(per_column)
        per_unit_j = row[per_column]
        per_unit = None if per_unit_j is None else footprint(per_unit_j, factors, provenance=fp.provenance)
        row[co2e_column] = None if per_unit is None else per_unit.kg_co2e
        row[cost_column] = None if per_unit is None else per_unit.cost
    return row


def per_unit_columns(per_column: str) -> tuple[str, str]:
    """The CO2e and cost columns that go with a per-unit energy column:
    "energy_per_1000_j" -> ("kg_co2e_per_1000", "cost_per_1000")."""
    per = per_column.removeprefix("energy_per_").removesuffix("_j")
    return f"kg_co2e_per_{per}", f"cost_per_{per}"


def market_per_unit_column(per_column: str) -> str:
    """The market-based CO2e column per unit: "energy_per_1000_j" -> "kg_co2e_market_per_1000"."""
    return f"kg_co2e_market_per_{per_column.removeprefix('energy_per_').removesuffix('_j')}"


def _metadata_columns(runs: list[Run]) -> list[str]:
    """Scalar metadata keys any run has: the known ones first, then the rest by name."""
    present = {
        key
        for run in runs
        for key, value in run.metadata.items()
        if key != "variant" and isinstance(value, (int, float, str, bool))
    }
    known = [k for k in _KNOWN_METADATA if k in present]
    return known + sorted(present - set(known))


def _ratio(value: Any, base_value: Any) -> float | None:
    if _missing(value) or _missing(base_value) or base_value == 0:
        return None
    return float(value) / float(base_value)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def quotient(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, None where either is unknown or the denominator is 0."""
    if numerator is None or not denominator:
        return None
    return numerator / denominator
