"""Convergence point of runs and experiments (docs/methods.md, section 3)."""

from __future__ import annotations

import numpy as np


def convergence_index(val_loss: np.ndarray, patience: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Per run (rows), the first log index at which validation loss has not improved on its best
    so far for `patience` consecutive logs; returns (index, converged). Unconverged runs get the last index."""
    val = np.atleast_2d(np.asarray(val_loss, dtype=np.float64))
    runs, n = val.shape
    if n < 2:
        return np.full(runs, n - 1), np.zeros(runs, dtype=bool)
    best_before = np.minimum.accumulate(np.where(np.isfinite(val), val, np.inf), axis=1)[:, :-1]
    stalled = ~(val[:, 1:] < best_before)  # (runs, n - 1): log k+1 failed to improve
    pos = np.arange(1, n)
    last_improved = np.maximum.accumulate(np.where(stalled, 0, pos), axis=1)
    run_length = pos - last_improved
    hit = run_length >= patience
    converged = hit.any(axis=1)
    index = np.where(converged, pos[np.argmax(hit, axis=1)], n - 1)
    return np.asarray(index), np.asarray(converged)


def experiment_T(run_T: np.ndarray, variable: np.ndarray, diverged: np.ndarray) -> int:
    """Median convergence step over variable-init, non-diverged runs (lower median, so it is a logged step)."""
    pool = run_T[variable & ~diverged]
    if pool.size == 0:
        pool = run_T[~diverged]
    if pool.size == 0:
        raise ValueError("every run diverged: no convergence point; lower the learning rate")
    return int(np.sort(pool)[(pool.size - 1) // 2])
