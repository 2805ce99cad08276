"""Tables of the report: the stages' outputs summarised, with the studies' printed values beside them.

Every function takes DataFrames (and the experiments' config slice where the model or dataset is
needed) and returns a DataFrame; columns named `study_*` hold the study's value, `study_dataset`
names the study row compared (with a proxy note where the pipeline's dataset only stands in for
the study's).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy import stats

from ..attacks.metrics import mean_ci
from . import study_values as sv
from .frames import require
from .verdict import interval_verdict


def experiment_info(experiments: Mapping[str, Mapping], name: str) -> dict[str, str]:
    """Model and dataset of an experiment from the config slice ('?' where it is not given)."""
    exp = experiments.get(name, {})
    return {"model": str(exp.get("model", "?")), "dataset": str(exp.get("dataset", "?"))}


def _study_key(dataset: str) -> tuple[str | None, str]:
    """The study's dataset for a pipeline dataset and the label to show (marking proxies)."""
    study = sv.study_dataset(dataset)
    if study is None:
        return None, ""
    return study, study + (" (proxy)" if dataset in sv.PROXY_NOTE else "")


def dataset_table(meta: pd.DataFrame) -> pd.DataFrame:
    """Datasets: sizes and feature dimension, beside the study's Table 1 where it has the dataset."""
    require(meta, ["dataset", "n_train", "n_test", "n_features"], "dataset_meta")
    rows = []
    for rec in meta.sort_values("dataset").to_dict("records"):
        study, label = _study_key(rec["dataset"])
        ref = sv.TABLE1_SIZES.get(study or "", {})
        rows.append(
            {
                "dataset": rec["dataset"],
                "description": rec.get("description", ""),
                "n_train": rec["n_train"],
                "n_val": rec.get("n_val", np.nan),
                "n_test": rec["n_test"],
                "n_features": rec["n_features"],
                "study_dataset": label,
                "study_n_train": ref.get("n_train", np.nan),
                "study_n_test": ref.get("n_test", np.nan),
                "study_n_features": ref.get("n_features", np.nan),
            }
        )
    return pd.DataFrame(rows)


def grid_table(runs: pd.DataFrame, convergence: pd.DataFrame, experiments: Mapping[str, Mapping]) -> pd.DataFrame:
    """Per experiment: model, grid size, T and mean validation accuracy at T, beside the study's
    Table 2 (accuracy) and Table 3 (grid) for the same model and dataset."""
    require(runs, ["experiment", "seed", "replace_index", "init", "diverged"], "runs")
    require(convergence, ["experiment", "T", "val_acc_at_T"], "convergence")
    conv = convergence.set_index("experiment")
    rows = []
    for name, g in runs.groupby("experiment", sort=True):
        info = experiment_info(experiments, str(name))
        study, label = _study_key(info["dataset"])
        key = ("mlp" if info["model"] == "mlp" else info["model"], study or "")
        grid = sv.TABLE3_GRID.get(key, {})
        c = conv.loc[name] if name in conv.index else pd.Series(dtype=float)
        rows.append(
            {
                "experiment": name,
                "model": info["model"],
                "dataset": info["dataset"],
                "seeds": g["seed"].nunique(),
                "datasets_D_i": g["replace_index"].nunique(),
                "init_modes": ", ".join(sorted(g["init"].unique())),
                "models": len(g),
                "diverged": int(g["diverged"].sum()),
                "T": c.get("T", np.nan),
                "val_accuracy_at_T": c.get("val_acc_at_T", np.nan),
                "study_dataset": label,
                "study_accuracy": sv.TABLE2_ACCURACY.get(key, np.nan),
                "study_seeds": grid.get("seeds", np.nan),
                "study_datasets_D_i": grid.get("datasets", np.nan),
                "study_models": grid.get("models", np.nan),
            }
        )
    return pd.DataFrame(rows)


def study_grid(experiments: Mapping[str, Mapping], name: str) -> dict[str, int]:
    """The study's Table 3 grid (seeds, datasets, models) for an experiment's model and dataset (empty if none)."""
    info = experiment_info(experiments, name)
    study, _ = _study_key(info["dataset"])
    return dict(sv.TABLE3_GRID.get((info["model"], study or ""), {}))


