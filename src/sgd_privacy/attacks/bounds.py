"""Epsilon lower bounds at a stated confidence from an attack whose threshold was chosen on held-out runs.

Choosing the threshold on the very scores that are then counted overfits the bound (the best of
many thresholds looks better than it is), so the threshold is chosen on calibration runs and the
errors are counted on the other runs; Clopper-Pearson bounds on those counts give the epsilon
lower bound (`metrics.epsilon_lower_bound`).
"""

from __future__ import annotations

import numpy as np

from .metrics import epsilon_lower_bound


def error_counts(member_scores: np.ndarray, nonmember_scores: np.ndarray, threshold: float) -> tuple[int, int]:
    """(false positives, false negatives) of the rule "member if score >= threshold"."""
    fp = int((np.asarray(nonmember_scores) >= threshold).sum())
    fn = int((np.asarray(member_scores) < threshold).sum())
    return fp, fn


def choose_threshold(
    member_scores: np.ndarray,
    nonmember_scores: np.ndarray,
    delta: float,
    confidence: float,
    n_candidates: int,
) -> float:
    """The threshold, among `n_candidates` quantiles of the pooled scores, whose errors on these scores
    give the largest epsilon lower bound (ties: the smallest such threshold)."""
    mem, non = np.ravel(member_scores), np.ravel(nonmember_scores)
    candidates = np.unique(np.quantile(np.concatenate([mem, non]), np.linspace(0.0, 1.0, n_candidates)))
    mem_sorted, non_sorted = np.sort(mem), np.sort(non)
    fp = len(non) - np.searchsorted(non_sorted, candidates, side="left")  # non-members scoring >= c
    fn = np.searchsorted(mem_sorted, candidates, side="left")  # members scoring < c
    bounds = [
        epsilon_lower_bound(int(a), len(non), int(b), len(mem), delta, confidence) for a, b in zip(fp, fn, strict=True)
    ]
    return float(candidates[int(np.argmax(bounds))])


def heldout_bound(
    calibration: tuple[np.ndarray, np.ndarray],
    evaluation: tuple[np.ndarray, np.ndarray],
    delta: float,
    confidence: float,
    n_candidates: int = 200,
) -> dict[str, float]:
    """Threshold chosen on the calibration (member, non-member) scores, errors counted on the evaluation
    scores, and the resulting epsilon lower bound holding with probability `confidence`."""
    threshold = choose_threshold(*calibration, delta, confidence, n_candidates)
    mem, non = np.ravel(evaluation[0]), np.ravel(evaluation[1])
    fp, fn = error_counts(mem, non, threshold)
    return {
        "threshold": threshold,
        "false_positives": fp,
        "n_nonmembers": len(non),
        "false_negatives": fn,
        "n_members": len(mem),
        "fpr": fp / len(non),
        "fnr": fn / len(mem),
        "epsilon_lower_bound": epsilon_lower_bound(fp, len(non), fn, len(mem), delta, confidence),
    }
