"""Known answers for the Henze-Zirkler path at the pipeline's default subset size (HZ_MAX_DIM = 55
parameters): its level on Gaussian weights and its power on clearly non-normal ones, for one subset
(d = 55) and for the minimum over the random subsets (d = 110: 2 * (110 // 55 + 1) = 6 subsets)."""

import numpy as np
from scipy import stats

from sgd_privacy.analysis import distribution as dist

N_SEEDS = 200  # the order of a study's seeds per replace index; d = 55 < N / 2, so no low-power note


def correlated_gaussian(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    """n draws of a d-dim Gaussian with a random dense covariance and uneven scales (as trained weights)."""
    mix = rng.normal(size=(d, d)) / np.sqrt(d) + np.eye(d)
    return (rng.normal(size=(n, d)) @ mix) * rng.uniform(0.01, 1.0, d) + rng.normal(size=d)


def test_at_55_dimensions_gaussian_weights_are_rejected_at_most_at_the_level():
    rng = np.random.default_rng(0)
    reps = 60
    results = [dist.henze_zirkler(correlated_gaussian(rng, N_SEEDS, 55), seed=k) for k in range(reps)]
    assert {(r.n_subsets, r.dim, r.n, r.note) for r in results} == {(1, 55, N_SEEDS, "")}
    rejected = sum(r.p_value < 0.05 for r in results)
    # Under H0 the count is at most Binomial(60, 0.05); P(count >= 10) < 0.001. (Measured: 0 of 200 at this
    # size: pingouin's log-normal approximation is conservative in 55 dimensions, so "not rejected" is weak
    # evidence of normality; docs/methods.md says HZ has little power here.)
    assert rejected <= 9, rejected
    assert stats.binom.sf(9, reps, 0.05) < 0.001


def test_at_55_dimensions_skewed_weights_are_rejected():
    rng = np.random.default_rng(1)
    p = [dist.henze_zirkler(rng.lognormal(size=(N_SEEDS, 55)), seed=k).p_value for k in range(10)]
    assert sum(v < 0.05 for v in p) >= 9, p  # measured: 10 of 10, p < 1e-4 each


def test_above_55_dimensions_the_minimum_over_six_subsets_keeps_level_and_power():
    # Not tested because HZ cannot do it at this size: one grossly non-normal weight (lognormal cubed) among
    # 110 Gaussian ones gave p = 0.41 (seed 2); the per-weight Shapiro-Wilk tests are the check for that.
    rng = np.random.default_rng(2)
    skewed = dist.henze_zirkler(rng.lognormal(size=(N_SEEDS, 110)), seed=0)
    assert (skewed.n_subsets, skewed.dim) == (6, 55) and skewed.p_value < 0.05
    gauss = [dist.henze_zirkler(correlated_gaussian(rng, N_SEEDS, 110), seed=k).p_value for k in range(10)]
    assert sum(v < 0.05 for v in gauss) <= 3, gauss  # 6 subsets, no multiplicity correction: measured 1 of 100
