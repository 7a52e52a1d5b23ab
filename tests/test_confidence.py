"""The ratio interval covers the truth at its nominal rate and gives the verdicts it should."""

from __future__ import annotations

import math
import random

import pytest

from joulemeter.reports.confidence import (
    EQUIVALENCE_MARGIN,
    PAIRED,
    TRIAL_SERIES,
    WELCH,
    TrialFigures,
    Verdict,
    paired_ratio_interval,
    ratio_interval,
    relative_half_width,
    t_critical,
    trial_figures,
)


def _trials(rng: random.Random, mean: float, noise: float, n: int) -> list[float]:
    """n trial figures with multiplicative noise (log-normal, sd `noise` in log space)."""
    return [mean * math.exp(rng.gauss(0, noise)) for _ in range(n)]


@pytest.mark.parametrize("df", [1, 2, 3.7, 5, 12.2, 29.9, 30, 33.3, 45, 75, 100, 250])
def test_t_critical_matches_scipy_at_or_above_the_exact_value(df: float) -> None:
    stats = pytest.importorskip("scipy.stats")
    exact = float(stats.t.ppf(0.975, df))
    assert exact <= t_critical(df) + 5e-4  # the table never makes the interval too narrow
    assert t_critical(df) <= float(stats.t.ppf(0.975, math.floor(df))) + 5e-4


@pytest.mark.parametrize(("true_ratio", "noise", "n"), [(2.6, 0.10, 5), (1.0, 0.05, 3), (0.4, 0.3, 8)])
def test_interval_covers_the_true_ratio_at_about_95_percent(true_ratio: float, noise: float, n: int) -> None:
    rng = random.Random(20261202)
    replications = 2000
    covered = 0
    for _ in range(replications):
        base = _trials(rng, 10.0, noise, n)
        cand = _trials(rng, 10.0 * true_ratio, noise, n)
        interval = ratio_interval(base, cand)
        assert interval is not None
        covered += interval.low <= true_ratio <= interval.high
    # binomial sd at p = 0.95 over 2,000 replications is 0.5 %: allow 3 sd below, and the
    # table's rounding down of Welch's df makes it slightly conservative above
    assert 0.935 <= covered / replications <= 0.975


def test_identical_traces_give_no_measurable_difference() -> None:
    trace = [12.1, 12.4, 11.9, 12.2, 12.0]
    interval = ratio_interval(trace, list(trace))
    assert interval is not None
    assert interval.ratio == pytest.approx(1.0)
    assert interval.verdict is Verdict.SAME
    assert not interval.significant


def test_a_real_difference_is_called_in_its_direction() -> None:
    base = [20.0, 20.5, 19.6, 20.2]
    less = ratio_interval(base, [x / 2.6 for x in (20.1, 19.8, 20.4, 20.0)])
    more = ratio_interval(base, [x * 1.5 for x in (20.1, 19.8, 20.4, 20.0)])
    assert less is not None and less.verdict is Verdict.LESS and less.high < 1
    assert more is not None and more.verdict is Verdict.MORE and more.low > 1


def test_wide_interval_holding_one_is_too_noisy_not_the_same() -> None:
    rng = random.Random(7)
    interval = ratio_interval(_trials(rng, 10, 0.5, 3), _trials(rng, 10, 0.5, 3))
    assert interval is not None
    assert interval.low < 1 < interval.high
    assert interval.high > EQUIVALENCE_MARGIN or interval.low < 1 / EQUIVALENCE_MARGIN
    assert interval.verdict is Verdict.TOO_NOISY


def test_an_estimate_band_that_does_not_cancel_widens_the_interval() -> None:
    base, cand = [10.0, 10.2, 9.9], [5.0, 5.1, 4.9]
    narrow = ratio_interval(base, cand)
    wide = ratio_interval(base, cand, model_band=(0.63, 1.08))
    assert narrow is not None and wide is not None
    assert wide.low < narrow.low and wide.high > narrow.high
    assert wide.ratio == pytest.approx(narrow.ratio)
    assert wide.model_band_included and not narrow.model_band_included


def test_fewer_than_two_trials_give_no_interval() -> None:
    assert ratio_interval([1.0], [2.0, 2.1]) is None
    assert ratio_interval([1.0, 0.0, -1.0], [2.0, 2.1]) is None  # only positive figures count
    assert relative_half_width([3.0]) is None


def test_relative_half_width_shrinks_with_more_trials() -> None:
    rng = random.Random(3)
    few = relative_half_width(_trials(rng, 10, 0.1, 3))
    many = relative_half_width(_trials(rng, 10, 0.1, 30))
    assert few is not None and many is not None and many < few


def test_a_busy_machine_is_said_once_per_comparison() -> None:
    from joulemeter.reports.render.wording import machine_load_note, verdict_words

    quiet = ratio_interval([10.0, 10.1], [5.0, 5.1], other_cpu_load=0.02)
    busy = ratio_interval([10.0, 10.1], [5.0, 5.1], other_cpu_load=0.35)
    assert quiet is not None and busy is not None
    assert not quiet.machine_busy and machine_load_note([quiet, None]) is None
    assert busy.machine_busy
    assert machine_load_note([quiet, busy]).startswith("Other processes took up to 35% of the CPU")
    assert verdict_words(busy.ratio, busy).startswith("2.0× less (")
    assert verdict_words(0.5, None) == "2.0× less (one measurement)"


