"""Epsilon lower bounds: coverage on mechanisms of known epsilon with examples reused across runs, the
pooled (run, example) score's failure there, no bound without signal, and outside checks of the pieces."""

import math

import numpy as np
import pytest
from scipy import optimize, stats
from statsmodels.stats.proportion import proportion_confint

from sgd_privacy.attacks import metrics as M
from sgd_privacy.attacks.bounds import LOW_N, error_counts, heldout_bound, pooled_score, trial_bound, unit_bound

DELTA = 1e-5
REPS = 400
# If a procedure's true failure rate were 5%, its failures in 400 repetitions exceed this count with
# probability 0.1%: the tolerance for the simulation's own sampling error.
MAX_FAILURES = int(stats.binom.ppf(0.999, REPS, 0.05))


def gdp_delta(eps: float, mu: float) -> float:
    """delta(eps) of the mu-Gaussian mechanism (Dong, Roth and Su 2019, Corollary 2.13)."""
    return stats.norm.cdf(-eps / mu + mu / 2) - math.exp(eps) * stats.norm.cdf(-eps / mu - mu / 2)


def gdp_mu(eps: float) -> float:
    """The Gaussian shift mu whose exact epsilon at DELTA is eps (0 for eps = 0)."""
    return 0.0 if eps == 0 else optimize.brentq(lambda mu: gdp_delta(eps, mu) - DELTA, 1e-3, 20.0)


def reused_example_runs(rng, mu, seeds=48, n=40, example_sd=1.5):
    """Attack scores of `seeds` runs on the same n members and n non-members, as the pipeline reuses them:
    each example has its own effect (its hardness, persisting over every run), each run adds unit noise,
    and membership adds mu: given its example, each score is a mu-Gaussian mechanism of membership."""
    a_m, a_n = rng.normal(0, example_sd, n), rng.normal(0, example_sd, n)
    members = a_m + mu + rng.standard_normal((seeds, n))
    nonmembers = a_n + rng.standard_normal((seeds, n))
    return members, nonmembers


@pytest.mark.parametrize("eps", [0.0, 0.5, 1.0, 2.0])
def test_bound_covers_the_true_epsilon_with_reused_examples(eps):
    """The reported 95% bound exceeds the mechanism's exact epsilon in at most 5% of 400 repetitions
    (MAX_FAILURES allows for the simulation's own error), and it has power at epsilon 2."""
    rng = np.random.default_rng(int(eps * 10))
    mu = gdp_mu(eps)
    if eps:
        assert gdp_delta(eps, mu) == pytest.approx(DELTA, rel=1e-6)
    bounds = []
    for rep in range(REPS):
        mem, non = reused_example_runs(rng, mu)
        out = unit_bound((mem[:24], non[:24]), mem[24:], non[24:], DELTA, 0.95, 40, seed=rep)
        assert out["n_units"] == 20 and out["n_members"] == out["n_nonmembers"] == 20  # 40 examples: 20 evaluated
        bounds.append(out["epsilon_lower_bound"])
    bounds = np.array(bounds)
    assert (bounds > eps + 1e-12).sum() <= MAX_FAILURES


def test_bound_has_power_with_many_independent_trials():
    """At epsilon 2 (mu = 0.50) with 5,000 independent trials of each kind the bound is well above 0 and below 2."""
    rng = np.random.default_rng(5)
    mu = gdp_mu(2.0)
    cal = (mu + rng.standard_normal(5000), rng.standard_normal(5000))
    out = trial_bound(cal, mu + rng.standard_normal(5000), rng.standard_normal(5000), DELTA, 0.95, 200)
    assert 0.4 < out["epsilon_lower_bound"] < 2.0


def test_pooled_score_fails_coverage_with_reused_examples():
    """Counting every (run, example) pair as a trial: with no membership signal at all (epsilon 0) the
    per-example effects of the few reused examples make the pooled figure positive far more often than 5%."""
    rng = np.random.default_rng(7)
    positive = 0
    for _ in range(REPS):
        mem, non = reused_example_runs(rng, 0.0, n=8)
        out = pooled_score((mem[:24], non[:24]), (mem[24:], non[24:]), DELTA, 0.95, 40)
        positive += out["epsilon_score_pooled"] > 0
    assert positive > MAX_FAILURES


