"""Epsilon lower bounds at a stated confidence from an attack whose threshold was chosen on held-out runs.

Choosing the threshold on the very scores that are then counted overfits the bound (the best of
many thresholds looks better than it is), so the threshold is chosen on calibration runs and the
errors are counted on the other runs; Clopper-Pearson bounds on those counts give the epsilon
lower bound (`metrics.epsilon_lower_bound`).

Clopper-Pearson needs independent trials. Runs of one seed share their randomness and every run
reuses the same examples, so the (run, example) pairs of the evaluation runs are not independent:
counted as trials they give a *score* (`epsilon_score_pooled`), not a bound. The bound
(`unit_bound`, `trial_bound`) counts one member trial and one non-member trial per independent
unit (an evaluation seed): one example of each kind drawn at random (seeded, independent of the
scores) from one run of that unit, an example never counted twice nor used to calibrate
(docs/methods.md, section 6).
"""

from __future__ import annotations

import numpy as np

from .metrics import epsilon_lower_bound, epsilon_lower_bounds

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
    bounds = epsilon_lower_bounds(fp, len(non), fn, len(mem), delta, confidence)
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


def trial_bound(
    calibration: tuple[np.ndarray, np.ndarray],
    member_trials: np.ndarray,
    nonmember_trials: np.ndarray,
    delta: float,
    confidence: float,
    n_candidates: int = 200,
) -> dict[str, float | int | bool | str]:
    """The epsilon lower bound from one member trial and one non-member trial per independent unit (the
    scores `member_trials[u]`, `nonmember_trials[u]`), the threshold chosen on the calibration scores."""
    n_units = len(member_trials)
    if n_units == 0 or len(nonmember_trials) != n_units:
        raise ValueError(
            f"need one member and one non-member trial per unit, got {n_units} and {len(nonmember_trials)}"
        )
    out = heldout_bound(calibration, (member_trials, nonmember_trials), delta, confidence, n_candidates)
    return {**out, "unit": "seed", "n_units": n_units, "n_trials": 2 * n_units, "low_n": low_n(n_units)}


def example_halves(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random split of n examples into calibration examples (n // 2) and evaluation examples (the rest),
    the evaluation examples in random order."""
    order = rng.permutation(n)
    return np.sort(order[: n // 2]), order[n // 2 :]


def unit_bound(
    calibration: tuple[np.ndarray, np.ndarray],
    member_scores: np.ndarray,
    nonmember_scores: np.ndarray,
    delta: float,
    confidence: float,
    n_candidates: int = 200,
    seed: int = TRIAL_SEED,
) -> dict[str, float | int | bool | str]:
    """The epsilon lower bound of an attack on fixed members and non-members, one unit per evaluation seed.

    `calibration` holds the (runs, n_m) member and (runs, n_n) non-member scores of the calibration runs;
    row u of `member_scores` (U, n_m) and `nonmember_scores` (U, n_n) the scores of unit u's evaluated run.
    The examples are split at random (`seed`) into calibration and evaluation halves: the threshold is
    chosen on the calibration runs' calibration examples, and each unit counts one evaluation member and
    one evaluation non-member, distinct from every other unit's (units beyond the evaluation examples are
    left out). A counted trial thus shares neither its run's randomness nor its example with the
    calibration or with another trial (docs/methods.md, section 6).
    """
    mem, non = np.atleast_2d(member_scores), np.atleast_2d(nonmember_scores)
    rng = np.random.default_rng(seed)
    cal_m, eval_m = example_halves(mem.shape[1], rng)
    cal_n, eval_n = example_halves(non.shape[1], rng)
    n_units = min(len(mem), len(eval_m), len(eval_n))
    if n_units == 0:
        raise ValueError(
            f"no evaluation unit: {len(mem)} evaluation seeds, {mem.shape[1]} members, {non.shape[1]} non-members"
        )
    cal = (np.atleast_2d(calibration[0])[:, cal_m], np.atleast_2d(calibration[1])[:, cal_n])
    rows = np.arange(n_units)
    return trial_bound(cal, mem[rows, eval_m[:n_units]], non[rows, eval_n[:n_units]], delta, confidence, n_candidates)


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