def T_kind(convergence: pd.DataFrame | None, name: str) -> str:
    """How an experiment's T was found: 'convergence point', 'last logged step', 'set in the config' or 'unknown'."""
    if convergence is None or "experiment" not in convergence:
        return "unknown"
    rows = convergence[convergence["experiment"] == name]
    if rows.empty:
        return "unknown"
    source = str(rows["T_source"].iloc[0]).lower() if "T_source" in rows else ""
    if "last logged" in source:
        return "last logged step"
    if "config" in source or "set" in source.split(":")[0]:
        return "set in the config"
    if "n_converged" in rows and int(rows["n_converged"].iloc[0]) == 0:
        return "last logged step"
    return "convergence point" if source or "n_converged" in rows else "unknown"


def T_source_words(convergence: pd.DataFrame | None, name: str) -> str:
    """The training stage's own words for how T was found ('unknown' without them)."""
    if convergence is None or "T_source" not in convergence:
        return T_kind(convergence, name)
    rows = convergence[convergence["experiment"] == name]
    return str(rows["T_source"].iloc[0]) if len(rows) else "unknown"


def convergence_table(runs: pd.DataFrame, convergence: pd.DataFrame) -> pd.DataFrame:
    """Per experiment: T, how it was found, and how many runs converged, did not, or diverged (from the
    convergence table's counts, else counted from the runs)."""
    require(runs, ["experiment", "diverged"], "runs")
    require(convergence, ["experiment", "T"], "convergence")
    rows = []
    for name, g in runs.groupby("experiment", sort=True):
        c = convergence[convergence["experiment"] == name]
        first = c.iloc[0] if len(c) else pd.Series(dtype=object)
        diverged = int(first.get("n_diverged", g["diverged"].sum()))
        converged = first.get("n_converged", g["converged"].sum() if "converged" in g else np.nan)
        runs_n = int(first.get("n_runs", len(g)))
        rows.append(
            {
                "experiment": name,
                "T": first.get("T", np.nan),
                "T_found_as": T_kind(convergence, str(name)),
                "T_source": first.get("T_source", ""),
                "runs": runs_n,
                "converged": converged,
                "not_converged": runs_n - diverged - converged if np.isfinite(converged) else np.nan,
                "diverged": diverged,
                "converged_T": T_kind(convergence, str(name)) == "convergence point",
            }
        )
    return pd.DataFrame(rows)


def convergence_words(rec: Mapping) -> str:
    """One experiment's convergence in words: how T was found and the run counts."""
    converged = rec["converged"]
    counts = (
        f"{int(converged)} of {rec['runs']} runs converged, {int(rec['not_converged'])} did not"
        if np.isfinite(converged)
        else f"{rec['runs']} runs (convergence not counted)"
    )
    counts += f", {rec['diverged']} diverged" if rec["diverged"] else ""
    flag = (
        ""
        if rec["converged_T"]
        else "; how T was found is not recorded (no T_source)"
        if rec["T_found_as"] == "unknown"
        else "; T is not a convergence point, so results at T are for that step only"
    )
    return f"T = {rec['T']} ({rec['T_found_as']}); {counts}{flag}."


def distances_table(at_T: pd.DataFrame, over_t: pd.DataFrame, T: Mapping[str, int]) -> pd.DataFrame:
    """Distances at T per experiment and pair kind (pairs, 5%, median, max), the bolt-on bound at T
    and how many times the largest sensitivity distance it is (the study: 3.2 to 6.5 for convex models)."""
    require(at_T, ["experiment", "kind", "distance"], "distances_at_T")
    require(over_t, ["experiment", "kind", "t", "median"], "distances_over_t")
    rows = []
    for (name, kind), g in at_T.groupby(["experiment", "kind"], sort=True):
        d = g["distance"].to_numpy(dtype=float)
        rows.append(
            {
                "experiment": name,
                "kind": kind,
                "T": T.get(str(name), np.nan),
                "pairs": len(d),
                "q05": np.quantile(d, 0.05),
                "median": np.median(d),
                "max": d.max(),
            }
        )
    table = pd.DataFrame(rows)
    bounds = theory_at_T(over_t, T)
    table["bound_at_T"] = table["experiment"].map(bounds)
    sens_max = table[table["kind"] == "sensitivity"].set_index("experiment")["max"]
    table["bound_over_max_sensitivity"] = np.where(
        table["kind"] == "sensitivity", table["bound_at_T"] / table["experiment"].map(sens_max), np.nan
    )
    lo, hi = sv.SECTION_RANGES["theory_over_empirical"]
    table["study_bound_over_max_sensitivity"] = np.where(
        table["kind"].eq("sensitivity") & table["bound_at_T"].notna(), f"{lo}–{hi}", ""
    )
    return table


