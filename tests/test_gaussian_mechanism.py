"""The analytic Gaussian mechanism against a numerical integration of its privacy loss and published values."""

import math

import numpy as np
import pytest

from gaussian_reference import integrated_delta
from sgd_privacy.analysis.gaussian import analytic_epsilon, analytic_sigma, classic_sigma, noise_sigma

# (Delta, noise sigma, delta): small and large epsilon, tiny delta, the study's CIFAR2 setting (N = 9000)
CASES = [(1.0, 1.0, 1e-5), (0.157, 0.0967, 1 / 9000**2), (0.3, 0.004, 1e-8), (1.0, 10.0, 1e-5), (0.05, 0.2, 1e-4)]


@pytest.mark.parametrize(("sensitivity", "sigma", "delta"), CASES)
def test_analytic_epsilon_is_the_smallest_epsilon_the_integrated_privacy_loss_allows(sensitivity, sigma, delta):
    eps = float(analytic_epsilon(sensitivity, sigma, delta))
    assert integrated_delta(sensitivity, sigma, eps) == pytest.approx(delta, rel=1e-6)  # the guarantee holds
    assert integrated_delta(sensitivity, sigma, 0.999 * eps) > 1.005 * delta  # and nothing smaller does


@pytest.mark.parametrize(("epsilon", "delta"), [(0.1, 1e-6), (1.0, 1e-5), (5.0, 1e-8), (70.0, 1 / 9000**2)])
def test_analytic_sigma_is_the_least_noise_the_integrated_privacy_loss_allows(epsilon, delta):
    s = float(analytic_sigma(0.25, epsilon, delta))
    assert integrated_delta(0.25, s, epsilon) == pytest.approx(delta, rel=1e-6)
    assert integrated_delta(0.25, 0.999 * s, epsilon) > 1.001 * delta
    assert float(analytic_epsilon(0.25, s, delta)) == pytest.approx(epsilon, rel=1e-9)  # the two are inverse


# Google's dp-accounting 0.6.0, dp_accounting.get_sigma_gaussian(epsilon, delta) (noise at sensitivity 1) and
# get_epsilon_gaussian(sigma, delta): an independent, maintained implementation of Balle and Wang (2018).
DP_ACCOUNTING_SIGMA = [
    (0.5, 1e-5, 7.0318266755825),
    (1.0, 1e-5, 3.7306316348159374),
    (2.0, 1e-5, 1.993812445643537),
    (10.0, 1e-5, 0.4998886197090323),
    (1.0, 1e-10, 5.867777749630524),
    (70.0, 1 / 9000**2, 0.13224748068198247),
    (0.1, 1e-6, 36.304690426195194),
]
DP_ACCOUNTING_EPSILON = [
    (1.0, 1e-5, 4.377178095681137),
    (0.5, 1e-5, 9.997256146434315),
    (3.0, 1e-6, 1.4479880214199712),
    (0.05, 1e-5, 284.39184949774256),
]


def test_agrees_with_dp_accounting():
    for eps, delta, sigma in DP_ACCOUNTING_SIGMA:
        assert float(analytic_sigma(1.0, eps, delta)) == pytest.approx(sigma, rel=1e-9)
        assert float(analytic_sigma(0.2, eps, delta)) == pytest.approx(0.2 * sigma, rel=1e-9)  # scales with Delta
    for sigma, delta, eps in DP_ACCOUNTING_EPSILON:
        assert float(analytic_epsilon(1.0, sigma, delta)) == pytest.approx(eps, rel=1e-9)


def test_classic_constant_is_looser_below_one_and_fails_above():
    eps = np.array([0.05, 0.2, 0.5, 0.9, 0.99])
    for delta in (1e-3, 1e-5, 1e-10):
        classic = classic_sigma(1.0, eps, delta)
        assert np.all(analytic_sigma(1.0, eps, delta) < classic)  # the analytic noise is the least that works
        assert all(integrated_delta(1.0, s, e) <= delta for s, e in zip(classic, eps, strict=True))  # Theorem A.1
    # epsilon = 10, delta = 1e-5: c Delta / epsilon is too little noise (the theorem does not cover it)
    s = float(classic_sigma(1.0, 10.0, 1e-5))
    assert integrated_delta(1.0, s, 10.0) > 2 * 1e-5
    assert float(analytic_epsilon(1.0, s, 1e-5)) > 10.3


def test_edge_values_and_bad_input():
    out = analytic_epsilon([0.0, 1.0, 1.0, np.nan, 1.0], [0.0, 0.0, np.inf, 1.0, np.nan], 1e-5)
    assert out[0] == 0.0 and out[1] == math.inf and out[2] == 0.0 and np.isnan(out[3:]).all()
    assert analytic_epsilon(1.0, 1e6, 1e-5)[()] == 0.0  # so much noise that delta(0) is already below delta
    assert analytic_sigma([0.0, 1.0], [1.0, np.inf], 1e-5).tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match=r"delta = 0 is outside \(0, 1\)"):
        analytic_epsilon(1.0, 1.0, 0)
    with pytest.raises(ValueError, match="epsilon > 0"):
        analytic_sigma(1.0, 0.0, 1e-5)
    with pytest.raises(ValueError, match="must be >= 0"):
        analytic_epsilon(-1.0, 1.0, 1e-5)
    with pytest.raises(ValueError, match=r"calibration = 'exact' is not one of \('analytic', 'classic'\)"):
        noise_sigma(1.0, 1.0, 1e-5, "exact")
