"""The report's three-way verdicts, checked on simulated data with a known truth and on closed forms."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from sgd_privacy.attacks.metrics import mean_ci
from sgd_privacy.report.verdict import (
    Verdict,
    chance_verdict,
    clopper_pearson,
    direction_verdict,
    effect_verdict,
    interval_from_one_sided_p,
    interval_verdict,
    one_cluster_chance,
    outcome_verdict,
    point_verdict,
    rank_correlation_p,
)

STUDY = 0.30  # a study's printed value (e.g. an accuracy) with a tolerance of 0.01


def _run(true: float, n: int, seed: int = 0) -> tuple[float, float]:
    """The 95% Student-t interval of the mean of n draws around `true` (sd 1): a run of size n."""
    _, lo, hi = mean_ci(np.random.default_rng(seed).normal(true, 1.0, n), 0.95)
    return float(lo), float(hi)


def test_a_huge_run_at_the_study_value_agrees_far_away_differs_and_a_tiny_one_cannot_tell():
    assert interval_verdict(*_run(STUDY, 1_000_000), STUDY, STUDY, 0.01) is Verdict.AGREES
    assert interval_verdict(*_run(STUDY + 0.2, 1_000_000), STUDY, STUDY, 0.01) is Verdict.DIFFERS
    assert interval_verdict(*_run(STUDY - 0.2, 1_000_000), STUDY, STUDY, 0.01) is Verdict.DIFFERS
    for true in (STUDY, STUDY + 0.2):  # n = 4: the interval is about +-1.6 wide, whatever the truth
        verdicts = [interval_verdict(*_run(true, 4, seed), STUDY, STUDY, 0.01) for seed in range(400)]
        assert Verdict.AGREES not in verdicts
        assert verdicts.count(Verdict.CANNOT_TELL) / len(verdicts) > 0.9  # 'differs' only by a rare narrow draw


def test_a_difference_the_small_size_explains_cannot_tell():
    # 0 of 51 weights rejected as Laplace with 24 seeds, against the study's 38-74% with 800 seeds
    lo, hi = clopper_pearson(0, 51)
    assert interval_verdict(lo, hi, 0.38, 0.74) is Verdict.DIFFERS
    assert interval_verdict(lo, hi, 0.38, 0.74, low_side_explained_by_size=True) is Verdict.CANNOT_TELL
    # ... but more rejections than the study's with fewer seeds is a difference
    lo, hi = clopper_pearson(50, 51)
    assert interval_verdict(lo, hi, 0.38, 0.74, low_side_explained_by_size=True) is Verdict.DIFFERS
    assert interval_verdict(math.nan, 0.5, 0.38, 0.74) is Verdict.CANNOT_TELL


def test_an_effect_needs_the_precision_to_see_it():
    # the study's Table 6: known - hidden epsilon 0.000366 over 1,500 models at p = 0.033 (one-sided), so the
    # paired differences' sd is about 0.000366 / 1.84 * sqrt(1500) = 0.0077
    d, sd = 0.000366, 0.0077
    rng = np.random.default_rng(1)
    for n in (4, 192):  # the default run's CNN (4 runs) and MLP (192 runs): the interval holds 0 and d
        _, lo, hi = mean_ci(rng.normal(d, sd, n), 0.95)
        assert lo < 0 < d < hi and effect_verdict(lo, hi, d) is Verdict.CANNOT_TELL
    _, lo, hi = mean_ci(rng.normal(d, sd, 4_000_000), 0.95)  # a run large enough, with the study's effect
    assert effect_verdict(lo, hi, d) is Verdict.AGREES
    _, lo, hi = mean_ci(rng.normal(0.0, sd, 4_000_000), 0.95)  # no effect, precise enough to exclude d
    assert effect_verdict(lo, hi, d) is Verdict.DIFFERS
    assert effect_verdict(-0.5, -0.1, -0.3) is Verdict.AGREES  # a negative study effect, same side
    assert effect_verdict(-0.5, -0.1, None) is Verdict.DIFFERS  # only the sign known: the other side
    assert effect_verdict(-0.5, 0.1, None) is Verdict.CANNOT_TELL


def test_a_non_rejection_counts_only_with_power():
    # the study did not reject normality for convex models; a run that does not reject either
    assert outcome_verdict(False, False, power=0.2) is Verdict.CANNOT_TELL
    assert outcome_verdict(False, False, power=None) is Verdict.CANNOT_TELL
    assert outcome_verdict(False, False, power=0.95) is Verdict.AGREES
    assert outcome_verdict(True, False, power=0.2) is Verdict.DIFFERS  # a rejection is evidence at any size
    assert outcome_verdict(True, True, power=None) is Verdict.AGREES
    assert outcome_verdict(False, True, power=0.95) is Verdict.DIFFERS
    assert outcome_verdict(False, True, power=0.5) is Verdict.CANNOT_TELL


def test_a_value_without_interval_needs_the_studys_size():
    assert point_verdict(2.03, 2.01, 2.05, n=24, n_study=800) is Verdict.CANNOT_TELL
    assert point_verdict(2.03, 2.01, 2.05, n=800, n_study=800) is Verdict.AGREES
    assert point_verdict(2.5, 2.01, 2.05, n=900, n_study=800, tolerance=0.05) is Verdict.DIFFERS


def test_clopper_pearson_matches_its_closed_forms():
    # k = 0: upper = 1 - (alpha/2)^(1/n); k = n: lower = (alpha/2)^(1/n)
    assert clopper_pearson(0, 10) == (0.0, pytest.approx(1 - 0.025 ** (1 / 10)))
    assert clopper_pearson(10, 10) == (pytest.approx(0.025 ** (1 / 10)), 1.0)
    assert clopper_pearson(0, 10)[1] == pytest.approx(0.3085, abs=1e-4)  # the textbook value
    assert all(math.isnan(x) for x in clopper_pearson(0, 0))


def test_the_interval_recovered_from_a_p_value_is_the_t_interval_of_the_data():
    rng = np.random.default_rng(3)
    diffs = rng.normal(0.2, 1.0, 12)
    p = stats.ttest_1samp(diffs, 0.0, alternative="greater").pvalue
    expected = stats.t.interval(0.95, 11, loc=diffs.mean(), scale=stats.sem(diffs))
    assert interval_from_one_sided_p(diffs.mean(), p, 12) == pytest.approx(expected, rel=1e-6)
    assert all(math.isnan(x) for x in interval_from_one_sided_p(0.0, 0.5, 12))
    assert all(math.isnan(x) for x in interval_from_one_sided_p(0.2, math.nan, 12))


def test_rank_correlation_p_is_exact_for_few_points():
    # 3 points in increasing order: 1 of the 3! orderings is as concordant
    assert rank_correlation_p(np.array([1, 2, 3]), np.array([0.1, 0.2, 0.3]))[0] == pytest.approx(1 / 6)
    assert rank_correlation_p(np.array([1, 2]), np.array([0.5, 0.6]))[0] == pytest.approx(0.5)
    p_pos, p_neg = rank_correlation_p(np.arange(6), -np.arange(6.0))
    assert p_neg == pytest.approx(1 / math.factorial(6)) and p_pos == 1.0
    assert direction_verdict(*rank_correlation_p(np.arange(5), np.arange(5.0))) is Verdict.AGREES  # p = 1/120
    assert direction_verdict(*rank_correlation_p(np.arange(2), np.arange(2.0))) is Verdict.CANNOT_TELL


def test_one_cluster_chance_matches_a_simulation():
    k, m, groups = 3, 2, 2
    rng = np.random.default_rng(0)
    draws = rng.integers(0, k, size=(200_000, groups, m))
    simulated = (draws == draws[..., :1]).all(axis=2).all(axis=1).mean()
    assert one_cluster_chance(k, m, groups) == pytest.approx(simulated, abs=0.003)
    assert one_cluster_chance(k, m, groups) == pytest.approx(1 / 9)
    # one dataset D_i per seed: every seed is in one cluster by construction
    assert chance_verdict(True, one_cluster_chance(6, 1, 6)) is Verdict.CANNOT_TELL
    assert chance_verdict(True, one_cluster_chance(6, 3, 6)) is Verdict.AGREES
    assert chance_verdict(False, 0.0) is Verdict.DIFFERS


@pytest.mark.parametrize("verdict", list(Verdict))
def test_every_verdict_has_words(verdict):
    from sgd_privacy.report.blocks import comparison

    note = comparison(verdict, "x")
    assert note.tone in ("agrees", "differs", "cannot_tell") and note.text.endswith("x")


def _distribution_notes(hz_p: float, laplace: float, n_seeds: int, power: pd.DataFrame | None) -> list[str]:
    """The weight-distribution section's verdict notes for one logistic-regression dataset D_i."""
    from sgd_privacy.report.frames import Inputs
    from sgd_privacy.report.sections.intrinsic import distribution_parts

    tests = pd.DataFrame(
        [
            {"experiment": "lr", "replace_index": 1, "n_seeds": n_seeds, "n_params": 51, "hz_p_min": hz_p}
            | {"hz_note": "", "laplace_rejected_bonferroni": laplace}
        ]
    )
    tables = {"distribution_tests": tests} | ({"hz_power": power} if power is not None else {})
    inputs = Inputs(tables, {}, {"experiments": {"lr": {"model": "logreg", "dataset": "mnist5k_binary"}}})
    return [
        b.text for b in distribution_parts(inputs) if getattr(b, "tone", "") in ("agrees", "differs", "cannot_tell")
    ]