def theory_at_T(over_t: pd.DataFrame, T: Mapping[str, int]) -> dict[str, float]:
    """The bolt-on bound at each experiment's T (experiments without a bound are left out)."""
    theory = over_t[over_t["kind"] == "sensitivity_theory"]
    out = {}
    for name, g in theory.groupby("experiment"):
        at = g[g["t"] == T.get(str(name), -1)]
        if len(at):
            out[str(name)] = float(at["median"].iloc[0])
    return out


EPSILON_QUANTITIES = (
    ("delta_theory", "Delta_theory (bolt-on bound at T, the study's fractional pass count)", None),
    ("delta_empirical", "Delta_empirical (largest sensitivity distance at T)", None),
    ("sigma", "sigma (smallest per-weight spread)", ("sigma_ci_low", "sigma_ci_high")),
    ("epsilon_theory_analytic", "epsilon with worst-case Delta_theory, analytic Gaussian mechanism", None),
    ("epsilon_empirical_analytic", "epsilon with Delta_empirical, analytic Gaussian mechanism (heuristic)", None),
    ("delta_theory_worst_case", "Delta_theory, worst case (passes begun: the bound)", None),
    ("sigma_max", "largest per-weight spread", None),
    ("epsilon_theory", "epsilon with Delta_theory", ("epsilon_theory_ci_low", "epsilon_theory_ci_high")),
    ("epsilon_theory_weight_min", "epsilon with Delta_theory, weight with the largest spread", None),
    ("epsilon_empirical", "epsilon with Delta_empirical", ("epsilon_empirical_ci_low", "epsilon_empirical_ci_high")),
    ("epsilon_empirical_weight_min", "epsilon with Delta_empirical, weight with the largest spread", None),
)


def epsilon_table(epsilon: pd.DataFrame, experiments: Mapping[str, Mapping]) -> pd.DataFrame:
    """Table 4 in long form: per experiment and quantity, our value with its bootstrap CI and the
    study's value (logistic regression on the study's datasets only)."""
    require(epsilon, ["experiment", "T", "N", "n_seeds", "n_datasets", "sigma", "epsilon_theory"], "epsilon")
    rows = []
    for rec in epsilon.to_dict("records"):
        info = experiment_info(experiments, rec["experiment"])
        study, label = _study_key(info["dataset"])
        ref = sv.TABLE4_EPSILON.get(study or "", {}) if info["model"] == "logreg" else {}
        for col, label_q, ci in EPSILON_QUANTITIES:
            if col not in rec:
                continue
            rows.append(
                {
                    "experiment": rec["experiment"],
                    "model": info["model"],
                    "quantity": label_q,
                    "value": rec[col],
                    "ci_low": rec[ci[0]] if ci and ci[0] in rec else np.nan,
                    "ci_high": rec[ci[1]] if ci and ci[1] in rec else np.nan,
                    "boot_low": rec.get(ci[0].replace("_ci_", "_boot_ci_"), np.nan) if ci else np.nan,
                    "boot_high": rec.get(ci[1].replace("_ci_", "_boot_ci_"), np.nan) if ci else np.nan,
                    "study": ref.get(col, np.nan),
                    "study_dataset": label if ref else "",
                    "T": rec["T"],
                    "seeds": rec["n_seeds"],
                    "datasets_D_i": rec["n_datasets"],
                }
            )
    return pd.DataFrame(rows)


def sigma_range_table(epsilon: pd.DataFrame, experiments: Mapping[str, Mapping]) -> pd.DataFrame:
    """Table 5: how many datasets D_i, the smallest and largest sigma over them, beside the study."""
    require(epsilon, ["experiment", "n_datasets", "n_seeds", "sigma_dataset_min", "sigma_dataset_max"], "epsilon")
    rows = []
    for rec in epsilon.to_dict("records"):
        info = experiment_info(experiments, rec["experiment"])
        study, label = _study_key(info["dataset"])
        ref = sv.TABLE5_SIGMA_RANGE.get(study or "", {}) if info["model"] == "logreg" else {}
        rows.append(
            {
                "experiment": rec["experiment"],
                "seeds_per_D_i": rec["n_seeds"],
                "datasets_D_i": rec["n_datasets"],
                "sigma_min": rec["sigma_dataset_min"],
                "sigma_max": rec["sigma_dataset_max"],
                "relative_spread": rec["sigma_dataset_max"] / rec["sigma_dataset_min"] - 1,
                "study_dataset": label if ref else "",
                "study_datasets_D_i": ref.get("n_datasets", np.nan),
                "study_sigma_min": ref.get("sigma_dataset_min", np.nan),
                "study_sigma_max": ref.get("sigma_dataset_max", np.nan),
                "study_relative_spread": ref["sigma_dataset_max"] / ref["sigma_dataset_min"] - 1 if ref else np.nan,
            }
        )
    return pd.DataFrame(rows)


