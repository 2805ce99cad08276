"""The Henze-Zirkler test's power against the number of seeds (the intrinsic-privacy study's Appendix C.2,
Figure 7): replicates of shape (seeds x dimension) drawn from a multivariate normal (full covariance from an
inverse-Wishart prior, and diagonal) and from a Laplace, each tested with the pipeline's own HZ test."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from .distribution import henze_zirkler_once

DISTRIBUTIONS = ("normal_full", "normal_diagonal", "laplace")


def draw(distribution: str, n: int, dimension: int, rng: np.random.Generator) -> np.ndarray:
    """One (n, dimension) replicate: a normal with inverse-Wishart covariance (df = dimension + 2, identity
    scale), a normal with independent coordinates of random scales, or independent standard Laplace coordinates."""
    if distribution == "normal_full":
        cov = stats.invwishart(df=dimension + 2, scale=np.eye(dimension)).rvs(random_state=rng)
        cov = np.atleast_2d(cov)
        return rng.multivariate_normal(np.zeros(dimension), cov, size=n, method="cholesky")
    if distribution == "normal_diagonal":
        return rng.normal(size=(n, dimension)) * rng.uniform(0.5, 2.0, size=dimension)
    if distribution == "laplace":
        return rng.laplace(size=(n, dimension))
    raise ValueError(f"unknown distribution {distribution!r}: use one of {', '.join(DISTRIBUTIONS)}")


def simulate(dimensions: Sequence[int], seed_counts: Sequence[int], replicates: int, seed: int = 0) -> pd.DataFrame:
    """HZ p-value of every replicate: one row per (distribution, dimension, seeds, replicate); NaN where the
    test does not apply (dimension >= seeds)."""
    if replicates < 1:
        raise ValueError(f"hz_power.replicates must be >= 1 (got {replicates})")
    rows = []
    for dimension in dimensions:
        for n in seed_counts:
            for distribution in DISTRIBUTIONS:
                rng = np.random.default_rng([seed, DISTRIBUTIONS.index(distribution), int(dimension), int(n)])
                for r in range(replicates):
                    if dimension >= n:
                        p = float("nan")
                    else:
                        _, p, _ = henze_zirkler_once(draw(distribution, int(n), int(dimension), rng))
                    rows.append(
                        {"distribution": distribution, "dimension": int(dimension), "n_seeds": int(n), "replicate": r}
                        | {"p_value": p}
                    )
    return pd.DataFrame(rows)


def power_table(sim: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Per distribution, dimension and seed count: replicates tested, the rejection rate at `alpha` (the
    power against a Laplace; the size under a normal) with its Clopper-Pearson 95% interval, median p."""
    rows = []
    for (distribution, dimension, n), g in sim.groupby(["distribution", "dimension", "n_seeds"], sort=True):
        p = g["p_value"].dropna().to_numpy()
        k, m = int((p < alpha).sum()), len(p)
        lo = float(stats.beta.ppf(0.025, k, m - k + 1)) if k > 0 else 0.0
        hi = float(stats.beta.ppf(0.975, k + 1, m - k)) if k < m else 1.0
        rows.append(
            {
                "distribution": distribution,
                "dimension": dimension,
                "n_seeds": n,
                "replicates": m,
                "power": k / m if m else float("nan"),
                "power_lo": lo if m else float("nan"),
                "power_hi": hi if m else float("nan"),
                "p_median": float(np.median(p)) if m else float("nan"),
                "alpha": alpha,
            }
        )
    return pd.DataFrame(rows)