def _power(dimension: int, points: dict[int, float]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"distribution": "laplace", "dimension": dimension, "n_seeds": n, "replicates": 20, "power": p}
            for n, p in points.items()
        ]
    )


def test_the_default_runs_distribution_verdicts_cannot_tell_at_24_seeds():
    # the examples: HZ does not reject (p = 0.3) with 24 seeds where the simulated power is 10%, and
    # 0% of 51 weights rejected as Laplace with 24 seeds against the study's 38-74% with 800
    hz, laplace = _distribution_notes(0.3, 0.0, 24, _power(55, {25: 0.1, 800: 1.0}))
    assert hz.startswith("Cannot tell at this size: lr (D_1, 24 seeds, 51 parameters): Henze-Zirkler does not reject")
    assert "simulated power against a Laplace at 24 seeds: 10%" in hz
    assert laplace.startswith("Cannot tell at this size: lr (D_1, 24 seeds, 51 parameters): 0% of weights rejected")
    # with 800 seeds, where the power is 100%, the same non-rejection agrees and 0% differs
    hz, laplace = _distribution_notes(0.3, 0.0, 800, _power(55, {25: 0.1, 800: 1.0}))
    assert hz.startswith("Agrees with the study:") and laplace.startswith("Differs from the study:")
    # without the simulation the power is unknown: cannot tell
    hz, _ = _distribution_notes(0.3, 0.5, 800, None)
    assert hz.startswith("Cannot tell at this size:") and "power at this size unknown" in hz
    # below the simulated seed range a high power at its first point does not carry over
    hz, _ = _distribution_notes(0.3, 0.5, 10, _power(55, {25: 0.9, 800: 1.0}))
    assert hz.startswith("Cannot tell at this size:")