def distribution_table(tests: pd.DataFrame, experiments: Mapping[str, Mapping]) -> pd.DataFrame:
    """Section 6: per tested dataset D_i, the HZ minimum p, Shapiro-Wilk and Laplace rejected
    fractions and the tail index, beside the study's ranges (HZ and alpha: convex models only)."""
    require(tests, ["experiment", "replace_index", "n_seeds", "n_params"], "distribution_tests")
    cols = ["hz_p_min", "hz_note", "shapiro_rejected", "shapiro_rejected_bonferroni"]
    cols += ["laplace_rejected", "laplace_rejected_bonferroni", "tail_index"]
    table = tests[["experiment", "replace_index", "n_seeds", "n_params"] + [c for c in cols if c in tests]].copy()
    convex = table["experiment"].map(lambda n: experiment_info(experiments, n)["model"] == "logreg")
    num = sv.SECTION_RANGES

    def rng(key: str) -> str:
        return f"{num[key][0]}–{num[key][1]}"

    table["study_hz_p"] = np.where(convex, rng("hz_p_convex"), "rejected")
    table["study_laplace_rejected_bonferroni"] = rng("laplace_rejected_bonferroni")
    table["study_tail_index"] = np.where(convex, rng("tail_index_convex"), "not estimated")
    table["study_seeds"] = sv.DISTRIBUTION_SEEDS
    return table


def kmeans_table(spans: pd.DataFrame) -> pd.DataFrame:
    """k-means: per experiment, how many clusters a seed's runs and a dataset's runs span (mean, max)."""
    require(spans, ["experiment", "by", "value", "clusters", "k"], "kmeans_spans")
    table = (
        spans.groupby(["experiment", "by"])
        .agg(
            k=("k", "first"),
            groups=("value", "nunique"),
            mean_clusters=("clusters", "mean"),
            max_clusters=("clusters", "max"),
        )
        .reset_index()
    )
    table["study"] = np.where(table["by"] == "seed", "one cluster per seed", "spans many clusters")
    return table


TABLE6_COLUMNS = ["experiment", "t", "n_runs", "n_members", "n_nonmembers", "accuracy_known", "accuracy_hidden"]
TABLE6_COLUMNS += ["accuracy_diff", "p_value_accuracy", "epsilon_accuracy_known", "epsilon_accuracy_hidden"]
TABLE6_COLUMNS += ["epsilon_accuracy_diff", "p_value_epsilon_accuracy", "loss_ratio"]
# The study's Table 6 columns -> this table's names for them (its epsilon is ln(acc / (1 - acc))).
STUDY_TABLE6 = {
    "T": "study_T",
    "accuracy_known": "study_accuracy_known",
    "accuracy_hidden": "study_accuracy_hidden",
    "epsilon_known": "study_epsilon_known",
    "epsilon_hidden": "study_epsilon_hidden",
    "epsilon_difference": "study_epsilon_diff",
    "p_value": "study_p_value",
    "n_models": "study_n_models",
    "loss_ratio": "study_loss_ratio",
}


def study_step(t: int, T: int | None) -> int:
    """The study's Table 6 step to compare with step t: the same step where the study has it, else the
    study's row at the nearest multiple (log scale) of the convergence point, t / T (T = the experiment's
    convergence step; the study's rows are at 1, 2 and 4 times its own)."""
    steps = np.array([row["T"] for row in sv.TABLE6_MIA])
    if t in steps or not T:
        return int(t) if t in steps else -1
    multiples = steps / sv.TABLE6_SETUP["convergence_T"]
    return int(steps[np.argmin(np.abs(np.log(multiples) - np.log(t / T)))])