def test_no_membership_signal_gives_no_bound():
    """Losses of models that learned nothing: every example's loss is drawn afresh from one distribution
    in every run, members and non-members alike, with large example effects shared by both."""
    rng = np.random.default_rng(3)
    for rep in range(20):
        effects = rng.normal(0, 1.0, 200)  # members and non-members drawn from one pool of examples
        order = rng.permutation(200)
        mem = effects[order[:100]] + 0.01 * rng.standard_normal((40, 100))
        non = effects[order[100:]] + 0.01 * rng.standard_normal((40, 100))
        out = unit_bound((mem[:20], non[:20]), mem[20:], non[20:], DELTA, 0.95, 50, seed=rep)
        assert out["epsilon_lower_bound"] == 0.0


def test_trial_bound_counts_one_trial_per_unit_and_flags_few_units():
    cal = (np.array([2.0, 3.0, 4.0]), np.array([-1.0, 0.0, 0.5]))
    out = trial_bound(cal, np.array([3.0, 0.0, 5.0]), np.array([-2.0, 1.5, 2.0]), DELTA, 0.95, 20)
    # independent count: members below / non-members at or above the chosen threshold
    fp = int((np.array([-2.0, 1.5, 2.0]) >= out["threshold"]).sum())
    fn = int((np.array([3.0, 0.0, 5.0]) < out["threshold"]).sum())
    assert (out["false_positives"], out["false_negatives"]) == (fp, fn)
    assert out["n_units"] == 3 and out["n_trials"] == 6 and out["low_n"] and out["unit"] == "seed"
    assert LOW_N == 30
    big = trial_bound(cal, np.full(30, 3.0), np.full(30, -3.0), DELTA, 0.95, 20)
    assert not big["low_n"]
    with pytest.raises(ValueError, match="one member and one non-member trial per unit"):
        trial_bound(cal, np.ones(3), np.ones(2), DELTA, 0.95)


def test_asymmetric_errors_land_in_the_right_columns():
    """FPR counts non-members guessed members, FNR members missed: a threshold that lets every member
    through but also 30% of the non-members."""
    mem = np.full(1000, 1.5)
    non = np.r_[np.full(300, 1.5), np.full(700, -1.5)]
    out = heldout_bound((mem, non), (mem, non), DELTA, 0.95, 50)
    assert out["threshold"] == 1.5 and (out["false_positives"], out["false_negatives"]) == (300, 0)
    assert out["fpr"] == pytest.approx(0.3) and out["fnr"] == 0.0
    assert error_counts(mem, non, 1.5) == (300, 0)
    # the upper bounds at 97.5%: FNR <= 1 - 0.025^(1/1000), FPR <= the exact binomial limit (scipy)
    fnr_hi = 1 - 0.025 ** (1 / 1000)
    fpr_hi = stats.binomtest(300, 1000).proportion_ci(0.95, method="exact").high
    assert out["epsilon_lower_bound"] == pytest.approx(math.log((1 - DELTA - fpr_hi) / fnr_hi), rel=1e-9)


@pytest.mark.parametrize("k,n", [(0, 10), (3, 10), (7, 20), (20, 20), (50, 1000), (999, 1000)])
def test_clopper_pearson_matches_scipy_and_statsmodels(k, n):
    lo, hi = M.clopper_pearson(k, n, 0.95)
    ref = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    sm_lo, sm_hi = proportion_confint(k, n, alpha=0.05, method="beta")
    assert float(lo) == pytest.approx(ref.low, abs=1e-12) and float(hi) == pytest.approx(ref.high, abs=1e-12)
    assert float(lo) == pytest.approx(sm_lo, abs=1e-12) and float(hi) == pytest.approx(sm_hi, abs=1e-12)
    # the one-sided upper bound at 97.5% is the two-sided 95% interval's upper end
    assert float(M.clopper_pearson_upper(k, n, 0.975)) == pytest.approx(ref.high, abs=1e-12)


def test_clopper_pearson_published_values():
    """Exact 95% limits for 0 of 10 (0, 0.3085) and 3 of 10 (0.0667, 0.6525), as printed in binomial
    confidence-limit tables (e.g. Documenta Geigy; Rosner, Fundamentals of Biostatistics, Table 7)."""
    assert float(M.clopper_pearson(0, 10)[1]) == pytest.approx(0.3085, abs=5e-5)
    lo, hi = M.clopper_pearson(3, 10)
    assert (float(lo), float(hi)) == pytest.approx((0.0667, 0.6525), abs=5e-5)


def test_upper_bound_coverage_by_simulation():
    """The one-sided 95% upper bound lies below the true proportion in at most 5% of repetitions."""
    rng = np.random.default_rng(11)
    for p, n in ((0.02, 50), (0.3, 40), (0.5, 15)):
        k = rng.binomial(n, p, 4000)
        miss = np.mean(M.clopper_pearson_upper(k, n, 0.95) < p)
        assert miss <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 4000)