def test_the_interval_is_said_in_the_verdicts_own_terms() -> None:
    """'2.5× less (95 % CI 2.4–2.6× less)', never '2.5× less (95 % CI 0.38×–0.42×)'."""
    import re

    from joulemeter.reports.render.wording import interval_text, ratio_words

    less = ratio_interval([10.0, 10.2, 9.9], [4.0, 4.1, 3.9])
    assert less is not None
    text = interval_text(less)
    low, high = map(float, re.fullmatch(r"95 % CI ([\d.]+)–([\d.]+)× less", text).groups())
    headline = float(ratio_words(less.ratio).split("×")[0])
    assert low <= headline <= high


@pytest.mark.parametrize(("low", "high", "said"), [
    (0.90, 0.94, "1.06–1.11× less"),  # two figures would say "1.1–1.1× less"
    (0.30, 0.40, "2.5–3.3× less"),
    (0.97, 1.03, "0.97–1.0×"),
    (1.001, 1.002, "1.001–1.002× more"),
])
def test_an_intervals_ends_never_read_alike(low: float, high: float, said: str) -> None:
    from joulemeter.reports.confidence import RatioInterval
    from joulemeter.reports.render.wording import interval_text

    interval = RatioInterval(ratio=(low * high) ** 0.5, low=low, high=high, baseline_trials=5,
                             candidate_trials=5, model_band_included=False)
    assert interval_text(interval) == f"95 % CI {said}"


# -- trials paired by round ------------------------------------------------------------


def _rounds(rng: random.Random, true_ratio: float, n: int, drift: float, noise: float) -> tuple[list[float], list[float]]:
    """n rounds of (baseline, candidate): a machine state common to both trials of a round
    (log-normal, sd `drift`, plus a trend) times each trial's own noise (sd `noise`)."""
    base, cand = [], []
    for r in range(n):
        machine = math.exp(rng.gauss(0, drift) + 0.05 * r)
        base.append(10.0 * machine * math.exp(rng.gauss(0, noise)))
        cand.append(10.0 * true_ratio * machine * math.exp(rng.gauss(0, noise)))
    return base, cand


@pytest.mark.parametrize(("true_ratio", "n", "drift", "noise"), [(1.0, 3, 0.3, 0.05), (0.4, 6, 0.5, 0.1), (2.6, 4, 0.2, 0.02)])
def test_paired_interval_covers_the_true_ratio_at_about_95_percent(
    true_ratio: float, n: int, drift: float, noise: float
) -> None:
    rng = random.Random(20261203)
    replications = 2000
    covered = 0
    for _ in range(replications):
        interval = paired_ratio_interval(*_rounds(rng, true_ratio, n, drift, noise))
        assert interval is not None and interval.method == PAIRED
        covered += interval.low <= true_ratio <= interval.high
    # the paired t-interval is exact for log-normal noise: 95 % within 3 binomial sd (0.5 %)
    assert 0.935 <= covered / replications <= 0.965


def test_drift_common_to_each_round_cancels_when_paired_not_with_welch() -> None:
    """Two identical variants on a machine whose speed wanders by about 40 % from round to
    round: paired by round, no measurable difference; unpaired, the drift swamps the interval."""
    rng = random.Random(11)
    base, cand = _rounds(rng, 1.0, 6, drift=0.4, noise=0.01)
    paired = ratio_interval(
        TrialFigures(base, series="s", rounds=range(1, 7)), TrialFigures(cand, series="s", rounds=range(1, 7))
    )
    unpaired = ratio_interval(base, cand)
    assert paired is not None and unpaired is not None
    assert paired.method == PAIRED and paired.verdict is Verdict.SAME
    assert unpaired.method == WELCH and unpaired.verdict is Verdict.TOO_NOISY


def test_figures_are_paired_by_round_number_and_only_within_one_series() -> None:
    base = TrialFigures([10.0, 20.0, 40.0], series="s", rounds=[1, 2, 3])
    # round 2's candidate trial had no figure: rounds 1 and 3 are paired, not by position
    cand = TrialFigures([5.0, 20.0], series="s", rounds=[1, 3])
    paired = ratio_interval(base, cand)
    assert paired is not None and paired.baseline_trials == paired.candidate_trials == 2
    assert paired.ratio == pytest.approx(math.sqrt(0.5 * 0.5))
    other_series = ratio_interval(base, TrialFigures([5.0, 20.0], series="t", rounds=[1, 3]))
    assert other_series is not None and other_series.method == WELCH
    assert ratio_interval(base, TrialFigures([5.0], series="s", rounds=[1])) is None


def test_trial_figures_carry_the_runs_series_and_the_round_of_each_trial() -> None:
    from joulemeter.meter.run import Run, Window

    windows = [Window("inference", "inference", 0.0, 3.0, {"cpu": 6.0}, {"inferences": 3000.0})] + [
        Window(f"trial-{n}", f"inference/trial-{n}", n - 1.0, float(n), {"cpu": joules}, {"inferences": 1000.0})
        for n, joules in ((1, 2.0), (2, 0.0), (3, 4.0))
    ]
    run = Run(id="r", name="r", windows=windows, metadata={TRIAL_SERIES: "rounds-1"})
    figures = trial_figures(run, "inferences", 1000)
    assert list(figures) == [2.0, 4.0] and figures.rounds == (1, 3) and figures.series == "rounds-1"
    assert trial_figures(Run(id="q", name="q", windows=windows), None).series is None
