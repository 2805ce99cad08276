"""Attack metrics against hand-computed values and scipy's own functions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from sgd_privacy.attacks import metrics as M


def test_loss_threshold_by_hand() -> None:
    members = np.array([0.1, 0.2, 0.9, 1.5])  # 2 of 4 at or below tau = 0.5
    nonmembers = np.array([0.4, 1.0, 2.0, 3.0, 0.5])  # 2 of 5 at or below
    m = M.loss_threshold_metrics(members, nonmembers, 0.5)
    assert m["tpr"] == pytest.approx(0.5)
    assert m["fpr"] == pytest.approx(0.4)
    assert m["fnr"] == pytest.approx(0.5)
    assert m["p_err"] == pytest.approx(0.45)
    assert m["advantage"] == pytest.approx(0.1)
    assert m["accuracy"] == pytest.approx((2 + 3) / 9)
    assert m["epsilon_accuracy"] == pytest.approx(math.log(5 / 4))
    assert m["epsilon_advantage"] == pytest.approx(math.log(1.1))


def test_threshold_metrics_batched_rows() -> None:
    mem = np.array([[0.1, 0.2], [5.0, 6.0]])
    non = np.array([[1.0, 2.0], [0.1, 0.2]])
    m = M.loss_threshold_metrics(mem, non, np.array([0.5, 0.5]))
    np.testing.assert_allclose(m["advantage"], [1.0, -1.0])


def test_roc_and_auc_with_ties() -> None:
    mem, non = np.array([3.0, 2.0, 2.0]), np.array([2.0, 1.0])
    fpr, tpr = M.roc_curve(mem, non)
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 1.0])
    np.testing.assert_allclose(tpr, [0, 1 / 3, 1.0, 1.0])
    # P(mem > non) + P(tie)/2 over 6 pairs: wins 3 (3>2,3>1) ... count: (3,2)(3,1)(2,1)(2,1)=4 wins, 2 ties
    assert M.auc(mem, non) == pytest.approx((4 + 0.5 * 2) / 6)
    assert M.auc(mem, non) == pytest.approx(np.trapezoid(tpr, fpr))
    assert M.max_advantage(mem, non) == pytest.approx(0.5)


def test_tpr_at_low_fpr() -> None:
    mem = np.arange(100, 200, dtype=float)
    non = np.arange(0, 150, dtype=float)  # 50 non-members overlap with scores 100..149
    assert M.tpr_at_fpr(mem, non, 0.0) == pytest.approx(50 / 100)  # thresholds above 149
    assert M.tpr_at_fpr(mem, non, 10 / 150) == pytest.approx(60 / 100)


def test_epsilon_lower_bound_is_the_edge_of_the_dp_test_region() -> None:
    """An (epsilon, delta)-DP test satisfies FPR + e^eps FNR >= 1 - delta and FNR + e^eps FPR >= 1 - delta
    (Kairouz et al. 2015): the bound is the smallest epsilon whose region holds the exact upper limits
    (scipy's binomial test), found by root search rather than by the closed form."""
    from scipy import optimize

    delta = 1e-5
    for fp, n_non, fn, n_mem in ((10, 1000, 500, 1000), (300, 1000, 0, 1000), (2, 50, 30, 60), (0, 20, 0, 20)):
        fpr = stats.binomtest(fp, n_non).proportion_ci(0.95, method="exact").high
        fnr = stats.binomtest(fn, n_mem).proportion_ci(0.95, method="exact").high

        def slack(eps: float, fpr: float = fpr, fnr: float = fnr) -> float:
            return min(fpr + math.exp(eps) * fnr, fnr + math.exp(eps) * fpr) - (1 - delta)

        expected = 0.0 if slack(0.0) >= 0 else optimize.brentq(slack, 0.0, 50.0, xtol=1e-13)
        assert M.epsilon_lower_bound(fp, n_non, fn, n_mem, delta) == pytest.approx(expected, abs=1e-9)
    assert M.epsilon_lower_bound(500, 1000, 500, 1000, delta) == 0.0  # a coin-flip attack proves nothing


def test_p_err_floor_and_mean_ci() -> None:
    assert M.p_err_floor(0.0, 0.0) == pytest.approx(0.5)
    assert M.p_err_floor(math.log(3), 0.1) == pytest.approx(0.9 / 4)
    mean, lo, hi = M.mean_ci(np.array([1.0, 2.0, 3.0]))
    half = stats.t.ppf(0.975, 2) * 1.0 / math.sqrt(3)
    assert (mean, lo, hi) == pytest.approx((2.0, 2 - half, 2 + half))
    assert math.isnan(M.mean_ci(np.array([1.0]))[1])
