"""Epsilon lower bounds at a stated confidence from an attack whose threshold was chosen on held-out runs.

Choosing the threshold on the very scores that are then counted overfits the bound (the best of
many thresholds looks better than it is), so the threshold is chosen on calibration runs and the
errors are counted on the other runs; Clopper-Pearson bounds on those counts give the epsilon
lower bound (`metrics.epsilon_lower_bound`).

Clopper-Pearson needs independent trials. Runs of one seed share their randomness and every run
reuses the same examples, so the (run, example) pairs of the evaluation runs are not independent:
counted as trials they give a *score* (`epsilon_score_pooled`), not a bound. The bound
(`unit_bound`) counts one member trial and one non-member trial per independent unit (an
evaluation seed): one example of each kind drawn at random (seeded, independent of the scores)
from one run of that unit (docs/methods.md, section 6).
"""

from __future__ import annotations

import numpy as np

from .metrics import epsilon_lower_bound

LOW_N = 30
"""A statistic computed from fewer than LOW_N independent units (runs of a t-test, seeds of a bound,
targets of an AUC interval) carries low_n = True."""
TRIAL_SEED = 20231
"""Seed of the random draws that pick each unit's counted run and examples (independent of every score)."""


def low_n(n_units: int) -> bool:
    """Whether a statistic from `n_units` independent units is flagged as resting on too few (< LOW_N)."""
    return bool(n_units < LOW_N)


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


def pick_trials(n_units: int, n_choices: int, rng: np.random.Generator) -> np.ndarray:
    """One index in 0..n_choices - 1 per unit, uniform and independent of everything but `rng`."""
    if n_choices < 1:
        raise ValueError(f"cannot pick a trial among {n_choices} choices")
    return rng.integers(0, n_choices, size=n_units)


def unit_bound(
    calibration: tuple[np.ndarray, np.ndarray],
    member_scores: np.ndarray,
    nonmember_scores: np.ndarray,
    delta: float,
    confidence: float,
    n_candidates: int = 200,
    seed: int = TRIAL_SEED,
) -> dict[str, float | int | bool | str]:
    """The epsilon lower bound with one member and one non-member trial per independent unit.

    Row u of `member_scores` (U, n_m) and `nonmember_scores` (U, n_n) holds the scores of unit u's
    evaluated run; one member and one non-member column per row are drawn at random (`seed`). The
    threshold is chosen on the calibration scores, so the U member trials are independent given the
    calibration, and so are the U non-member trials; each count gets its own Clopper-Pearson bound.
    """
    mem, non = np.atleast_2d(member_scores), np.atleast_2d(nonmember_scores)
    n_units = len(mem)
    if n_units == 0:
        raise ValueError("no evaluation unit: the bound needs at least one evaluation seed")
    rng = np.random.default_rng(seed)
    m_pick = pick_trials(n_units, mem.shape[1], rng)
    n_pick = pick_trials(n_units, non.shape[1], rng)
    rows = np.arange(n_units)
    out = heldout_bound(calibration, (mem[rows, m_pick], non[rows, n_pick]), delta, confidence, n_candidates)
    return {**out, "unit": "seed", "n_units": n_units, "n_trials": 2 * n_units, "low_n": low_n(n_units)}


def pooled_score(
    calibration: tuple[np.ndarray, np.ndarray],
    evaluation: tuple[np.ndarray, np.ndarray],
    delta: float,
    confidence: float,
    n_candidates: int = 200,
) -> dict[str, float | int]:
    """The former figure: every evaluated (run, example) pair counted as a trial. Its trials are not
    independent, so it is a score (`epsilon_score_pooled`), not a bound at `confidence`."""
    out = heldout_bound(calibration, evaluation, delta, confidence, n_candidates)
    score = out.pop("epsilon_lower_bound")
    return {**{f"{k}_pooled": v for k, v in out.items()}, "epsilon_score_pooled": score}
