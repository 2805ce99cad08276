"""Convergence point of runs and experiments (docs/methods.md, section 3)."""

from __future__ import annotations

import numpy as np

from ..errors import TrainingError

CONVERGENCE_RULES = ("previous", "best")


def convergence_index(val_loss: np.ndarray, patience: int = 3, rule: str = "previous") -> tuple[np.ndarray, np.ndarray]:
    """Per run (rows), the first log index ending `patience` consecutive logs that failed to decrease the
    validation loss; returns (index, converged). Unconverged runs get the last index.

    rule "previous" (the study's): log k fails when val[k] >= val[k-1]. rule "best": log k fails when
    it does not beat the best value of logs 0..k-1 (stops earlier on noisy curves). NaN never decreases.
    """
    if rule not in CONVERGENCE_RULES:
        raise TrainingError(f"unknown convergence rule {rule!r}; use one of {', '.join(CONVERGENCE_RULES)}")
    val = np.atleast_2d(np.asarray(val_loss, dtype=np.float64))
    runs, n = val.shape
    if n < 2:
        return np.full(runs, n - 1), np.zeros(runs, dtype=bool)
    finite = np.where(np.isfinite(val), val, np.inf)
    reference = np.minimum.accumulate(finite, axis=1)[:, :-1] if rule == "best" else finite[:, :-1]
    stalled = ~(val[:, 1:] < reference)  # (runs, n - 1): log k+1 failed to decrease
    pos = np.arange(1, n)
    last_improved = np.maximum.accumulate(np.where(stalled, 0, pos), axis=1)
    run_length = pos - last_improved
    hit = run_length >= patience
    converged = hit.any(axis=1)
    index = np.where(converged, pos[np.argmax(hit, axis=1)], n - 1)
    return np.asarray(index), np.asarray(converged)


def experiment_T(run_T: np.ndarray, variable: np.ndarray, diverged: np.ndarray, converged: np.ndarray) -> int | None:
    """Median convergence step over converged, variable-init, non-diverged runs (lower median, so it is a
    logged step); all converged non-diverged runs when no variable-init run converged; None when none did."""
    if diverged.all():
        raise TrainingError("every run diverged: no convergence point; lower the learning rate")
    usable = converged & ~diverged
    pool = run_T[variable & usable]
    if pool.size == 0:
        pool = run_T[usable]
    if pool.size == 0:
        return None
    return int(np.sort(pool)[(pool.size - 1) // 2])