def mia_table(table6: pd.DataFrame, experiments: Mapping[str, Mapping], T: Mapping[str, int]) -> pd.DataFrame:
    """The study's Table 6 per attacked experiment and step: mean attack accuracy and epsilon with the seed
    known and hidden, their differences and one-sided paired t-test p-values, attacked runs, members and
    non-members, the train/validation loss ratio, and the study's row compared (`study_step`)."""
    require(table6, TABLE6_COLUMNS, "mia_table6")
    extra = [c for c in table6.columns if c in ("init", "low_n") or c.startswith("n_low")]
    table = table6[TABLE6_COLUMNS[:1] + extra + TABLE6_COLUMNS[1:]].copy()
    # the stage writes train / validation; the study's ratio grows with overfitting (validation / train)
    table["val_over_train_loss"] = 1.0 / table["loss_ratio"]
    info = [experiment_info(experiments, e) for e in table["experiment"]]
    table.insert(1, "model", [i["model"] for i in info])
    table.insert(2, "dataset", [i["dataset"] for i in info])
    table.insert(4 + len(extra), "T_experiment", [T.get(e, np.nan) for e in table["experiment"]])
    table["study_T"] = [study_step(int(t), T.get(e)) for e, t in zip(table["experiment"], table["t"], strict=True)]
    study = pd.DataFrame(sv.TABLE6_MIA).rename(columns=STUDY_TABLE6)[list(STUDY_TABLE6.values())]
    table = table.merge(study, on="study_T", how="left")
    table["study_T"] = table["study_T"].where(table["study_T"] > 0)
    if "init" in table:  # the study's Table 6 is variable init; fixed-init rows are shown without its values
        table.loc[table["init"] != "variable", [c for c in table.columns if c.startswith("study_")]] = np.nan
    table = table.sort_values(["experiment", *(["init"] if "init" in table else []), "t"]).reset_index(drop=True)
    # the comparison first, so that the study's columns are visible without scrolling sideways
    first = ["experiment", *(["init"] if "init" in table else []), "t", "T_experiment", "n_runs"]
    first += ["epsilon_accuracy_known", "epsilon_accuracy_hidden", "epsilon_accuracy_diff", "p_value_epsilon_accuracy"]
    first += ["study_T", "study_epsilon_known", "study_epsilon_hidden", "study_epsilon_diff", "study_p_value"]
    first += ["study_n_models"]
    return table[first + [c for c in table.columns if c not in first]]


