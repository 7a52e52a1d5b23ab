"""How sure a ratio between two runs is: a 95 % confidence interval from their repeated
trials, and the verdict it allows ("2.6× less", "no measurable difference", "too noisy").

Method (docs/comparing.md): each run's trials are windows named "trial-N". Where two runs'
trials were interleaved in rounds (benchmark_inference: metadata "trial_series", trial-N in
round N), the interval is a paired t-interval on the logarithms of the within-round ratios,
so drift of the machine common to a round cancels; otherwise the ratio is that of the
trials' geometric means and its interval Welch's t-interval on the logarithms of the
per-trial figures. Logs because energy is positive and its noise multiplicative: the
interval is symmetric in "× more" and "× less". Where either run was estimated rather than
measured and the two were not estimated by the same model on the same host, the
estimate's own band is added in quadrature, since it does not cancel.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from joulemeter.reports.units import units_counted

if TYPE_CHECKING:
    from joulemeter.meter.run import Run

#: Windows holding one repeated trial each, as `benchmark_inference` names them.
TRIAL_WINDOW = re.compile(r"trial-(\d+)")

#: Run metadata naming the series of rounds its trials ran in, shared by every run whose
#: trial-N ran in round N of the same interleaved benchmark: such runs are compared paired.
TRIAL_SERIES = "trial_series"

WELCH = "Welch t-interval on log per-trial figures"
PAIRED = "paired t-interval on log within-round ratios"

CONFIDENCE = 0.95

#: Two-sided 95 % critical values t(0.975, df) of Student's t distribution, from the
#: NIST/SEMATECH e-Handbook of Statistical Methods, 1.3.6.7.2 "Critical Values of the
#: Student's t Distribution" (https://www.itl.nist.gov/div898/handbook/eda/section3/eda3672.htm).
_T_975 = {
    1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
    9: 2.262, 10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120,
    17: 2.110, 18: 2.101, 19: 2.093, 20: 2.086, 21: 2.080, 22: 2.074, 23: 2.069, 24: 2.064,
    25: 2.060, 26: 2.056, 27: 2.052, 28: 2.048, 29: 2.045, 30: 2.042, 40: 2.021, 50: 2.009,
    60: 2.000, 100: 1.984,
}
_Z_975 = 1.960  # the same table's df = infinity row

#: An interval within ±10 % of 1 rules out any difference a reader would act on, so
#: "no measurable difference" is said only then; a wider one that still holds 1 is
#: "too noisy for a verdict". 10 % is also the target width of adaptive trials.
EQUIVALENCE_MARGIN = 1.10

#: Other processes taking more than this share of the machine's CPU during the trials
#: make the figures suspect, whatever the interval says; the verdict says so.
BUSY_MACHINE_LOAD = 0.10


def t_critical(df: float) -> float:
    """t(0.975, df), for Welch's non-integer df: the table's row at or below df (so the
    interval is never narrower than it should be), interpolated in 1/df past 30."""
    if not df >= 1:
        raise ValueError(f"degrees of freedom must be at least 1, got {df!r}")
    if df < 31:
        return _T_975[math.floor(df)]
    rows = sorted(_T_975)
    lo = max(r for r in rows if r <= df)
    hi = min((r for r in rows if r > df), default=math.inf)
    t_lo, t_hi = _T_975[lo], _T_975.get(hi, _Z_975)
    weight = (1 / lo - 1 / df) / (1 / lo - (0 if math.isinf(hi) else 1 / hi))
    return t_lo + (t_hi - t_lo) * weight


class Verdict(str, Enum):
    """What an interval allows one to say."""

    LESS = "less"  # the whole interval is below 1
    MORE = "more"  # the whole interval is above 1
    SAME = "no measurable difference"  # holds 1 and lies within EQUIVALENCE_MARGIN
    TOO_NOISY = "too noisy for a verdict"  # holds 1 but is too wide to rule a difference out


@dataclass(frozen=True)
class RatioInterval:
    """Candidate ÷ baseline over repeated trials, with its 95 % confidence interval."""

    ratio: float
    low: float
    high: float
    baseline_trials: int
    candidate_trials: int
    model_band_included: bool  # an estimate's band widened the interval
    other_cpu_load: float | None = None  # the larger share other processes took, either run
    method: str = WELCH  # or PAIRED, where the trials ran interleaved in rounds

    @property
    def relative_half_width(self) -> float:
        """Half the interval's width in log space, as a fraction (0.05: ±5 %)."""
        return math.sqrt(self.high / self.low) - 1

    @property
    def machine_busy(self) -> bool:
        """True when other processes took more than BUSY_MACHINE_LOAD of the CPU."""
        return self.other_cpu_load is not None and self.other_cpu_load > BUSY_MACHINE_LOAD

    @property
    def verdict(self) -> Verdict:
        if self.high < 1:
            return Verdict.LESS
        if self.low > 1:
            return Verdict.MORE
        if self.low >= 1 / EQUIVALENCE_MARGIN and self.high <= EQUIVALENCE_MARGIN:
            return Verdict.SAME
        return Verdict.TOO_NOISY

    @property
    def significant(self) -> bool:
        """True when the interval excludes 1: the difference was measured."""
        return self.verdict in (Verdict.LESS, Verdict.MORE)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ratio": self.ratio,
            "ci_low": self.low,
            "ci_high": self.high,
            "confidence": CONFIDENCE,
            "verdict": self.verdict.value,
            "baseline_trials": self.baseline_trials,
            "candidate_trials": self.candidate_trials,
            "model_band_included": self.model_band_included,
            "other_cpu_load": self.other_cpu_load,
            "method": self.method,
        }


