"""Convergence detection on hand-made validation curves, and the history tables."""

import numpy as np
import pandas as pd
import pytest

from sgd_privacy.train.convergence import convergence_index, experiment_T
from sgd_privacy.train.history import convergence_tables


def test_first_log_after_three_non_improvements():
    curves = np.array(
        [
            [5, 4, 3, 3.5, 3.2, 3.1, 2.0, 1.0],  # best 3 at index 2; indices 3, 4, 5 fail -> 5
            [5, 4, 3, 2, 1, 0.5, 0.4, 0.3],  # always improving -> not converged, last index
            [5, 6, 7, 8, 1, 1, 1, 1],  # fails at 1, 2, 3 -> 3
            [5, 4, 4, 4, 3, 3, 3, 2],  # ties are not improvements, but only two in a row -> never
        ],
        dtype=float,
    )
    index, converged = convergence_index(curves, patience=3)
    assert index.tolist() == [5, 7, 3, 7]
    assert converged.tolist() == [True, False, True, False]


def test_patience_and_nan_curves():
    index, converged = convergence_index(np.array([[1.0, 2.0, 0.5, 0.6]]), patience=1)
    assert index.tolist() == [1] and converged.tolist() == [True]
    index, converged = convergence_index(np.array([[1.0, np.nan, np.nan, np.nan, np.nan]]), patience=3)
    assert index.tolist() == [3] and converged.tolist() == [True]  # NaN never improves: diverged runs stop


def test_experiment_T_is_lower_median_of_variable_runs():
    run_T = np.array([100, 300, 200, 400, 900, 50])
    variable = np.array([True, True, True, True, False, True])
    diverged = np.array([False, False, False, False, False, True])
    assert experiment_T(run_T, variable, diverged) == 200  # median of 100, 200, 300, 400 on the log grid
    with pytest.raises(ValueError, match="every run diverged"):
        experiment_T(run_T, variable, np.ones(6, bool))


def history(val_curves: dict) -> pd.DataFrame:
    rows = []
    for (seed, init), curve in val_curves.items():
        for k, v in enumerate(curve):
            rows.append(
                {
                    "experiment": "e",
                    "seed": seed,
                    "replace_index": 1,
                    "init": init,
                    "t": 10 * k,
                    "train_loss": v,
                    "train_acc": 0.5,
                    "val_loss": v,
                    "val_acc": 0.9,
                    "diverged": False,
                }
            )
    return pd.DataFrame(rows)


def test_convergence_tables_median_and_override():
    frame = history(
        {(0, "variable"): [3, 2, 2, 2, 2, 1], (1, "variable"): [3, 2, 1, 1, 1, 1], (2, "fixed"): [3, 3, 3, 3, 3, 3]}
    )
    runs, summary = convergence_tables(frame, patience=3)
    assert runs.set_index("seed")["T_run"].to_dict() == {0: 40, 1: 50, 2: 30}
    assert summary["T"].item() == 40 and summary["T_source"].item().startswith("median")
    _, summary = convergence_tables(frame, patience=3, T=20)
    assert summary["T"].item() == 20 and summary["T_source"].item() == "config"
    with pytest.raises(ValueError, match="configured T = 25 is not a logged step"):
        convergence_tables(frame, patience=3, T=25)
