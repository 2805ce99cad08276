"""Yeom's loss-threshold attack with the training seed known or hidden (the study's Table 6).

Each attacked run is a trained model; its members are the first rows of its own training set
D_i and its non-members the first test rows. The attack says "member" when an example's loss
is at most tau, the mean loss of a *threshold model* on further training rows of D_i. With
the seed known the threshold model is the attacked run itself; with the seed hidden it is a
run with another seed, the same replace index and the same init mode (its partner).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from .bounds import low_n
from .metrics import loss_threshold_metrics

GROUP = ["experiment", "replace_index", "init", "t"]
METRICS = ("accuracy", "epsilon_accuracy", "tpr", "fpr", "advantage", "p_err", "epsilon_advantage")
SETTINGS = ("known", "hidden")


def partner_rows(runs: pd.DataFrame) -> np.ndarray:
    """For each row (a run at a step), the row of its seed-hidden threshold model: the run with the
    next larger seed (cyclically) among rows of the same experiment, replace index, init and step;
    -1 where the row is alone. `runs` needs the GROUP columns and `seed`."""
    partner = np.full(len(runs), -1, dtype=np.int64)
    order = runs.reset_index(drop=True).sort_values(GROUP + ["seed"], kind="stable")
    for _, rows in order.groupby(GROUP, sort=False):
        idx = rows.index.to_numpy()
        if len(idx) > 1:
            partner[idx] = np.roll(idx, -1)
    return partner


def attack_table(
    runs: pd.DataFrame, member_losses: np.ndarray, nonmember_losses: np.ndarray, threshold_loss: np.ndarray
) -> pd.DataFrame:
    """One row per attacked run and step with the partner's seed, both thresholds and every metric of
    the loss-threshold attack with the seed known (`*_known`) and hidden (`*_hidden`).
    Runs without a partner (alone in their group) are dropped."""
    runs = runs.reset_index(drop=True)
    partner = partner_rows(runs)
    ok = partner >= 0
    out = runs.loc[ok].reset_index(drop=True)
    out["partner_seed"] = runs["seed"].to_numpy()[partner[ok]]
    taus = {"known": threshold_loss[ok], "hidden": threshold_loss[partner[ok]]}
    for setting, tau in taus.items():
        out[f"tau_{setting}"] = tau
        values = loss_threshold_metrics(member_losses[ok], nonmember_losses[ok], tau)
        for name in METRICS:
            out[f"{name}_{setting}"] = values[name]
    out["n_members"] = member_losses.shape[1]
    out["n_nonmembers"] = nonmember_losses.shape[1]
    return out


def paired_one_sided_p(known: np.ndarray, hidden: np.ndarray) -> float:
    """p-value of the paired t-test of H0: mean(known - hidden) <= 0 against > 0 (NaN below two pairs
    or when every difference is equal)."""
    diff = np.asarray(known, dtype=np.float64) - np.asarray(hidden, dtype=np.float64)
    if len(diff) < 2 or np.all(diff == diff[0]):
        return float("nan")
    return float(stats.ttest_rel(known, hidden, alternative="greater").pvalue)


def table6(attacks: pd.DataFrame) -> pd.DataFrame:
    """Per experiment, step and init mode: both mean attack accuracies and epsilons, their differences, the
    one-sided paired t-test p-values (seed known stronger than hidden), mean advantages, the number of attacked
    runs (the t-test's units, `n_units`, with `low_n` below `bounds.LOW_N`) and the mean train/validation loss
    ratio. Fixed- and variable-init runs are never pooled: in a fixed-init pair the seed-hidden threshold
    model shares the attacked run's initialisation (the study's Table 6 is variable init). Diverged runs are
    left out."""
    rows = []
    for (experiment, _t, init), g in attacks[~attacks["diverged"]].groupby(["experiment", "t", "init"], sort=True):
        row: dict = {"experiment": experiment, "t": int(g["t"].iloc[0]), "init": init, "n_runs": len(g)}
        for name in ("accuracy", "epsilon_accuracy", "advantage", "epsilon_advantage"):
            known, hidden = g[f"{name}_known"].to_numpy(), g[f"{name}_hidden"].to_numpy()
            row[f"{name}_known"] = float(known.mean())
            row[f"{name}_hidden"] = float(hidden.mean())
            row[f"{name}_diff"] = float((known - hidden).mean())
            row[f"p_value_{name}"] = paired_one_sided_p(known, hidden)
        row["loss_ratio"] = float((g["train_loss"] / g["val_loss"]).mean())
        row["n_members"] = int(g["n_members"].iloc[0])
        row["n_nonmembers"] = int(g["n_nonmembers"].iloc[0])
        row["n_units"] = len(g)
        row["low_n"] = low_n(len(g))
        rows.append(row)
    return pd.DataFrame(rows)
