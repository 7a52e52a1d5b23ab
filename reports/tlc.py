"""The "train large, then compress" question (Li et al. 2020, arXiv:2002.11794) as
figures: for one training energy budget, a small model against a larger one and its
compressed variants, each with its accuracy (95 % interval), inference energy per 1,000
queries (ratio to the small model with its interval over repeated trials) and lifecycle
energy (training + compression + N queries), and whether the premise held.

The premise, as tested here: with the same training energy, the larger model, once
compressed, is more accurate than the small one at no more inference energy. For each
compressed variant it
- held: accuracy measurably higher (the interval of the difference lies above 0) and
  energy per query measurably less or no different;
- held for accuracy only: measurably more accurate, but measurably dearer per query;
- did not hold: measurably less accurate, or no more accurate and measurably dearer;
- inconclusive otherwise.
Over the variants: the best of held, held for accuracy only; did not hold when every
variant did not; else inconclusive.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass

from joulemeter.meter.errors import ReportError
from joulemeter.meter.run import Run
from joulemeter.reports.compression import CompressionSummary, VariantFigures, summarise_compression
from joulemeter.reports.confidence import _Z_975, RatioInterval, Verdict
from joulemeter.reports.factors import Factors


class Premise(str, enum.Enum):
    HELD = "held"
    ACCURACY_ONLY = "held for accuracy, not for inference energy"
    NOT_HELD = "did not hold"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class Proportion:
    """A share measured on n items with its 95 % Wilson score interval (Wilson 1927;
    Newcombe 1998, Statistics in Medicine 17:857, method 3)."""

    value: float
    n: int

    @property
    def interval(self) -> tuple[float, float]:
        p, n, z = self.value, self.n, _Z_975
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        return max(centre - half, 0.0), min(centre + half, 1.0)


def difference_interval(a: Proportion, b: Proportion) -> tuple[float, float]:
    """95 % interval of a − b from the two Wilson intervals (Newcombe 1998, Statistics in
    Medicine 17:873, method 10). It treats the samples as independent; on one shared test
    set, whose errors correlate, it errs wide."""
    (la, ua), (lb, ub) = a.interval, b.interval
    d = a.value - b.value
    return d - math.hypot(a.value - la, ub - b.value), d + math.hypot(ua - a.value, b.value - lb)


@dataclass(frozen=True)
class ModelFigures:
    """One model of the experiment: a trained one ("small", "large") or a variant of one."""

    figures: VariantFigures  # inference: energy per query, ratio and interval against small
    trained_from: str  # the trained model it comes from
    training: Run  # that model's training run
    production: Run | None  # compressing it; None for the trained models themselves
    accuracy: Proportion | None
    queries: float

    @property
    def name(self) -> str:
        return self.figures.variant

    @property
    def lifecycle_energy_j(self) -> float | None:
        """Training + compression + `queries` × energy per query."""
        per_query = self.figures.energy_per_inference_j
        if per_query is None:
            return None
        made = 0.0 if self.production is None else self.production.total_energy_j
        return self.training.total_energy_j + made + self.queries * per_query


@dataclass
class TLCSummary:
    """The experiment's figures and verdicts against the small model."""

    baseline: str
    large: str
    budget_j: float
    queries: float
    models: list[ModelFigures]
    compression: CompressionSummary

    def model(self, name: str) -> ModelFigures:
        return next(m for m in self.models if m.name == name)

    @property
    def small(self) -> ModelFigures:
        return self.model(self.baseline)

    @property
    def compressed(self) -> list[ModelFigures]:
        return [m for m in self.models if m.production is not None]

    def accuracy_difference(self, model: ModelFigures) -> tuple[float, float] | None:
        """95 % interval of the model's accuracy minus the small model's."""
        if model.accuracy is None or self.small.accuracy is None:
            return None
        return difference_interval(model.accuracy, self.small.accuracy)

    def lifecycle_interval(self, model: ModelFigures) -> RatioInterval | None:
        """The lifecycle energy ratio to the small model, with the interval its per-query
        ratio gives; training and compression were metered once (no trials), so only the
        serving term carries an interval."""
        interval = model.figures.interval
        small = self.small
        per_query = small.figures.energy_per_inference_j
        if interval is None or per_query is None or small.lifecycle_energy_j is None:
            return None
        fixed = model.training.total_energy_j + (
            0.0 if model.production is None else model.production.total_energy_j
        )

        def lifecycle_ratio(ratio: float) -> float:
            return (fixed + self.queries * per_query * ratio) / small.lifecycle_energy_j

        return RatioInterval(
            ratio=lifecycle_ratio(interval.ratio),
            low=lifecycle_ratio(interval.low),
            high=lifecycle_ratio(interval.high),
            baseline_trials=interval.baseline_trials,
            candidate_trials=interval.candidate_trials,
            model_band_included=interval.model_band_included,
            other_cpu_load=interval.other_cpu_load,
            method=interval.method,
        )

    def break_even_queries(self, model: ModelFigures) -> float | None:
        """Queries after which the model's lifecycle energy equals the small model's (None
        when the lines never cross): (its fixed energy − small's) ÷ (small's − its per query)."""
        e_small, e_model = self.small.figures.energy_per_inference_j, model.figures.energy_per_inference_j
        if e_small is None or e_model is None or e_small == e_model:
            return None
        fixed_model = model.training.total_energy_j + (
            0.0 if model.production is None else model.production.total_energy_j
        )
        n = (fixed_model - self.small.training.total_energy_j) / (e_small - e_model)
        return n if n > 0 else None

    def holds_for(self, model: ModelFigures) -> Premise:
        """The premise for one compressed variant (see the module docstring)."""
        difference = self.accuracy_difference(model)
        interval = model.figures.interval
        if difference is None or interval is None:
            return Premise.INCONCLUSIVE
        low, high = difference
        energy = interval.verdict
        if low > 0 and energy in (Verdict.LESS, Verdict.SAME):
            return Premise.HELD
        if low > 0 and energy is Verdict.MORE:
            return Premise.ACCURACY_ONLY
        if high < 0 or (low <= 0 and energy is Verdict.MORE):
            return Premise.NOT_HELD
        return Premise.INCONCLUSIVE

    @property
    def premise(self) -> Premise:
        """The best verdict of a compressed variant (HELD, then ACCURACY_ONLY), NOT_HELD when
        every variant's is, else INCONCLUSIVE."""
        verdicts = [self.holds_for(m) for m in self.compressed]
        for best in (Premise.HELD, Premise.ACCURACY_ONLY):
            if best in verdicts:
                return best
        if verdicts and all(v is Premise.NOT_HELD for v in verdicts):
            return Premise.NOT_HELD
        return Premise.INCONCLUSIVE


