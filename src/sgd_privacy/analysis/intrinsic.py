"""The intrinsic-privacy tables of one experiment, from its shard histories (sections 4 and 5)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..train.history import RUN_KEYS, read_weights, weights_at
from . import distribution as dist
from .clusters import kmeans_spans, umap_embedding
from .gaussian import analytic_epsilon
from .pairs import PAIR_KINDS, max_distance_within_groups, pair_distances, sample_pairs
from .privacy import (
    bolt_on_note,
    bolt_on_sensitivity,
    gaussian_c,
    gaussian_epsilon,
    min_sigma_bootstrap_interval,
    min_sigma_interval,
    pooled_sigma,
    sigma_per_group,
)

MIN_TEST_SEEDS = 8


def variable_live(runs: pd.DataFrame) -> np.ndarray:
    """Mask of variable-init runs that did not diverge (the runs the spread and shape analyses use)."""
    return (runs["init"] == "variable").to_numpy() & ~runs["diverged"].to_numpy()


def weights_over_time(paths: Sequence[str]) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Runs (sorted), the steps with kept weights, and weights (runs, steps, params) as stored (float32,
    to halve memory on large grids; distances are computed in float64)."""
    frame, flat = read_weights(paths, dtype=np.float32)
    steps = np.sort(frame["t"].unique())
    order = frame.sort_values(RUN_KEYS[1:] + ["t"], kind="stable").index.to_numpy()
    frame = frame.loc[order].reset_index(drop=True)
    n_runs = len(frame) // len(steps)
    if n_runs * len(steps) != len(frame):
        raise ValueError("shards disagree on the steps at which weights were kept")
    runs = frame.iloc[:: len(steps)][RUN_KEYS].reset_index(drop=True)
    runs["diverged"] = frame.groupby(np.arange(len(frame)) // len(steps))["diverged"].any().to_numpy()
    return runs, steps, flat[order].reshape(n_runs, len(steps), -1)


def distance_tables(
    runs: pd.DataFrame, steps: np.ndarray, weights: np.ndarray, T: int, n_pairs: int, seed: int, bound: dict | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Distances over t per pair kind (max, quantiles, mean, n) with the bolt-on bound, and all distances at T."""
    ok = ~runs["diverged"].to_numpy()
    live = runs[ok].reset_index(drop=True)
    w = weights[ok]
    rows, at_T = [], []
    t_index = int(np.searchsorted(steps, T))
    has_T = t_index < len(steps) and steps[t_index] == T
    for kind in PAIR_KINDS:
        pairs = sample_pairs(live, kind, n_pairs, seed)
        if len(pairs) == 0:
            continue
        d = pair_distances(w, pairs)  # (pairs, steps)
        q = np.quantile(d, [0.0, 0.05, 0.5, 0.95, 1.0], axis=0)
        for k, t in enumerate(steps):
            rows.append(
                {
                    "kind": kind,
                    "t": int(t),
                    "n_pairs": len(pairs),
                    "min": q[0, k],
                    "q05": q[1, k],
                    "median": q[2, k],
                    "q95": q[3, k],
                    "max": q[4, k],
                    "mean": d[:, k].mean(),
                }
            )
        if has_T:
            a, b = live.iloc[pairs[:, 0]], live.iloc[pairs[:, 1]]
            at_T.append(
                pd.DataFrame(
                    {
                        "kind": kind,
                        "t": T,
                        "distance": d[:, t_index],
                        "init": a["init"].to_numpy(),
                        "seed_a": a["seed"].to_numpy(),
                        "seed_b": b["seed"].to_numpy(),
                        "replace_a": a["replace_index"].to_numpy(),
                        "replace_b": b["replace_index"].to_numpy(),
                    }
                )
            )
    if bound is not None:
        theory = bolt_on_sensitivity(steps, **bound)
        rows += [
            {
                "kind": "sensitivity_theory",
                "t": int(t),
                "n_pairs": 0,
                "min": v,
                "q05": v,
                "median": v,
                "q95": v,
                "max": v,
                "mean": v,
            }
            for t, v in zip(steps, theory, strict=True)
        ]
    over_t = pd.DataFrame(rows)
    over_t.insert(0, "experiment", runs["experiment"].iloc[0])
    at = pd.concat(at_T, ignore_index=True) if at_T else pd.DataFrame(columns=["kind", "t", "distance"])
    at.insert(0, "experiment", runs["experiment"].iloc[0])
    return over_t, at


def epsilon_tables(
    runs: pd.DataFrame,
    weights: np.ndarray,
    T: int,
    n_rows: int,
    bound: dict | None,
    n_boot: int,
    seed: int,
    level: float = 0.95,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Table 4 row (sigma with its interval, Delta_theory, Delta_empirical over every sensitivity pair at T,
    epsilons), per-weight sigma, and per-dataset sigma (Table 5), from every run's weights at T.

    delta_theory is the study's fractional-pass bound and epsilon_theory / epsilon_empirical its formula
    c Delta / sigma (what the report compares with the study); delta_theory_worst_case counts passes begun, and
    epsilon_*_analytic are the analytic Gaussian mechanism's epsilons (worst-case bound, or Delta_empirical)."""
    sel = variable_live(runs)
    if sel.sum() < 3:
        raise ValueError("the intrinsic epsilon needs variable-init runs with at least two seeds per dataset")
    w, groups, seeds = weights[sel], runs["replace_index"].to_numpy()[sel], runs["seed"].to_numpy()[sel]
    sigma_j = pooled_sigma(w, groups)
    delta = 1.0 / n_rows**2
    d_theory = float(bolt_on_sensitivity(T, **bound)) if bound else np.nan
    d_worst = float(bolt_on_sensitivity(T, **bound, worst_case=True)) if bound else np.nan
    d_empirical, init_used, n_pairs = empirical_sensitivity(runs, weights)
    sigma, sigma_low, sigma_high = min_sigma_interval(w, groups, level)
    boot_low, boot_high = min_sigma_bootstrap_interval(w, groups, seeds, n_boot, seed, level)
    notes = (
        [bolt_on_note(bound["lr"])] if bound else ["Delta_theory: no bound for this model (logistic regression only)"]
    )
    if n_pairs == 0:
        notes.append("Delta_empirical: no sensitivity pairs (a single replace index)")
    row = {
        "experiment": runs["experiment"].iloc[0],
        "T": T,
        "N": n_rows,
        "delta": delta,
        "c": gaussian_c(delta),
        "n_seeds": len(np.unique(seeds)),
        "n_datasets": len(np.unique(groups)),
        "n_runs": int(sel.sum()),
        "n_params": w.shape[1],
        "sigma": sigma,
        "sigma_max": float(sigma_j.max()),
        "sigma_ci_low": sigma_low,
        "sigma_ci_high": sigma_high,
        "sigma_boot_ci_low": boot_low,
        "sigma_boot_ci_high": boot_high,
        "ci_level": level,
        "ci_method": "sigma_ci: simultaneous chi-square over weights (Gaussian weights); "
        "sigma_boot_ci: simultaneous bootstrap band over seeds (distribution-free, conservative)",
        "delta_theory": d_theory,
        "delta_theory_worst_case": d_worst,
        "delta_empirical": d_empirical,
        "n_pairs_empirical": n_pairs,
        "init_empirical": init_used,
        "epsilon_theory": float(gaussian_epsilon(d_theory, sigma, delta)),
        "epsilon_empirical": float(gaussian_epsilon(d_empirical, sigma, delta)),
        "epsilon_theory_analytic": float(analytic_epsilon(d_worst, sigma, delta)),
        "epsilon_empirical_analytic": float(analytic_epsilon(d_empirical, sigma, delta)),
    }
    for name, d in (("theory", d_theory), ("empirical", d_empirical)):
        eps = gaussian_epsilon(d, sigma_j, delta)
        row[f"epsilon_{name}_weight_min"], row[f"epsilon_{name}_weight_max"] = float(np.min(eps)), float(np.max(eps))
        # epsilon = c Delta / sigma decreases in sigma: sigma's interval maps to epsilon's (Delta held fixed)
        row[f"epsilon_{name}_ci_low"] = float(gaussian_epsilon(d, sigma_high, delta))
        row[f"epsilon_{name}_ci_high"] = float(gaussian_epsilon(d, sigma_low, delta))
    reported = [e for e in (row["epsilon_theory"], row["epsilon_empirical"]) if not np.isnan(e)]
    row["theorem_applies"] = bool(reported) and max(reported) < 1.0
    row["notes"] = "; ".join(n for n in notes if n)
    per_weight = pd.DataFrame({"experiment": row["experiment"], "weight": np.arange(w.shape[1]), "sigma": sigma_j})
    labels, sig = sigma_per_group(w, groups)
    row["sigma_dataset_min"], row["sigma_dataset_max"] = float(sig.min()), float(sig.max())
    per_dataset = pd.DataFrame(
        {
            "experiment": row["experiment"],
            "replace_index": labels,
            "sigma": sig,
            "n_seeds": [int((groups == g).sum()) for g in labels],
        }
    )
    return pd.DataFrame([row]), per_weight, per_dataset


def stability_table(
    runs: pd.DataFrame,
    weights: np.ndarray,
    seed_counts: Sequence[int],
    pair_counts: Sequence[int],
    repeats: int,
    seed: int,
) -> pd.DataFrame:
    """sigma re-estimated from subsets of seeds, and the empirical sensitivity from subsets of pairs (Figure 6;
    the pairs are of the init mode the reported Delta_empirical uses)."""
    init = sensitivity_init(runs)
    live = ~runs["diverged"].to_numpy() & (runs["init"] == init).to_numpy()
    var = variable_live(runs)
    w, groups, seeds = weights[var], runs["replace_index"].to_numpy()[var], runs["seed"].to_numpy()[var]
    unique = np.unique(seeds)
    rng = np.random.default_rng(seed)
    rows = []
    for n in sorted({c for c in seed_counts if 2 <= c <= len(unique)}):
        for r in range(repeats):
            chosen = np.isin(seeds, rng.choice(unique, n, replace=False))
            rows.append(
                {
                    "quantity": "sigma",
                    "n": n,
                    "repeat": r,
                    "value": float(pooled_sigma(w[chosen], groups[chosen]).min()),
                }
            )
    sens_runs = runs[live].reset_index(drop=True)
    pairs = sample_pairs(sens_runs, "sensitivity", 10**9, seed)
    d = pair_distances(weights[live], pairs) if len(pairs) else np.zeros(0)
    for n in sorted({c for c in pair_counts if 1 <= c <= len(pairs)}):
        for r in range(repeats):
            rows.append(
                {
                    "quantity": "delta_empirical",
                    "n": n,
                    "repeat": r,
                    "value": float(d[rng.choice(len(d), n, replace=False)].max()),
                }
            )
    frame = pd.DataFrame(rows, columns=["quantity", "n", "repeat", "value"])
    frame.insert(0, "experiment", runs["experiment"].iloc[0])
    frame["init_empirical"] = init
    return frame


def distribution_tables(
    runs: pd.DataFrame, weights: np.ndarray, T: int, max_datasets: int, seed: int, n_sim: int, n_examples: int = 4
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """HZ, Shapiro, AD-Laplace and tail index on each dataset's centred variable-init weights at T,
    per-weight p-values, and the values of the `n_examples` least normal weights (Figure 5 data)."""
    sel = variable_live(runs)
    groups = runs["replace_index"].to_numpy()[sel]
    w = weights[sel]
    summary, per_weight, examples = [], [], []
    null_cache: dict[int, np.ndarray] = {}
    for g in np.unique(groups)[:max_datasets]:
        x = w[groups == g]
        x = x - x.mean(axis=0)
        n = len(x)
        identity = {"experiment": runs["experiment"].iloc[0], "T": T, "replace_index": int(g), "n_seeds": n}
        identity["n_params"] = x.shape[1]
        if n < MIN_TEST_SEEDS:
            summary.append({**identity, "hz_note": f"not tested: {n} seeds < {MIN_TEST_SEEDS}"})
            continue
        hz = dist.henze_zirkler(x, seed=seed)
        sw = dist.shapiro_per_weight(x)
        null_cache.setdefault(n, dist.laplace_ad_null(n, n_sim, seed))
        a2, ad_p = dist.anderson_darling_laplace(x, null_cache[n])
        try:
            alpha, alpha_note = dist.tail_index(x), ""
        except ValueError as exc:
            alpha, alpha_note = np.nan, str(exc)
        sw_frac, ad_frac = dist.rejected_fractions(sw), dist.rejected_fractions(ad_p)
        summary.append(
            {
                **identity,
                "hz_statistic": hz.statistic,
                "hz_p_min": hz.p_value,
                "hz_subsets": hz.n_subsets,
                "hz_dim": hz.dim,
                "hz_note": hz.note,
                "shapiro_rejected": sw_frac["rejected"],
                "shapiro_rejected_bonferroni": sw_frac["rejected_bonferroni"],
                "laplace_rejected": ad_frac["rejected"],
                "laplace_rejected_bonferroni": ad_frac["rejected_bonferroni"],
                "tail_index": alpha,
                "tail_index_note": alpha_note,
            }
        )
        per_weight.append(
            pd.DataFrame(
                {
                    "experiment": runs["experiment"].iloc[0],
                    "replace_index": int(g),
                    "weight": np.arange(x.shape[1]),
                    "shapiro_p": sw,
                    "laplace_ad": a2,
                    "laplace_p": ad_p,
                    "std": x.std(axis=0, ddof=1),
                }
            )
        )
        worst = np.argsort(np.where(np.isnan(sw), np.inf, sw))[:n_examples]
        examples.append(
            pd.DataFrame(
                {
                    "experiment": runs["experiment"].iloc[0],
                    "replace_index": int(g),
                    "weight": np.repeat(worst, n),
                    "shapiro_p": np.repeat(sw[worst], n),
                    "seed": np.tile(runs["seed"].to_numpy()[sel][groups == g], len(worst)),
                    "value": w[groups == g][:, worst].T.reshape(-1),
                }
            )
        )
    if not summary:
        raise ValueError("distribution tests need variable-init runs")
    columns = ["experiment", "replace_index", "weight", "shapiro_p", "laplace_ad", "laplace_p", "std"]
    per_weight_frame = pd.concat(per_weight, ignore_index=True) if per_weight else pd.DataFrame(columns=columns)
    example_frame = (
        pd.concat(examples, ignore_index=True)
        if examples
        else pd.DataFrame(columns=["experiment", "replace_index", "weight", "shapiro_p", "seed", "value"])
    )
    return pd.DataFrame(summary), per_weight_frame, example_frame


def embedding_tables(paths: Sequence[str], T: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """UMAP coordinates of every run at T (variable init, non-diverged) and k-means cluster spans."""
    runs, w = weights_at(paths, T)
    sel = variable_live(runs)
    runs, w = runs[sel].reset_index(drop=True), w[sel]
    coords = umap_embedding(w, seed)
    labels, spans = kmeans_spans(w, runs, seed)
    emb = runs[RUN_KEYS].assign(umap_1=coords[:, 0], umap_2=coords[:, 1], cluster=labels, T=T)
    spans.insert(0, "experiment", runs["experiment"].iloc[0])
    return emb, spans


def read_T(convergence_path: str) -> int:
    """The experiment's convergence point from its convergence table."""
    return int(pd.read_parquet(convergence_path)["T"].iloc[0])


def bound_for(bound: dict | None, n_train: int) -> dict | None:
    """Bolt-on bound arguments for a base set of n_train rows (each D_i has n_train - 1)."""
    return None if bound is None else {**bound, "n_rows": n_train - 1}


def sensitivity_init(runs: pd.DataFrame) -> str:
    """The init mode whose sensitivity pairs give Delta_empirical: variable when it has any pair (a seed with
    two non-diverged datasets), else fixed."""
    live = runs[~runs["diverged"].to_numpy()]
    per_seed = live[live["init"] == "variable"].groupby("seed")["replace_index"].nunique()
    return "variable" if (per_seed >= 2).any() else "fixed"


def empirical_sensitivity(runs: pd.DataFrame, weights: np.ndarray) -> tuple[float, str, int]:
    """Delta_empirical: the largest distance at T over every sensitivity pair (same seed and init, different
    dataset; non-diverged) of one init mode (`sensitivity_init`); returns it, the mode and the number of pairs
    (NaN and 0 when the grid has a single replace index)."""
    init = sensitivity_init(runs)
    sel = ~runs["diverged"].to_numpy() & (runs["init"] == init).to_numpy()
    d, n_pairs = max_distance_within_groups(weights[sel], runs["seed"].to_numpy()[sel])
    return d, init, n_pairs
