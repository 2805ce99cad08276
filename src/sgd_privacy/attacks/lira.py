"""A calibrated (LiRA-style) membership attack with shadow runs that share the target's seed or not.

Shadow and target runs are trained on exact halves of a data pool, one half per *subset* k,
drawn reproducibly; every run (seed, subset) is a target in turn. Its shadows are the runs of
every other subset, either with the target's own seed (seed known: same initialisation and
batch-order randomness) or with another seed (seed hidden), so both attacks use the same
training sets and differ only in the seed. Per pool example, Gaussians are fitted to the
logit-scaled confidence of the shadows that trained on it (IN) and of those that did not
(OUT); the online score is the log likelihood ratio IN/OUT of the target's confidence, the
offline score (OUT runs only) the log of the OUT distribution's CDF at it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from .bounds import low_n
from .metrics import auc, clopper_pearson, mean_ci, roc_curve
from .yeom import paired_one_sided_p

VARIANTS = ("online", "offline")
SETTINGS = ("known", "hidden")


def subset_rows(subset_seed: int, subsets: Sequence[int], pool_size: int) -> np.ndarray:
    """(K, pool_size // 2) pool rows of each subset, ascending: exactly half the pool, drawn from
    (subset_seed, subset) alone, so a subset's rows do not depend on how many subsets there are."""
    import torch  # here, so that the attack on stored confidences imports no torch

    from ..rng import Purpose, hash32

    k = torch.as_tensor(list(subsets), dtype=torch.int64).reshape(-1, 1)
    keys = hash32(subset_seed, Purpose.SUBSET, k, torch.arange(pool_size, dtype=torch.int64).reshape(1, -1))
    chosen = torch.argsort(keys, dim=1, stable=True)[:, : pool_size // 2]
    return np.sort(chosen.numpy(), axis=1)


def membership(rows: np.ndarray, pool_size: int) -> np.ndarray:
    """(K, pool_size) bool: whether each pool example is in each subset's training set."""
    member = np.zeros((len(rows), pool_size), dtype=bool)
    np.put_along_axis(member, rows, True, axis=1)
    return member


def gaussian_fits(scores: np.ndarray, mask: np.ndarray, fixed_variance: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per-example mean and variance (n,) of the scores (R, n) of the rows where `mask` (R, n) holds.
    The variance is the per-example sample variance, or with `fixed_variance` (or fewer than two
    observations) the variance pooled over all examples; the mean is NaN without observations."""
    s = np.asarray(scores, dtype=np.float64)
    counts = mask.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(mask, s, 0.0).sum(axis=0) / counts
        sq = np.where(mask, (s - mean) ** 2, 0.0).sum(axis=0)
        var = sq / (counts - 1)
    dof = np.maximum(counts - 1, 0).sum()
    pooled = sq[counts > 1].sum() / dof if dof > 0 else 1.0
    var = np.where(fixed_variance | (counts < 2), pooled, var)
    return mean, np.maximum(var, 1e-12)


def fill_missing(mean_in: np.ndarray, mean_out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where an example has no IN (or no OUT) shadow, shift the other mean by the average IN - OUT gap."""
    both = np.isfinite(mean_in) & np.isfinite(mean_out)
    gap = float((mean_in - mean_out)[both].mean()) if both.any() else 0.0
    return np.where(np.isfinite(mean_in), mean_in, mean_out + gap), np.where(
        np.isfinite(mean_out), mean_out, mean_in - gap
    )


def online_scores(
    target: np.ndarray, mu_in: np.ndarray, var_in: np.ndarray, mu_out: np.ndarray, var_out: np.ndarray
) -> np.ndarray:
    """Log likelihood ratio of the target's confidences under the IN and the OUT Gaussian."""
    x = np.asarray(target, dtype=np.float64)
    return stats.norm.logpdf(x, mu_in, np.sqrt(var_in)) - stats.norm.logpdf(x, mu_out, np.sqrt(var_out))


def offline_scores(target: np.ndarray, mu_out: np.ndarray, var_out: np.ndarray) -> np.ndarray:
    """Log CDF of the OUT Gaussian at the target's confidences (one-sided: larger is more member-like)."""
    return stats.norm.logcdf(np.asarray(target, dtype=np.float64), mu_out, np.sqrt(var_out))


def target_scores(
    confidence: np.ndarray,
    member: np.ndarray,
    slot: int,
    subset: int,
    shadow_subsets: np.ndarray,
    shadow_slots: np.ndarray,
    fixed_variance: bool,
) -> dict[str, np.ndarray]:
    """Online and offline scores (n,) of the target run (seed slot, subset) of the (S, K, n) confidences,
    with the runs (shadow_slots[j], shadow_subsets[j]) as its shadows."""
    shadows, mask = confidence[shadow_slots, shadow_subsets], member[shadow_subsets]
    mu_in, var_in = gaussian_fits(shadows, mask, fixed_variance)
    mu_out, var_out = gaussian_fits(shadows, ~mask, fixed_variance)
    mu_in, mu_out = fill_missing(mu_in, mu_out)
    target = confidence[slot, subset]
    return {
        "online": online_scores(target, mu_in, var_in, mu_out, var_out),
        "offline": offline_scores(target, mu_out, var_out),
    }


def hidden_seed_slot(slot: int, subset: int, n_seeds: int) -> int:
    """The seed (as a slot in the sorted seeds) of the seed-hidden shadow for subset `subset` of the
    target with seed slot `slot`: never the target's own, cycling through the others."""
    return (slot + 1 + subset % (n_seeds - 1)) % n_seeds


def attack_scores(
    confidence: np.ndarray, member: np.ndarray, seeds: Sequence[int], fixed_variance: bool
) -> pd.DataFrame:
    """Scores of every target run (seed slot i, subset k) of the (S, K, n) confidences with the other
    K - 1 subsets as shadows, seed known and hidden: one row per (target, setting, example) with the
    online and offline scores and whether the example is a member of the target's training set."""
    n_seeds, n_subsets, n = confidence.shape
    if n_seeds < 2 or n_subsets < 2:
        raise ValueError(f"LiRA needs at least 2 seeds and 2 subsets (shadow runs), got {n_seeds} and {n_subsets}")
    frames = []
    for i in range(n_seeds):
        for k in range(n_subsets):
            others = np.array([j for j in range(n_subsets) if j != k])
            slots = {
                "known": np.full(len(others), i),
                "hidden": np.array([hidden_seed_slot(i, j, n_seeds) for j in others]),
            }
            for setting, seed_slots in slots.items():
                scored = target_scores(confidence, member, i, k, others, seed_slots, fixed_variance)
                frames.append(
                    pd.DataFrame(
                        {
                            "target_seed": seeds[i],
                            "target_subset": k,
                            "setting": setting,
                            "example": np.arange(n),
                            "member": member[k],
                            **scored,
                        }
                    )
                )
    return pd.concat(frames, ignore_index=True)


def tpr_at(fpr: np.ndarray, tpr: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Largest TPR of an ROC curve (non-decreasing fpr, tpr) whose FPR does not exceed each target."""
    return tpr[np.searchsorted(fpr, np.asarray(targets) + 1e-12, side="right") - 1]


def roc_table(scores: pd.DataFrame, n_points: int = 400) -> pd.DataFrame:
    """Pooled ROC curve of each variant and setting on a log-spaced FPR grid (plus 0 and 1)."""
    grid = np.r_[0.0, np.logspace(-5, 0, n_points)]
    frames = []
    for variant in VARIANTS:
        for setting, g in scores.groupby("setting", sort=True):
            m = g["member"].to_numpy()
            fpr, tpr = roc_curve(g[variant].to_numpy()[m], g[variant].to_numpy()[~m])
            frames.append(
                pd.DataFrame({"variant": variant, "setting": setting, "fpr": grid, "tpr": tpr_at(fpr, tpr, grid)})
            )
    return pd.concat(frames, ignore_index=True)


def per_target_auc(scores: pd.DataFrame, variant: str) -> pd.Series:
    """AUC of one variant for each target run (indexed by target seed and subset)."""
    values = {}
    for key, t in scores.groupby(["target_seed", "target_subset"], sort=True):
        m = t["member"].to_numpy()
        values[key] = float(auc(t[variant].to_numpy()[m], t[variant].to_numpy()[~m]))
    return pd.Series(values)


def summary_table(scores: pd.DataFrame, fprs: Sequence[float], confidence: float) -> pd.DataFrame:
    """Per variant and setting: pooled AUC, the per-target AUC mean with a t interval, pooled TPR at each
    FPR in `fprs` with Clopper-Pearson intervals, and the one-sided paired test (over targets) that the
    seed-known AUC exceeds the seed-hidden one."""
    rows = []
    for variant in VARIANTS:
        per_target = {}
        for setting, g in scores.groupby("setting", sort=True):
            m = g["member"].to_numpy()
            s = g[variant].to_numpy()
            per_target[setting] = per_target_auc(g, variant)
            mean, lo, hi = mean_ci(per_target[setting].to_numpy(), confidence)
            fpr, tpr = roc_curve(s[m], s[~m])
            row = {
                "variant": variant,
                "setting": setting,
                "n_targets": len(per_target[setting]),
                "n_units": len(per_target[setting]),
                "low_n": low_n(len(per_target[setting])),
                "n_members": int(m.sum()),
                "n_nonmembers": int((~m).sum()),
                "auc": float(auc(s[m], s[~m])),
                "auc_target_mean": mean,
                "auc_target_lo": lo,
                "auc_target_hi": hi,
            }
            for f in fprs:
                tp = float(tpr_at(fpr, tpr, np.array([f]))[0]) * m.sum()
                lo_f, hi_f = clopper_pearson(round(tp), int(m.sum()), confidence)
                label = f"{100 * f:g}pct"
                row[f"tpr_at_{label}"] = tp / m.sum()
                row[f"tpr_at_{label}_lo"] = float(lo_f)
                row[f"tpr_at_{label}_hi"] = float(hi_f)
            rows.append(row)
        p = paired_one_sided_p(per_target["known"].to_numpy(), per_target["hidden"].to_numpy())
        for row in rows[-2:]:
            row["p_value_known_gt_hidden"] = p
    return pd.DataFrame(rows)
