"""The Gaussian mechanism's exact privacy curve (the analytic Gaussian mechanism; docs/methods.md, section 4).

Releasing f(D) + N(0, s^2 I) with ||f(D) - f(D')|| <= Delta is (epsilon, delta)-DP exactly when

    delta >= Phi(Delta / (2 s) - epsilon s / Delta) - e^epsilon Phi(-Delta / (2 s) - epsilon s / Delta)

(Balle and Wang, 2018, Theorem 8), for every epsilon >= 0. The classic constant c = sqrt(2 ln(1.25 / delta))
(Dwork and Roth, Theorem A.1) is proved for epsilon < 1 only; this curve needs no such range. Written with
scipy (root finding on the curve, in log space) rather than Google's dp-accounting, whose package pins
attrs < 24 and pulls dm-tree; tests/test_gaussian_mechanism.py checks it against a numerical integration of the
privacy-loss distribution and against dp-accounting 0.6.0's values.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize, special

CALIBRATIONS = ("analytic", "classic")


def classic_c(delta: float) -> float:
    """c = sqrt(2 ln(1.25 / delta)) of the classic Gaussian mechanism (a proof for epsilon < 1 only)."""
    return math.sqrt(2.0 * math.log(1.25 / delta))


def _check_delta(delta: float) -> None:
    """Reject a delta outside (0, 1) with the reason."""
    if not 0.0 < delta < 1.0:
        raise ValueError(f"delta = {delta!r} is outside (0, 1); the Gaussian mechanism needs 0 < delta < 1")


def log_delta(ratio: float, epsilon: float) -> float:
    """log delta(epsilon) of the Gaussian mechanism with noise s = ratio * Delta (ratio = s / Delta > 0)."""
    a = 1.0 / (2.0 * ratio) - epsilon * ratio
    b = -1.0 / (2.0 * ratio) - epsilon * ratio
    x, y = special.log_ndtr(a), epsilon + special.log_ndtr(b)
    return float(x + math.log1p(-math.exp(y - x))) if y < x else -math.inf


def _epsilon_of_ratio(ratio: float, delta: float) -> float:
    """Smallest epsilon >= 0 with delta(epsilon) <= delta for noise ratio s / Delta."""
    target = math.log(delta)
    if log_delta(ratio, 0.0) <= target:
        return 0.0
    hi = 1.0
    while log_delta(ratio, hi) > target:
        hi *= 2.0
    return float(optimize.brentq(lambda e: log_delta(ratio, e) - target, 0.0, hi, xtol=1e-14, rtol=1e-13))


def _ratio_of_epsilon(epsilon: float, delta: float) -> float:
    """Smallest s / Delta with delta(epsilon) <= delta (delta(epsilon) falls as the noise grows)."""
    target = math.log(delta)
    lo, hi = 1.0, 1.0
    while log_delta(lo, epsilon) <= target:
        lo /= 2.0
    while log_delta(hi, epsilon) > target:
        hi *= 2.0
    f = lambda u: log_delta(math.exp(u), epsilon) - target  # noqa: E731 - root in log s
    return math.exp(optimize.brentq(f, math.log(lo), math.log(hi), xtol=1e-14, rtol=1e-13))


def analytic_epsilon(sensitivity: np.ndarray | float, sigma: np.ndarray | float, delta: float) -> np.ndarray:
    """Exact epsilon of N(0, sigma^2) noise on a release of L2 sensitivity Delta, at delta (any epsilon).

    Elementwise: 0 when Delta = 0 or sigma is infinite, infinite when sigma = 0 < Delta, NaN where either is NaN.
    """
    _check_delta(delta)
    sens, sig = np.broadcast_arrays(np.asarray(sensitivity, dtype=np.float64), np.asarray(sigma, dtype=np.float64))
    if np.any(sens < 0) or np.any(sig < 0):
        raise ValueError("sensitivity and sigma must be >= 0 (a distance and a standard deviation)")
    out = np.full(sens.shape, np.nan)
    for i in np.ndindex(sens.shape):
        d, s = float(sens[i]), float(sig[i])
        if math.isnan(d) or math.isnan(s):
            continue
        if d == 0.0 or math.isinf(s):
            out[i] = 0.0
        elif s == 0.0 or math.isinf(d):
            out[i] = math.inf
        else:
            out[i] = _epsilon_of_ratio(s / d, delta)
    return out


def analytic_sigma(sensitivity: np.ndarray | float, epsilon: np.ndarray | float, delta: float) -> np.ndarray:
    """Smallest noise standard deviation that makes a release of L2 sensitivity Delta (epsilon, delta)-DP.

    Elementwise: 0 when Delta = 0 or epsilon is infinite, NaN where either is NaN.
    """
    _check_delta(delta)
    sens, eps = np.broadcast_arrays(np.asarray(sensitivity, dtype=np.float64), np.asarray(epsilon, dtype=np.float64))
    if np.any(sens < 0) or np.any(eps <= 0):
        raise ValueError("sensitivity must be >= 0 and epsilon > 0 (epsilon = 0 needs infinite noise)")
    out = np.full(sens.shape, np.nan)
    for i in np.ndindex(sens.shape):
        d, e = float(sens[i]), float(eps[i])
        if math.isnan(d) or math.isnan(e):
            continue
        out[i] = 0.0 if d == 0.0 or math.isinf(e) else d * _ratio_of_epsilon(e, delta)
    return out


def classic_sigma(sensitivity: np.ndarray | float, epsilon: np.ndarray | float, delta: float) -> np.ndarray:
    """Noise standard deviation c Delta / epsilon of the classic Gaussian mechanism (proved for epsilon < 1)."""
    _check_delta(delta)
    return classic_c(delta) * np.asarray(sensitivity, dtype=np.float64) / np.asarray(epsilon, dtype=np.float64)


def noise_sigma(
    sensitivity: np.ndarray | float, epsilon: np.ndarray | float, delta: float, calibration: str = "analytic"
) -> np.ndarray:
    """Noise standard deviation for (epsilon, delta) at sensitivity Delta by the `analytic` or `classic` rule."""
    if calibration == "analytic":
        return analytic_sigma(sensitivity, epsilon, delta)
    if calibration == "classic":
        return classic_sigma(sensitivity, epsilon, delta)
    raise ValueError(f"calibration = {calibration!r} is not one of {CALIBRATIONS}")
