"""Membership-inference metrics: threshold attacks, ROC, AUC, low-FPR power and epsilon lower bounds.

Conventions used everywhere: a *score* is larger for examples the attack believes are
members (use ``-loss`` for the loss-threshold attack). Arrays of scores may carry leading
batch axes (one row per attacked model); members and non-members are given separately.
FPR = P(member guess | non-member), FNR = P(non-member guess | member),
P_err = (FPR + FNR) / 2, advantage = TPR - FPR = 1 - 2 P_err (docs/methods.md, attacks).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats


def threshold_metrics(
    member_scores: np.ndarray, nonmember_scores: np.ndarray, threshold: np.ndarray | float
) -> dict[str, np.ndarray]:
    """Metrics of the rule "member if score >= threshold" (threshold broadcast over leading axes)."""
    mem = np.asarray(member_scores, dtype=np.float64)
    non = np.asarray(nonmember_scores, dtype=np.float64)
    tau = np.asarray(threshold, dtype=np.float64)[..., None]
    tpr = (mem >= tau).mean(axis=-1)
    fpr = (non >= tau).mean(axis=-1)
    n_m, n_n = mem.shape[-1], non.shape[-1]
    acc = (tpr * n_m + (1.0 - fpr) * n_n) / (n_m + n_n)
    adv = tpr - fpr
    with np.errstate(divide="ignore", invalid="ignore"):
        eps_acc = np.log(acc / (1.0 - acc))
    return {
        "tpr": tpr,
        "fpr": fpr,
        "fnr": 1.0 - tpr,
        "p_err": (fpr + 1.0 - tpr) / 2.0,
        "advantage": adv,
        "accuracy": acc,
        "epsilon_accuracy": eps_acc,
        "epsilon_advantage": np.log1p(np.maximum(adv, 0.0)),
    }


def loss_threshold_metrics(
    member_losses: np.ndarray, nonmember_losses: np.ndarray, tau: np.ndarray | float
) -> dict[str, np.ndarray]:
    """Yeom's loss-threshold attack: "member" if loss <= tau."""
    return threshold_metrics(-np.asarray(member_losses), -np.asarray(nonmember_losses), -np.asarray(tau))


def roc_curve(member_scores: np.ndarray, nonmember_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(FPR, TPR) at every distinct threshold of one attack, from (0, 0) to (1, 1); ties move together."""
    mem = np.asarray(member_scores, dtype=np.float64).ravel()
    non = np.asarray(nonmember_scores, dtype=np.float64).ravel()
    scores = np.concatenate([mem, non])
    labels = np.concatenate([np.ones(len(mem)), np.zeros(len(non))])
    order = np.argsort(-scores, kind="stable")
    scores, labels = scores[order], labels[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(scores) != 0), len(scores) - 1]
    tp = np.cumsum(labels)[last_of_tie]
    fp = np.cumsum(1.0 - labels)[last_of_tie]
    return np.r_[0.0, fp / len(non)], np.r_[0.0, tp / len(mem)]


def auc(member_scores: np.ndarray, nonmember_scores: np.ndarray) -> np.ndarray:
    """Area under the ROC curve = P(member score > non-member score) + P(tie) / 2 (per leading row)."""
    mem = np.asarray(member_scores, dtype=np.float64)
    non = np.asarray(nonmember_scores, dtype=np.float64)
    n_m, n_n = mem.shape[-1], non.shape[-1]
    ranks = stats.rankdata(np.concatenate([mem, non], axis=-1), axis=-1)  # average ranks for ties
    u = ranks[..., :n_m].sum(axis=-1) - n_m * (n_m + 1) / 2.0
    return u / (n_m * n_n)


def max_advantage(member_scores: np.ndarray, nonmember_scores: np.ndarray) -> float:
    """Largest |TPR - FPR| over all thresholds (the membership advantage of the best threshold)."""
    fpr, tpr = roc_curve(member_scores, nonmember_scores)
    return float(np.max(np.abs(tpr - fpr)))


def tpr_at_fpr(member_scores: np.ndarray, nonmember_scores: np.ndarray, fpr_target: float) -> float:
    """Largest TPR over thresholds whose FPR does not exceed `fpr_target`."""
    fpr, tpr = roc_curve(member_scores, nonmember_scores)
    return float(tpr[fpr <= fpr_target + 1e-12].max())


def clopper_pearson(
    k: np.ndarray | int, n: np.ndarray | int, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided exact binomial interval for k successes in n trials."""
    k, n = np.asarray(k, dtype=np.float64), np.asarray(n, dtype=np.float64)
    a = (1.0 - confidence) / 2.0
    lo = np.where(k > 0, stats.beta.ppf(a, k, n - k + 1), 0.0)
    hi = np.where(k < n, stats.beta.ppf(1.0 - a, k + 1, n - k), 1.0)
    return lo, hi


def clopper_pearson_upper(k: np.ndarray | int, n: np.ndarray | int, confidence: float = 0.95) -> np.ndarray:
    """One-sided exact upper bound on a binomial proportion at `confidence`."""
    k, n = np.asarray(k, dtype=np.float64), np.asarray(n, dtype=np.float64)
    return np.where(k < n, stats.beta.ppf(confidence, k + 1, n - k), 1.0)


def epsilon_lower_bounds(
    false_positives: np.ndarray | int,
    n_nonmembers: int,
    false_negatives: np.ndarray | int,
    n_members: int,
    delta: float,
    confidence: float = 0.95,
) -> np.ndarray:
    """`epsilon_lower_bound` for arrays of error counts (one bound per element)."""
    level = 1.0 - (1.0 - confidence) / 2.0
    fpr = np.asarray(clopper_pearson_upper(false_positives, n_nonmembers, level), dtype=np.float64)
    fnr = np.asarray(clopper_pearson_upper(false_negatives, n_members, level), dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        one = np.where((fnr > 0) & (1.0 - delta - fpr > 0), np.log((1.0 - delta - fpr) / fnr), 0.0)
        two = np.where((fpr > 0) & (1.0 - delta - fnr > 0), np.log((1.0 - delta - fnr) / fpr), 0.0)
    return np.maximum(np.maximum(one, two), 0.0)


def epsilon_lower_bound(
    false_positives: int,
    n_nonmembers: int,
    false_negatives: int,
    n_members: int,
    delta: float,
    confidence: float = 0.95,
) -> float:
    """Lower bound on epsilon of an (epsilon, delta)-DP training algorithm implied by one attack's errors,
    holding with probability `confidence` when the counted trials are independent: upper Clopper-Pearson
    bounds on FPR and FNR (each at level 1 - (1 - confidence) / 2), then
    max(ln((1 - delta - FPR) / FNR), ln((1 - delta - FNR) / FPR)), floored at 0.

    The threshold must be chosen on data independent of the counted examples, or the bound is inflated.
    """
    return float(epsilon_lower_bounds(false_positives, n_nonmembers, false_negatives, n_members, delta, confidence))


def p_err_floor(epsilon: np.ndarray | float, delta: float) -> np.ndarray:
    """Smallest attack error an (epsilon, delta)-DP algorithm allows: (1 - delta) / (1 + e^epsilon)."""
    return (1.0 - delta) / (1.0 + np.exp(np.asarray(epsilon, dtype=np.float64)))


def mean_ci(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t confidence interval of the mean (NaN half-width for a single value)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return math.nan, math.nan, math.nan
    m = float(v.mean())
    if len(v) < 2:
        return m, math.nan, math.nan
    half = float(stats.t.ppf((1 + confidence) / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
    return m, m - half, m + half
