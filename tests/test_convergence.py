"""Convergence detection on hand-made validation curves, and the history tables."""

import numpy as np
import pandas as pd
import pytest

from sgd_privacy.train.convergence import convergence_index, experiment_T
from sgd_privacy.train.history import convergence_tables

CURVES = np.array(
    [
        [5, 4, 3, 3.5, 3.2, 3.1, 2.0, 1.0],  # vs best: 3, 4, 5 fail -> 5; vs previous: 3 fails, 4 and 5 decrease
        [5, 4, 3, 2, 1, 0.5, 0.4, 0.3],  # always decreasing -> not converged, last index (both rules)
        [5, 6, 7, 8, 1, 1, 1, 1],  # fails at 1, 2, 3 under both rules -> 3
        [5, 4, 4, 4, 3, 3, 3, 2],  # ties fail, but only two in a row -> never (both rules)
        [4, 5, 4.5, 4.2, 4.1, 4.0, 3.9, 3.8],  # noisy descent above the best: best stops at 3, previous never
        [3, 4, 3.5, 3.6, 3.7, 3.0, 2.0, 1.0],  # previous: fails at 1, 3, 4 (2 and 5 decrease): two in a row at most
    ],
    dtype=float,
)


def test_previous_rule_is_the_default_and_counts_logs_not_beating_the_previous_one():
    # by hand, log k fails when val[k] >= val[k - 1]; converged at the third consecutive failure
    index, converged = convergence_index(CURVES, patience=3)
    assert converged.tolist() == [False, False, True, False, False, False]
    assert index.tolist() == [7, 7, 3, 7, 7, 7]
    index, converged = convergence_index(CURVES, patience=2)
    assert converged.tolist() == [False, False, True, True, False, True]
    assert index.tolist() == [7, 7, 2, 3, 7, 4]  # row 5: logs 3 (3.6 >= 3.5) and 4 (3.7 >= 3.6)


def test_best_rule_counts_logs_not_beating_the_best_so_far():
    index, converged = convergence_index(CURVES, patience=3, rule="best")
    assert converged.tolist() == [True, False, True, False, True, True]
    assert index.tolist() == [5, 7, 3, 7, 3, 3]  # rows 4 and 5: logs 1, 2, 3 never beat log 0
    with pytest.raises(ValueError, match="unknown convergence rule 'last'"):
        convergence_index(CURVES, rule="last")


def test_patience_and_nan_curves():
    for rule in ("previous", "best"):
        index, converged = convergence_index(np.array([[1.0, 2.0, 0.5, 0.6]]), patience=1, rule=rule)
        assert index.tolist() == [1] and converged.tolist() == [True]
        index, converged = convergence_index(np.array([[1.0, np.nan, np.nan, np.nan, np.nan]]), patience=3, rule=rule)
        assert index.tolist() == [3] and converged.tolist() == [True]  # NaN never improves: diverged runs stop


def test_experiment_T_is_lower_median_of_converged_variable_runs():
    run_T = np.array([100, 300, 200, 400, 900, 50, 990])
    variable = np.array([True, True, True, True, False, True, True])
    diverged = np.array([False, False, False, False, False, True, False])
    converged = np.array([True, True, True, True, True, True, False])
    assert experiment_T(run_T, variable, diverged, converged) == 200  # median of 100, 200, 300, 400
    # had the unconverged run (its last step, 990) been counted, the lower median would be 300
    assert experiment_T(run_T, variable, diverged, np.ones(7, bool)) == 300
    with pytest.raises(ValueError, match="every run diverged"):
        experiment_T(run_T, variable, np.ones(7, bool), converged)
    assert experiment_T(run_T, variable, diverged, np.zeros(7, bool)) is None


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
    assert summary["convergence_rule"].item() == "previous" and summary["n_not_converged"].item() == 0
    _, summary = convergence_tables(frame, patience=3, T=20)
    assert summary["T"].item() == 20 and summary["T_source"].item() == "config"
    with pytest.raises(ValueError, match="configured T = 25 is not a logged step"):
        convergence_tables(frame, patience=3, T=25)


def test_unconverged_runs_are_counted_and_left_out_of_the_median():
    frame = history(
        {
            (0, "variable"): [3, 2, 2, 2, 2, 1, 1],  # fails at 2, 3, 4 -> converged at t = 40
            (1, "variable"): [6, 5, 4, 3, 2, 1, 0],  # never: its last step (60) must not enter the median
            (2, "variable"): [3, 3, 3, 3, 2, 1, 0],  # fails at 1, 2, 3 -> t = 30
        }
    )
    runs, summary = convergence_tables(frame, patience=3)
    assert runs.set_index("seed")["converged"].to_dict() == {0: True, 1: False, 2: True}
    assert summary["T"].item() == 30  # lower median of 30 and 40 (with 60 counted it would be 40)
    assert summary["n_converged"].item() == 2 and summary["n_not_converged"].item() == 1
    never = history({(0, "variable"): [3, 2, 1, 0]})
    _, summary = convergence_tables(never, patience=3)  # no median: the last step, and the table says so
    assert summary["T"].item() == 30 and summary["T_median"].item() == -1
    assert summary["T_source"].item().startswith("last logged step: no run converged")
    assert summary["n_not_converged"].item() == 1
    _, summary = convergence_tables(never, patience=3, T=20)
    assert summary["T"].item() == 20 and summary["T_source"].item() == "config"
