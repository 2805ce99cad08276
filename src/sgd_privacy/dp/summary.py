"""Summary tables of the DP study: means and 95% CIs over repeats per (configuration, epoch, attack),
the sweeps, the outliers and the final rows the ledger composes."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..attacks.metrics import mean_ci

METRICS = (
    "test_accuracy",
    "train_accuracy",
    "p_err",
    "fpr",
    "fnr",
    "advantage",
    "max_advantage",
    "auc",
    "epsilon",
    "p_err_floor",
)
KEYS = ["configuration", "epoch", "attack"]


def summary_table(runs: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Per (configuration, epoch, attack): repeats and, per metric, its mean with a Student-t CI."""
    rows = []
    for key, group in runs.groupby(KEYS, sort=True):
        row = dict(zip(KEYS, key, strict=True))
        first = group.iloc[0]
        row.update(
            dataset=first["dataset"],
            algorithm=first["algorithm"],
            noise_multiplier=first["noise_multiplier"],
            repeats=len(group),
        )
        for metric in METRICS:
            values = group[metric].to_numpy(dtype=np.float64)
            if np.isinf(values).all():  # epsilon of non-private runs
                row.update({metric: np.inf, f"{metric}_lo": np.inf, f"{metric}_hi": np.inf})
                continue
            m, lo, hi = mean_ci(values, confidence)
            row.update({metric: m, f"{metric}_lo": lo, f"{metric}_hi": hi})
        rows.append(row)
    return pd.DataFrame(rows)


def dominated(privacy: np.ndarray, utility: np.ndarray) -> np.ndarray:
    """Whether another point has higher privacy and no less utility, or higher utility and no less privacy."""
    p, u = np.asarray(privacy, dtype=np.float64), np.asarray(utility, dtype=np.float64)
    p_ge, u_ge = p[None, :] >= p[:, None], u[None, :] >= u[:, None]  # [i, j]: point j vs point i
    p_gt, u_gt = p[None, :] > p[:, None], u[None, :] > u[:, None]
    return np.asarray(((p_gt & u_ge) | (u_gt & p_ge)).any(axis=1))


def sweep_table(summary: pd.DataFrame, membership: list[dict]) -> pd.DataFrame:
    """The summary rows of every sweep point, with the sweep, its swept key and the point's label, and whether
    another (point, epoch) of the same sweep beats it on mean P_err (privacy) and test accuracy (utility)
    against the same attack (`dominated`: early stopping counts, every epoch is a candidate)."""
    points = pd.DataFrame(membership, columns=["sweep", "configuration", "label", "key"])
    table = points.merge(summary, on="configuration", how="inner")
    table["dominated"] = False
    for _, idx in table.groupby(["sweep", "attack"]).groups.items():
        rows = table.loc[idx]
        table.loc[idx, "dominated"] = dominated(rows["p_err"].to_numpy(), rows["test_accuracy"].to_numpy())
    return table.sort_values(["sweep", "configuration", "epoch", "attack"]).reset_index(drop=True)


def outlier_table(examples: pd.DataFrame, repeats: int) -> pd.DataFrame:
    """Per (configuration, epoch, attack, member): examples identified in all `repeats` runs, count and share."""
    per_example = examples.groupby(KEYS + ["member", "example"], sort=True)["identified"].agg(["sum", "size"])
    if (per_example["size"] != repeats).any():
        bad = per_example[per_example["size"] != repeats].reset_index().iloc[0]
        raise ValueError(
            f"configuration {bad['configuration']!r} has {bad['size']} runs of example {bad['example']} at epoch "
            f"{bad['epoch']}, expected {repeats} repeats"
        )
    per_example["outlier"] = per_example["sum"] == repeats
    out = per_example.groupby(KEYS + ["member"], sort=True)["outlier"].agg(["sum", "size"]).reset_index()
    out = out.rename(columns={"sum": "outliers", "size": "examples"})
    out["outlier_fraction"] = out["outliers"] / out["examples"]
    return out


def final_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Each run's last epoch (one row per configuration and repeat; the attack rows share these columns)."""
    last = runs.groupby(["configuration", "repeat"])["epoch"].transform("max")
    return runs[(runs["epoch"] == last)].drop_duplicates(["configuration", "repeat"]).reset_index(drop=True)