def summarise_tlc(
    inference_runs: Sequence[Run],
    training_runs: Sequence[Run],
    production_runs: Sequence[Run] = (),
    *,
    baseline: str = "small",
    large: str = "large",
    budget_j: float,
    queries: float,
    test_size: int,
    factors: Factors | None = None,
    skipped: dict[str, str] | None = None,
) -> TLCSummary:
    """Match runs by metadata "variant": training runs (kind "training") of `baseline` and
    `large`, production runs (kind "production") of each compressed variant, whose
    metadata "trained_from" names the model it compresses, and one inference run each
    with its accuracy on `test_size` held-out examples."""
    if queries < 0 or test_size < 1:
        raise ReportError(f"need queries ≥ 0 and a test set; got {queries} and {test_size}")
    trained = {r.metadata.get("variant"): r for r in training_runs}
    missing = {baseline, large} - set(trained)
    if missing:
        raise ReportError(f"no training run of {', '.join(sorted(missing))}")
    made = {r.metadata.get("variant"): r for r in production_runs}
    compression = summarise_compression(
        inference_runs, baseline=baseline, queries_per_day=queries, days=1, factors=factors,
        skipped=skipped,
    )
    models = []
    for figures in compression.variants:
        production = made.get(figures.variant)
        source = (
            figures.variant
            if production is None
            else str(production.metadata.get("trained_from", large))
        )
        if source not in trained:
            raise ReportError(f"{figures.variant} comes from {source!r}, which has no training run")
        models.append(
            ModelFigures(
                figures=figures,
                trained_from=source,
                training=trained[source],
                production=production,
                accuracy=None if figures.accuracy is None else Proportion(figures.accuracy, test_size),
                queries=queries,
            )
        )
    return TLCSummary(baseline, large, budget_j, queries, models, compression)
