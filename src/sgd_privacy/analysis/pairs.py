"""Reproducible sampling of run pairs and their weight distances (docs/methods.md, section 4)."""

from __future__ import annotations

import numpy as np
import pandas as pd

PAIR_KINDS = {
    # kind: (columns that must match, column that must differ, init modes allowed)
    "sensitivity": (("seed", "init"), "replace_index", ("variable", "fixed")),
    "variability_fixed_init": (("replace_index", "init"), "seed", ("fixed",)),
    "variability_variable_init": (("replace_index", "init"), "seed", ("variable",)),
}


def candidate_pairs(runs: pd.DataFrame, kind: str) -> np.ndarray:
    """Every pair (row a, row b), a < b, of `runs` that forms a pair of `kind` (n_pairs x 2)."""
    same, differ, inits = PAIR_KINDS[kind]
    frame = runs.reset_index(drop=True)
    frame = frame[frame["init"].isin(inits)]
    out = []
    for _, group in frame.groupby(list(same), sort=True):
        rows = group.index.to_numpy()
        a, b = np.triu_indices(len(rows), k=1)
        keep = group[differ].to_numpy()[a] != group[differ].to_numpy()[b]
        out.append(np.column_stack([rows[a][keep], rows[b][keep]]))
    return np.concatenate(out) if out else np.zeros((0, 2), dtype=np.int64)


def sample_pairs(runs: pd.DataFrame, kind: str, n_pairs: int, seed: int) -> np.ndarray:
    """At most n_pairs pairs of `kind`, drawn without replacement reproducibly (sorted)."""
    pairs = candidate_pairs(runs, kind)
    if len(pairs) > n_pairs:
        chosen = np.random.default_rng([seed, list(PAIR_KINDS).index(kind)]).choice(len(pairs), n_pairs, replace=False)
        pairs = pairs[np.sort(chosen)]
    return pairs


def pair_distances(weights: np.ndarray, pairs: np.ndarray, chunk: int = 256) -> np.ndarray:
    """L2 distances ||w_a - w_b|| for weights (runs, ..., params), in float64; returns (pairs, ...)."""
    out = np.empty((len(pairs),) + weights.shape[1:-1])
    for start in range(0, len(pairs), chunk):
        p = pairs[start : start + chunk]
        diff = weights[p[:, 0]].astype(np.float64) - weights[p[:, 1]].astype(np.float64)
        out[start : start + chunk] = np.linalg.norm(diff, axis=-1)
    return out


def max_distance_within_groups(weights: np.ndarray, groups: np.ndarray) -> tuple[float, int]:
    """Largest L2 distance between two rows of the same group over every such pair, and the number of pairs.

    One Gram matrix per group (rows centred on the group mean first, in float64, so that
    ||a - b||^2 = |a|^2 + |b|^2 - 2 a.b loses little to cancellation); NaN when no group has two rows."""
    best, n_pairs = -1.0, 0
    for g in np.unique(groups):
        x = np.asarray(weights[groups == g], dtype=np.float64)
        if len(x) < 2:
            continue
        x = x - x.mean(axis=0)
        sq = np.einsum("ij,ij->i", x, x)
        d2 = sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)
        best = max(best, float(np.sqrt(max(d2.max(), 0.0))))
        n_pairs += len(x) * (len(x) - 1) // 2
    return (best if n_pairs else float("nan")), n_pairs