def run_intervals(attacks: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Per experiment, step and setting: the mean over attacked runs of the attack accuracy and epsilon with
    its Student-t interval over the non-diverged runs (the figure's data)."""
    require(attacks, ["experiment", "t", "diverged", "accuracy_known", "accuracy_hidden"], "mia_attacks")
    require(attacks, ["epsilon_accuracy_known", "epsilon_accuracy_hidden"], "mia_attacks")
    rows = []
    for (experiment, _), g in attacks[~attacks["diverged"]].groupby(["experiment", "t"], sort=True):
        for setting in ("known", "hidden"):
            row = {"experiment": experiment, "t": int(g["t"].iloc[0]), "setting": setting, "n_runs": len(g)}
            for name in ("accuracy", "epsilon_accuracy"):
                row[name], row[f"{name}_lo"], row[f"{name}_hi"] = mean_ci(g[f"{name}_{setting}"].to_numpy(), confidence)
            rows.append(row)
    return pd.DataFrame(rows)


LIRA_KEYS = ["variant", "setting", "n_targets", "n_members", "n_nonmembers", "auc", "auc_target_mean"]
LIRA_KEYS += ["auc_target_lo", "auc_target_hi"]


def lira_table(summary: pd.DataFrame) -> pd.DataFrame:
    """LiRA per variant (online, offline) and setting (seed known, hidden): pooled and per-target AUC, TPR at
    each reported FPR with its interval, and the paired test over targets that the seed-known AUC is larger."""
    require(summary, LIRA_KEYS + ["p_value_known_gt_hidden"], "lira_summary")
    tpr = [c for c in summary.columns if c.startswith("tpr_at_")]
    return (
        summary[LIRA_KEYS + tpr + ["p_value_known_gt_hidden"]]
        .sort_values(["variant", "setting"])
        .reset_index(drop=True)
    )


BOUND_COLUMNS = ["attack", "setting", "n_members", "n_nonmembers", "false_positives", "false_negatives", "fpr"]
BOUND_COLUMNS += ["fnr", "threshold", "epsilon_lower_bound", "note"]


def bounds_table(yeom: pd.DataFrame | None, lira: pd.DataFrame | None, lira_experiment: str) -> pd.DataFrame:
    """The epsilon lower bounds of the loss-threshold attack (per experiment and step) and of LiRA (its
    experiment named by `lira_experiment`; no step), one row per attack and setting with its `note`."""
    frames = []
    if yeom is not None:
        require(yeom, ["experiment", "t", "n_calibration_runs", "n_evaluation_runs", *BOUND_COLUMNS], "mia_bounds")
        frames.append(yeom)
    if lira is not None:
        require(lira, BOUND_COLUMNS, "lira_bounds")
        frames.append(lira.assign(experiment=lira_experiment))
    table = pd.concat(frames, ignore_index=True)
    for col in ("t", "n_calibration_runs", "n_evaluation_runs"):
        if col not in table:
            table[col] = np.nan
    keys = ["experiment", "t", *(["init"] if "init" in table else []), "n_calibration_runs", "n_evaluation_runs"]
    sample = [c for c in ("unit", "n_units", "n_trials", "low_n") if c in table]
    extra = [c for c in table.columns if c.startswith("epsilon_score")]
    cols = keys + BOUND_COLUMNS[:-1] + sample + extra + BOUND_COLUMNS[-1:]
    order = ["experiment", "attack", "t", *(["init"] if "init" in table else []), "setting"]
    return table[cols].sort_values(order, na_position="last").reset_index(drop=True)


# The DP study's swept keys the lab report has tables for: config key -> (the study's column, its rows).
STUDY_SWEEPS = {
    "target_epsilon": ("epsilon", sv.DP_EPSILON_SWEEP),
    "max_grad_norm": ("max_grad_norm", sv.DP_CLIPPING_SWEEP),
}
DP_COLUMNS = ["test_accuracy", "test_accuracy_lo", "test_accuracy_hi", "p_err", "advantage", "advantage_lo"]
DP_COLUMNS += ["advantage_hi", "auc", "epsilon"]


def last_epoch(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of each configuration's last epoch."""
    return frame[frame["epoch"] == frame.groupby("configuration")["epoch"].transform("max")]


def dp_final_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Each DP configuration's last epoch per attack: repeats, test accuracy and attack metrics (95% CI)."""
    keys = ["configuration", "algorithm", "dataset", "attack", "epoch", "repeats", "noise_multiplier"]
    require(summary, keys + DP_COLUMNS, "dp_summary")
    extra = [c for c in DP_EXTRA if c in summary.columns]
    table = last_epoch(summary)[keys + DP_COLUMNS + extra].sort_values(["configuration", "attack"])
    return clip_intervals(table.reset_index(drop=True))


# Columns shown beside the attacks where the DP stage wrote them: utility on the training set and the gap.
DP_EXTRA = ["train_accuracy", "train_accuracy_lo", "train_accuracy_hi", "p_err_floor"]
# Each metric's range: intervals are clipped to it (a Student-t interval over few repeats can leave it).
METRIC_RANGES = {
    "test_accuracy": (0.0, 1.0),
    "train_accuracy": (0.0, 1.0),
    "p_err": (0.0, 1.0),
    "auc": (0.0, 1.0),
    "advantage": (-1.0, 1.0),
    "max_advantage": (-1.0, 1.0),
}


def clip_intervals(table: pd.DataFrame) -> pd.DataFrame:
    """Clip every `{metric}_lo` / `{metric}_hi` of a metric with a known range to that range, and add the
    generalisation gap (train - test accuracy) where train accuracy is given."""
    out = table.copy()
    for metric, (lo, hi) in METRIC_RANGES.items():
        for end in ("lo", "hi"):
            col = f"{metric}_{end}"
            if col in out:
                out[col] = out[col].clip(lo, hi)
    if {"train_accuracy", "test_accuracy"} <= set(out.columns):
        out.insert(
            list(out.columns).index("train_accuracy") + 1,
            "generalisation_gap",
            out["train_accuracy"] - out["test_accuracy"],
        )
    return out


def sweep_table(
    sweeps: pd.DataFrame, sweep: str, settings: Mapping[str, Mapping[str, object]] | None = None
) -> pd.DataFrame:
    """One DP sweep at each point's last epoch per attack, with the lab report's values at the same
    setting where it has a table for the swept key (`study_*` columns): test accuracy on every attack's rows,
    the attack's advantage (its best threshold, the lab's max over thresholds) and AUC on the loss-threshold
    rows only (the lab's attack). With the configurations' `settings`, a point whose set-up differs from the
    lab's (dataset, model, epochs, batch size, the table's fixed key) gets verdicts 'not comparable' and the
    differences in `not_comparable`."""
    from .study_compare import NOT_COMPARABLE, STUDY_ATTACK, lab_comparability

    keys = ["sweep", "configuration", "label", "key", "attack", "epoch", "repeats", "noise_multiplier"]
    require(sweeps, keys + DP_COLUMNS + ["dominated"], "dp_sweeps")
    rows = last_epoch(sweeps[sweeps["sweep"] == sweep])
    extra = [c for c in ("max_advantage", "max_advantage_lo", "max_advantage_hi") if c in rows.columns]
    extra += [c for c in ("auc_lo", "auc_hi") if c in rows.columns]
    table = rows[keys + DP_COLUMNS + extra + ["dominated"]].drop(columns="sweep").reset_index(drop=True)
    key = table["key"].dropna().unique()
    if len(key) == 1 and key[0] in STUDY_SWEEPS:
        column, study = STUDY_SWEEPS[key[0]]
        table.insert(3, key[0], pd.to_numeric(table["label"]).astype(float))  # the swept value
        ref = pd.DataFrame(study)
        ref = ref.rename(columns={c: f"study_{c}" for c in ref.columns if c != column}).rename(columns={column: key[0]})
        table = table.merge(ref, on=key[0], how="left")
        other_attack = table["attack"] != STUDY_ATTACK
        for col in ("study_mi_advantage", "study_mi_auc"):
            if col in table:
                table.loc[other_attack, col] = np.nan
        table = clip_intervals(table)
        differs = {
            name: lab_comparability(settings.get(str(name), {}), str(key[0])) if settings is not None else []
            for name in table["configuration"].unique()
        }
        table["not_comparable"] = ["; ".join(differs[c]) for c in table["configuration"]]
        ours_theirs = [("test_accuracy", "study_test_accuracy"), ("max_advantage", "study_mi_advantage")]
        ours_theirs += [("auc", "study_mi_auc")]
        for ours, theirs in ours_theirs:
            if theirs in table and f"{ours}_lo" in table:
                table[f"verdict_{ours}"] = [
                    ""
                    if not np.isfinite(r[theirs])
                    else NOT_COMPARABLE
                    if r["not_comparable"]
                    else str(interval_verdict(r[f"{ours}_lo"], r[f"{ours}_hi"], r[theirs], r[theirs], SWEEP_TOLERANCE))
                    for r in table.to_dict("records")
                ]
        table = table.sort_values(["configuration", "attack"]).reset_index(drop=True)
        # the comparison first: the swept value, the lab's values and the verdicts, then the details
        first = ["configuration", key[0], "attack", "epoch", "repeats"]
        first += [c for c in table.columns if c.startswith("verdict_")]
        first += ["test_accuracy", "study_test_accuracy", *extra[:1], "study_mi_advantage", "auc", "study_mi_auc"]
        first = [c for c in first if c in table.columns]
        return table[first + [c for c in table.columns if c not in first]]
    return clip_intervals(table).sort_values(["configuration", "attack"]).reset_index(drop=True)


# How close a sweep point's accuracy or advantage must be to the lab report's to agree (both are rates).
SWEEP_TOLERANCE = 0.02


def outlier_table(outliers: pd.DataFrame) -> pd.DataFrame:
    """Per configuration and attack at the last epoch: members and non-members identified in every repeat."""
    require(outliers, ["configuration", "epoch", "attack", "member", "outliers", "examples"], "dp_outliers")
    last = last_epoch(outliers)
    wide = last.pivot_table(
        index=["configuration", "epoch", "attack"], columns="member", values=["outliers", "examples"]
    )
    table = pd.DataFrame(index=wide.index)
    for member, name in ((True, "members"), (False, "non_members")):
        table[f"{name}_outliers"] = wide.get(("outliers", member), np.nan)
        table[f"{name}_examples"] = wide.get(("examples", member), np.nan)
        table[f"{name}_fraction"] = table[f"{name}_outliers"] / table[f"{name}_examples"]
    return table.reset_index()


def bolt_on_table(bolt_on: pd.DataFrame) -> pd.DataFrame:
    """Output perturbation per experiment, init, variant and epsilon: noise, accuracy with and without it."""
    keys = ["experiment", "init", "sensitivity", "heuristic", "mechanism", "epsilon", "noise_added"]
    cols = ["no_extra_noise", "accuracy_unperturbed", "accuracy_perturbed", "mean_diff", "ci_low", "ci_high"]
    cols += ["p_value", "n_runs", "n_draws"]
    require(bolt_on, keys + cols, "bolt_on")
    extra = [c for c in ("guarantee", "provable_epsilon", "calibration") if c in bolt_on.columns]
    return bolt_on[keys + extra + cols].sort_values(keys[:5] + ["epsilon"]).reset_index(drop=True)


def bolt_on_pivot(table: pd.DataFrame) -> pd.DataFrame:
    """The bolt-on table in a readable shape: one row per experiment, init and variant, the perturbed test
    accuracy at each epsilon in its own column, beside the unperturbed accuracy and the sample sizes."""
    index = ["experiment", "init", "sensitivity", "mechanism", "heuristic"]
    index += [c for c in ("guarantee",) if c in table.columns]
    wide = table.pivot_table(index=index, columns="epsilon", values="accuracy_perturbed", aggfunc="first")
    wide.columns = [f"accuracy_at_epsilon_{e:g}" for e in wide.columns]
    base = table.groupby(index)[["accuracy_unperturbed", "n_runs", "n_draws"]].first()
    return base.join(wide).reset_index()


def ks_distance_interval(d: float, n: int, m: int, level: float = 0.95) -> tuple[float, float]:
    """A distribution-free interval for the distance between two distributions' CDFs (the best-threshold
    advantage is the two-sample KS statistic d of n and m draws): each empirical CDF lies within
    sqrt(ln(4 / alpha) / (2 n)) of its own everywhere with probability >= 1 - alpha / 2 (Dvoretzky-Kiefer-
    Wolfowitz with Massart's constant), so both do with probability >= level; clipped to [0, 1]."""
    if n < 1 or m < 1 or not np.isfinite(d):
        return float("nan"), float("nan")
    alpha = 1.0 - level
    half = float(np.sqrt(np.log(4.0 / alpha) / (2.0 * n)) + np.sqrt(np.log(4.0 / alpha) / (2.0 * m)))
    return max(0.0, d - half), min(1.0, d + half)


def rmse_interval(rmse: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """The chi-square interval of a root-mean-square error over n independent zero-mean Gaussian errors
    (n rmse^2 / s^2 ~ chi-square with n degrees of freedom); NaN for n < 1."""
    if n < 1 or not np.isfinite(rmse):
        return float("nan"), float("nan")
    a = (1.0 - level) / 2.0
    return (
        float(rmse * np.sqrt(n / stats.chi2.ppf(1.0 - a, n))),
        float(rmse * np.sqrt(n / stats.chi2.ppf(a, n))),
    )


# The (API, attack) pairs whose score errors are independent zero-mean Gaussians (the API's own noise, averaged
# over k answers to the same input): the RMSE interval applies to them only. The nearby attack's errors also
# hold the model's score differences between nearby inputs.
GAUSSIAN_ERRORS = {("fresh", "repeat"), ("fixed", "repeat")}


def query_intervals(attack: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """The repeated-query table with 95% intervals: advantage_lo/hi (distribution-free, over the n_members and
    n_nonmembers attacked examples) on every row, rmse_lo/hi (chi-square over the n_members + n_nonmembers
    recovered scores) on the rows with Gaussian errors (`GAUSSIAN_ERRORS`), NaN elsewhere."""
    require(attack, ["api", "attack", "rmse", "advantage", "n_members", "n_nonmembers"], "query_attack")
    out = attack.copy()
    adv = [
        ks_distance_interval(float(r["advantage"]), int(r["n_members"]), int(r["n_nonmembers"]), level)
        for r in out.to_dict("records")
    ]
    out["advantage_lo"], out["advantage_hi"] = [a for a, _ in adv], [b for _, b in adv]
    err = [
        rmse_interval(float(r["rmse"]), int(r["n_members"]) + int(r["n_nonmembers"]), level)
        if (r["api"], r["attack"]) in GAUSSIAN_ERRORS
        else (float("nan"), float("nan"))
        for r in out.to_dict("records")
    ]
    out["rmse_lo"], out["rmse_hi"] = [a for a, _ in err], [b for _, b in err]
    return out


def query_table(attack: pd.DataFrame) -> pd.DataFrame:
    """The repeated-query attack at the smallest and largest k per experiment, API and attack, with the
    intervals of `query_intervals`."""
    cols = ["experiment", "api", "attack", "k", "rmse", "rmse_lo", "rmse_hi", "advantage", "advantage_lo"]
    cols += ["advantage_hi", "auc", "advantage_p_value"]
    cols += ["n_members", "n_nonmembers", "query_noise", "dp_epsilon", "advantage_bound"]
    require(attack, [c for c in cols if not c.endswith(("_lo", "_hi"))], "query_attack")
    attack = query_intervals(attack)
    k = attack.groupby("experiment")["k"]
    ends = attack[(attack["k"] == k.transform("min")) | (attack["k"] == k.transform("max"))]
    return ends[cols].sort_values(["experiment", "api", "attack", "k"]).reset_index(drop=True)


def log_log_slope(k: np.ndarray, error: np.ndarray) -> float:
    """Least-squares slope of log(error) against log(k) (-1/2 when averaging fresh noise)."""
    return float(np.polyfit(np.log(np.asarray(k, dtype=float)), np.log(np.asarray(error, dtype=float)), 1)[0])


def rank_correlation(x: pd.Series, y: pd.Series) -> float:
    """Spearman rank correlation of two columns (infinite values rank highest; NaN with fewer than 2 points)."""
    if len(x) < 2:
        return float("nan")
    return float(x.rank().corr(y.rank(), method="pearson"))
