"""Shape of the weight distribution at T (docs/methods.md, section 5)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

HZ_MAX_DIM = 55


@dataclass(frozen=True)
class HZResult:
    """Henze-Zirkler outcome: minimum p over the tested subsets (NaN when not applicable)."""

    statistic: float
    p_value: float
    n_subsets: int
    dim: int
    n: int
    note: str


def standardise(x: np.ndarray) -> np.ndarray:
    """Centre and scale columns in float64 (pingouin's HZ loses precision on uncentred data)."""
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean(axis=0)
    scale = x.std(axis=0)
    return x / np.where(scale > 0, scale, 1.0)


def henze_zirkler_once(x: np.ndarray) -> tuple[float, float, str]:
    """HZ statistic and p-value of one (n, d) sample, or NaN with the reason it is not applicable."""
    import pingouin

    n, d = x.shape
    z = standardise(x)
    if d >= n:
        return math.nan, math.nan, f"not applicable: {d} parameters >= {n} seeds (covariance is rank-deficient)"
    rank = np.linalg.matrix_rank(np.cov(z, rowvar=False, bias=True))
    if rank < d:
        return math.nan, math.nan, f"not applicable: covariance rank {rank} < {d} (degenerate weights)"
    res = pingouin.multivariate_normality(z, alpha=0.05)
    note = "low power: dimension close to the number of seeds" if d > n / 2 else ""
    return float(res.hz), float(res.pval), note


def henze_zirkler(x: np.ndarray, seed: int = 0, max_dim: int = HZ_MAX_DIM) -> HZResult:
    """HZ test; above max_dim parameters, the minimum p over 2 * (d // max_dim + 1) random max_dim-subsets."""
    n, d = x.shape
    if d <= max_dim:
        stat, p, note = henze_zirkler_once(x)
        return HZResult(stat, p, 1, d, n, note)
    rng = np.random.default_rng(seed)
    n_subsets = 2 * (d // max_dim + 1)
    results = [henze_zirkler_once(x[:, np.sort(rng.choice(d, max_dim, replace=False))]) for _ in range(n_subsets)]
    valid = [(s, p) for s, p, _ in results if not math.isnan(p)]
    if not valid:
        return HZResult(math.nan, math.nan, n_subsets, max_dim, n, results[0][2])
    stat, p = min(valid, key=lambda sp: sp[1])
    notes = {note for _, _, note in results if note}
    return HZResult(stat, p, n_subsets, max_dim, n, "; ".join(sorted(notes)))


def shapiro_per_weight(x: np.ndarray) -> np.ndarray:
    """Shapiro-Wilk p-value of each column (NaN for constant columns)."""
    x = np.asarray(x, dtype=np.float64)
    out = np.full(x.shape[1], np.nan)
    for j in range(x.shape[1]):
        if np.ptp(x[:, j]) > 0:
            out[j] = stats.shapiro(x[:, j]).pvalue
    return out


def rejected_fractions(p_values: np.ndarray, alpha: float = 0.05) -> dict[str, float]:
    """Fractions of tests rejected at alpha and at the Bonferroni level alpha / m (NaNs excluded)."""
    p = p_values[~np.isnan(p_values)]
    m = len(p)
    return {
        "n_tests": m,
        "rejected": float((p < alpha).mean()) if m else math.nan,
        "rejected_bonferroni": float((p < alpha / m).mean()) if m else math.nan,
    }


def anderson_darling_laplace_statistic(x: np.ndarray) -> np.ndarray:
    """A^2 of each column against a Laplace fitted by maximum likelihood (median, mean |x - median|)."""
    x = np.sort(np.asarray(x, dtype=np.float64), axis=0)
    n = x.shape[0]
    loc = np.median(x, axis=0)
    scale = np.abs(x - loc).mean(axis=0)
    z = (x - loc) / np.where(scale > 0, scale, 1.0)
    log_cdf = np.where(z < 0, np.log(0.5) + z, np.log1p(-0.5 * np.exp(-np.abs(z))))
    log_sf = np.where(z < 0, np.log1p(-0.5 * np.exp(-np.abs(z))), np.log(0.5) - z)
    i = np.arange(1, n + 1)[:, None]
    return -n - ((2 * i - 1) * (log_cdf + log_sf[::-1])).sum(axis=0) / n


def laplace_ad_null(n: int, n_sim: int = 2000, seed: int = 0) -> np.ndarray:
    """Sorted null distribution of A^2 for samples of size n with estimated location and scale.
    It does not depend on the true parameters, so one simulation serves every weight."""
    sims = np.random.default_rng([seed, n]).laplace(size=(n, n_sim))
    return np.sort(anderson_darling_laplace_statistic(sims))


def anderson_darling_laplace(
    x: np.ndarray, null: np.ndarray | None = None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """A^2 and Monte Carlo p-values (add-one) of each column against a fitted Laplace."""
    a2 = anderson_darling_laplace_statistic(x)
    null = laplace_ad_null(x.shape[0], seed=seed) if null is None else null
    exceed = len(null) - np.searchsorted(null, a2, side="left")
    return a2, (exceed + 1) / (len(null) + 1)


def tail_index(x: np.ndarray) -> float:
    """alpha of a symmetric alpha-stable law (Mohammadi et al. 2015): blocks of size m, the largest
    divisor of n not above sqrt(n); 1/alpha = (mean log||Y_k|| - mean log||X_i||) / log m."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    n = len(x)
    m = max(k for k in range(1, math.isqrt(n) + 1) if n % k == 0)
    if m < 2:
        raise ValueError(f"tail index needs a sample size with a divisor in 2..sqrt(n); n = {n}")
    blocks = x.reshape(n // m, m, -1).sum(axis=1)
    inv_alpha = (np.log(np.linalg.norm(blocks, axis=1)).mean() - np.log(np.linalg.norm(x, axis=1)).mean()) / math.log(m)
    return 1.0 / inv_alpha
