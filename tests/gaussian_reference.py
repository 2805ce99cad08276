"""Independent reference for Gaussian-mechanism tests: delta(epsilon) by numerically integrating the privacy loss.

For releases P = N(0, s^2) and Q = N(Delta, s^2) (the direction of w(D) - w(D'); the orthogonal directions
cancel in the likelihood ratio), delta(epsilon) = E_P[(1 - e^(epsilon - L(X)))_+] with the privacy loss
L(x) = log p(x) - log q(x) from the two densities: no closed form and no normal CDF enters.
"""

import math

import numpy as np
from scipy import integrate, stats


def integrated_delta(sensitivity: float, sigma: float, epsilon: float) -> float:
    """delta(epsilon) of N(0, sigma^2) noise at sensitivity Delta, by quadrature of the privacy-loss integrand."""

    def integrand(x: float) -> float:
        loss = stats.norm.logpdf(x, 0.0, sigma) - stats.norm.logpdf(x, sensitivity, sigma)
        return -math.expm1(epsilon - loss) * stats.norm.pdf(x, 0.0, sigma) if loss > epsilon else 0.0

    # the integrand is positive only where the loss exceeds epsilon; locate that edge by bisection on the loss
    lo, hi = -sigma * 1e3 - sensitivity * 1e3, sensitivity + sigma * 1e3
    for _ in range(200):
        mid = (lo + hi) / 2
        loss = stats.norm.logpdf(mid, 0.0, sigma) - stats.norm.logpdf(mid, sensitivity, sigma)
        lo, hi = (mid, hi) if loss > epsilon else (lo, mid)
    edge = lo
    total, start = 0.0, edge
    for _ in range(60):  # integrate leftwards in windows of one sigma until the mass is negligible
        part = integrate.quad(integrand, start - sigma, start, epsabs=0.0, epsrel=1e-11, limit=200)[0]
        total += part
        start -= sigma
        if part < total * 1e-16:
            break
    return total


def monte_carlo_delta(releases: np.ndarray, w_d: np.ndarray, w_d2: np.ndarray, sigma: float, epsilon: float):
    """delta(epsilon) estimated from releases of w(D) + noise: mean of (1 - e^(epsilon - L))_+ with L the exact
    log-likelihood ratio of w(D) against w(D') at each release, and its standard error."""
    loss = (((releases - w_d2) ** 2).sum(axis=1) - ((releases - w_d) ** 2).sum(axis=1)) / (2 * sigma**2)
    terms = np.clip(-np.expm1(epsilon - loss), 0.0, None)
    return float(terms.mean()), float(terms.std(ddof=1) / math.sqrt(len(terms)))