class TrialFigures(list[float]):
    """One run's per-trial figures; where its trials ran interleaved with other runs',
    `series` names those rounds and `rounds` gives the round of each figure."""

    def __init__(
        self, values: Iterable[float] = (), *, series: str | None = None, rounds: Iterable[int] = ()
    ) -> None:
        super().__init__(values)
        self.series = series
        self.rounds = tuple(rounds)


def ratio_interval(
    baseline: Sequence[float],
    candidate: Sequence[float],
    *,
    model_band: tuple[float, float] | None = None,
    other_cpu_load: float | None = None,
) -> RatioInterval | None:
    """Candidate ÷ baseline and its 95 % interval, or None without at least 2 positive
    trials on each side: paired by round (paired_ratio_interval) where both are
    TrialFigures of one series, else the ratio of geometric means with Welch's interval.
    `model_band` (low, high factors, as in reports/data/uncertainty.csv) is an estimate's
    own band that does not cancel in the ratio: half its width in log space is added in
    quadrature to the trials' half-width. `other_cpu_load` is kept to say when the machine
    was busy."""
    pairs = _paired_by_round(baseline, candidate)
    if pairs is not None:
        return paired_ratio_interval(*pairs, model_band=model_band, other_cpu_load=other_cpu_load)
    base_logs = [math.log(v) for v in baseline if v is not None and v > 0]
    cand_logs = [math.log(v) for v in candidate if v is not None and v > 0]
    if len(base_logs) < 2 or len(cand_logs) < 2:
        return None
    n_b, n_c = len(base_logs), len(cand_logs)
    var_b, var_c = statistics.variance(base_logs) / n_b, statistics.variance(cand_logs) / n_c
    diff = statistics.fmean(cand_logs) - statistics.fmean(base_logs)
    trial_var = var_b + var_c
    if trial_var > 0:  # Welch-Satterthwaite
        df = trial_var**2 / (var_b**2 / (n_b - 1) + var_c**2 / (n_c - 1))
    else:
        df = float(n_b + n_c - 2)
    half = math.hypot(t_critical(df) * math.sqrt(trial_var), _band_half(model_band))
    return RatioInterval(
        ratio=math.exp(diff),
        low=math.exp(diff - half),
        high=math.exp(diff + half),
        baseline_trials=n_b,
        candidate_trials=n_c,
        model_band_included=bool(model_band),
        other_cpu_load=other_cpu_load,
    )


def paired_ratio_interval(
    baseline: Sequence[float | None],
    candidate: Sequence[float | None],
    *,
    model_band: tuple[float, float] | None = None,
    other_cpu_load: float | None = None,
) -> RatioInterval | None:
    """Candidate ÷ baseline from trials paired by position (one round each): the geometric
    mean of the within-round ratios and Student's t-interval (n - 1 df) on their logs, or
    None without 2 rounds where both figures are positive. A slow drift of the machine
    multiplies both trials of a round alike and cancels in their ratio. `model_band` and
    `other_cpu_load` as in ratio_interval."""
    logs = [
        math.log(c / b)
        for b, c in zip(baseline, candidate)
        if b is not None and c is not None and b > 0 and c > 0
    ]
    if len(logs) < 2:
        return None
    diff = statistics.fmean(logs)
    spread = t_critical(len(logs) - 1) * statistics.stdev(logs) / math.sqrt(len(logs))
    half = math.hypot(spread, _band_half(model_band))
    return RatioInterval(
        ratio=math.exp(diff),
        low=math.exp(diff - half),
        high=math.exp(diff + half),
        baseline_trials=len(logs),
        candidate_trials=len(logs),
        model_band_included=bool(model_band),
        other_cpu_load=other_cpu_load,
        method=PAIRED,
    )


def _paired_by_round(
    baseline: Sequence[float], candidate: Sequence[float]
) -> tuple[list[float | None], list[float | None]] | None:
    """Both runs' figures side by side round by round, where they ran in one series."""
    if not (isinstance(baseline, TrialFigures) and isinstance(candidate, TrialFigures)):
        return None
    if baseline.series is None or baseline.series != candidate.series:
        return None
    base, cand = dict(zip(baseline.rounds, baseline)), dict(zip(candidate.rounds, candidate))
    rounds = sorted(base.keys() | cand.keys())
    return [base.get(r) for r in rounds], [cand.get(r) for r in rounds]


def _band_half(model_band: tuple[float, float] | None) -> float:
    """Half an estimate's band in log space (0 without one)."""
    return math.log(model_band[1] / model_band[0]) / 2 if model_band else 0.0


def relative_half_width(values: Sequence[float]) -> float | None:
    """Half the 95 % interval of one run's geometric-mean figure, as a fraction (0.05: ±5 %),
    or None with fewer than 2 positive trials. Adaptive trials stop when it is small."""
    logs = [math.log(v) for v in values if v is not None and v > 0]
    if len(logs) < 2:
        return None
    return math.expm1(t_critical(len(logs) - 1) * statistics.stdev(logs) / math.sqrt(len(logs)))


def trial_figures(run: Run, unit: str | None, count: int = 1) -> TrialFigures:
    """The compared figure of each trial window of `run`: energy per `count` units of
    `unit` (as units_counted counts them), or total energy when `unit` is None, with the
    run's series of rounds where it has one. Trials without a figure are left out."""
    figures, rounds = [], []
    for window in run.windows:
        match = TRIAL_WINDOW.fullmatch(window.name)
        if match is None:
            continue
        if unit is None:
            value = window.total_energy_j
        else:
            counted = units_counted(window.units, unit)
            value = None if counted is None else window.total_energy_j / counted * count
        if value is not None and value > 0:
            figures.append(value)
            rounds.append(int(match.group(1)))
    series = run.metadata.get(TRIAL_SERIES)
    return TrialFigures(figures, series=series if isinstance(series, str) else None, rounds=rounds)
