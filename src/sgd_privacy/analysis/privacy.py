"""Sensitivity bound, per-weight spreads and the intrinsic epsilon (docs/methods.md, section 4)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy import stats

from .gaussian import classic_c

# Logistic loss on rows x of norm <= 1 plus a bias: the gradient (p - y)(x, 1) has norm <= ||(x, 1)|| <= sqrt(2),
# the Hessian p(1 - p)(x, 1)(x, 1)^T has norm <= ||(x, 1)||^2 / 4 <= 1/2.
LOGREG_LIPSCHITZ = math.sqrt(2.0)
LOGREG_SMOOTHNESS = 0.5


def bolt_on_applies(lr: float, smoothness: float = LOGREG_SMOOTHNESS) -> bool:
    """Whether the bolt-on bound's step-size condition eta <= 2 / beta holds."""
    return lr <= 2.0 / smoothness


def bolt_on_note(lr: float, smoothness: float = LOGREG_SMOOTHNESS) -> str:
    """Why Delta_theory is NaN (empty when the bound applies)."""
    if bolt_on_applies(lr, smoothness):
        return ""
    return f"Delta_theory not applicable: lr = {lr:g} > 2 / beta = {2.0 / smoothness:g} (the bolt-on bound needs eta <= 2 / beta)"


def passes(t: np.ndarray | float, n_rows: int, batch_size: int, worst_case: bool = False) -> np.ndarray:
    """Passes over the data after t steps of floor(n_rows / b) steps each: t / steps_per_epoch (the study's
    fraction), or with `worst_case` the passes begun, ceil(t / steps_per_epoch) (Wu et al.'s worst case: the
    differing row may sit in the last, partial pass's batches)."""
    steps_per_epoch = n_rows // batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"n_rows = {n_rows} < batch_size = {batch_size}: not one full batch per pass")
    t = np.asarray(t, dtype=np.float64)
    return np.ceil(t / steps_per_epoch) if worst_case else t / steps_per_epoch


def bolt_on_sensitivity(
    t: np.ndarray | float,
    n_rows: int,
    batch_size: int,
    lr: float,
    lipschitz: float = LOGREG_LIPSCHITZ,
    smoothness: float = LOGREG_SMOOTHNESS,
    worst_case: bool = False,
) -> np.ndarray:
    """Delta_theory = 2 k L eta / b with k passes (`passes`: the study's fraction, or passes begun with
    `worst_case`) for convex, L-Lipschitz, beta-smooth losses; NaN when eta > 2 / beta, where it does not hold."""
    k = passes(t, n_rows, batch_size, worst_case)
    if not bolt_on_applies(lr, smoothness):
        return np.full_like(k, np.nan)
    return 2.0 * k * lipschitz * lr / batch_size


gaussian_c = classic_c  # c = sqrt(2 ln(1.25 / delta)), the study's constant


def gaussian_epsilon(sensitivity: np.ndarray | float, sigma: np.ndarray | float, delta: float) -> np.ndarray:
    """epsilon = c Delta / sigma, the study's formula (the classic theorem needs epsilon < 1; reported regardless)."""
    return gaussian_c(delta) * np.asarray(sensitivity, dtype=np.float64) / np.asarray(sigma, dtype=np.float64)


def pooled_sigma(weights: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Per-weight spread pooled over datasets: deviations from each group's mean, variance with
    ddof = number of groups (the unbiased pooled estimate; ddof = 1 for a single group)."""
    weights = np.asarray(weights, dtype=np.float64)
    labels, inverse = np.unique(groups, return_inverse=True)
    sums = np.zeros((len(labels), weights.shape[1]))
    np.add.at(sums, inverse, weights)
    counts = np.bincount(inverse, minlength=len(labels))
    if (counts < 2).all():
        raise ValueError("every dataset has a single seed: spreads need at least two seeds per dataset")
    centred = weights - (sums / counts[:, None])[inverse]
    dof = len(weights) - len(labels)
    return np.sqrt((centred**2).sum(axis=0) / dof)


def sigma_per_group(weights: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each dataset: its label and min_j of the per-weight sample std over its seeds (ddof = 1)."""
    labels = np.unique(groups)
    sig = np.array([np.asarray(weights[groups == g], dtype=np.float64).std(axis=0, ddof=1).min() for g in labels])
    return labels, sig


def min_sigma_interval(weights: np.ndarray, groups: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """min_j sigma_j and a confidence interval for the true min_j sigma_j with the selection accounted for.

    Each weight's pooled variance s_j^2 (dof = rows - groups) has dof s_j^2 / sigma_j^2 ~ chi^2_dof for Gaussian
    weights; chi-square intervals at level 1 - alpha / d (Bonferroni over the d weights) cover every sigma_j
    together with probability >= level, and then [min_j low_j, min_j high_j] covers min_j sigma_j. It always
    contains the estimate (low_j <= s_j <= high_j). A bootstrap of the minimum does not work here: resampled
    minima sit below the estimate, and its percentile interval can miss both the estimate and the truth.
    """
    sigma_j = pooled_sigma(weights, groups)
    dof = len(weights) - len(np.unique(groups))
    tail = (1.0 - level) / (2 * len(sigma_j))
    low = sigma_j * math.sqrt(dof / stats.chi2.ppf(1.0 - tail, dof))
    high = sigma_j * math.sqrt(dof / stats.chi2.ppf(tail, dof))
    return float(sigma_j.min()), float(low.min()), float(high.min())


def bootstrap_over_seeds(
    seeds: np.ndarray, statistic: Callable[[np.ndarray], np.ndarray | float], n_boot: int, seed: int
) -> np.ndarray:
    """Values of statistic(row indices) on n_boot resamples of the seeds with replacement (a seed brings all
    its rows, once per time it is drawn); shape (n_boot,) plus the statistic's shape."""
    unique = np.unique(seeds)
    rng = np.random.default_rng(seed)
    rows_of = {s: np.flatnonzero(seeds == s) for s in unique}
    draws = rng.choice(unique, size=(n_boot, len(unique)), replace=True)
    return np.stack([np.asarray(statistic(np.concatenate([rows_of[s] for s in draw]))) for draw in draws])


def min_sigma_bootstrap_interval(
    weights: np.ndarray, groups: np.ndarray, seeds: np.ndarray, n_boot: int, seed: int, level: float = 0.95
) -> tuple[float, float]:
    """A distribution-free interval for min_j sigma_j: a simultaneous bootstrap band over all weights, mapped to
    the minimum.

    With L*_j = log(s*_j / s_j) on seed resamples, q_low and q_high are the (1 + level) / 2 quantiles of
    max_j L*_j and max_j -L*_j; then s_j e^-q_low <= sigma_j <= s_j e^q_high holds for every j together with
    probability about >= level, so [min_j s_j e^-q_low, min_j s_j e^q_high] covers the minimum and contains
    the estimate. Conservative (the band covers all weights, the minimum needs less)."""
    sigma_j = pooled_sigma(weights, groups)
    with np.errstate(divide="ignore"):
        ratios = bootstrap_over_seeds(
            seeds, lambda rows: np.log(pooled_sigma(weights[rows], groups[rows]) / sigma_j), n_boot, seed
        )
    q = (1.0 + level) / 2.0
    q_low, q_high = np.quantile(ratios.max(axis=1), q), np.quantile((-ratios).max(axis=1), q)
    return float(sigma_j.min() * np.exp(-q_low)), float(sigma_j.min() * np.exp(q_high))
