"""Sensitivity bound, per-weight spreads and the intrinsic epsilon (docs/methods.md, section 4)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

LOGREG_LIPSCHITZ = math.sqrt(2.0)  # logistic loss on rows of norm <= 1 plus a bias


def bolt_on_sensitivity(
    t: np.ndarray | float, n_rows: int, batch_size: int, lr: float, lipschitz: float = LOGREG_LIPSCHITZ
) -> np.ndarray:
    """Delta_theory = 2 k L eta / b with k = t / floor(n_rows / b) passes (convex, L-Lipschitz, eta <= 2/beta)."""
    passes = np.asarray(t, dtype=np.float64) / (n_rows // batch_size)
    return 2.0 * passes * lipschitz * lr / batch_size


def gaussian_c(delta: float) -> float:
    """c = sqrt(2 ln(1.25 / delta)) of the Gaussian mechanism."""
    return math.sqrt(2.0 * math.log(1.25 / delta))


def gaussian_epsilon(sensitivity: np.ndarray | float, sigma: np.ndarray | float, delta: float) -> np.ndarray:
    """epsilon = c Delta / sigma (the theorem needs epsilon < 1; reported regardless)."""
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


def bootstrap_over_seeds(
    seeds: np.ndarray, statistic: Callable[[np.ndarray], float], n_boot: int, seed: int
) -> np.ndarray:
    """Values of statistic(row indices) on resamples of the seeds with replacement (a seed brings all its rows)."""
    unique = np.unique(seeds)
    rng = np.random.default_rng(seed)
    rows_of = {s: np.flatnonzero(seeds == s) for s in unique}
    out = np.empty(n_boot)
    for k in range(n_boot):
        draw = rng.choice(unique, size=len(unique), replace=True)
        out[k] = statistic(np.concatenate([rows_of[s] for s in draw]))
    return out
