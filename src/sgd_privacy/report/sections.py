"""The report's sections, in the studies' order: each declares the table kinds it reads and renders
its figures, tables and comparisons with the studies from DataFrames.

Table kinds (the report rule's named inputs) and where they come from:

- `dataset_meta`: results/data/{dataset}.json; `runs`, `convergence`: results/train/{exp}/...
- `distances_over_t`, `distances_at_T`, `epsilon`, `sigma_per_dataset`, `stability`,
  `distribution_tests`, `nonnormal_weights`, `umap`, `kmeans_spans`: results/analysis/{exp}/...
- `mia_table6`, `mia_attacks`, `mia_bounds`: the membership-inference stage per attacked experiment
  (results/mia/{exp}/table6, attacks and epsilon_bounds.parquet); `lira_summary`, `lira_roc`,
  `lira_bounds`: LiRA (results/lira/{exp}/summary, roc and epsilon_bounds.parquet).
- `dp_summary`, `dp_sweeps`, `dp_outliers`, `ledger`: the DP-SGD / SAM stage (results/dp/summary,
  sweeps, outliers and ledger.parquet).
- `bolt_on`, `query_attack`: the output-perturbation stage (results/perturbation/{exp}/...).

The columns each part needs are named in its docstring; a missing one is reported by name.
"""

from __future__ import annotations

import numpy as np

from . import figures as fg
from . import study_values as sv
from . import tables as tb
from .blocks import Block, FigureBlock, Note, Section, TableBlock, comparison
from .frames import Inputs


def _count(value: int | list) -> int:
    """A grid size given as a count or as an explicit list."""
    return len(value) if isinstance(value, list) else int(value)


def describe_experiments(inputs: Inputs, names: list[str]) -> str:
    """The config slice behind a figure or table: each experiment's model, data and grid."""
    exps = inputs.experiments()
    parts = []
    for name in sorted(set(names)):
        e = exps.get(name)
        if not e:
            parts.append(name)
            continue
        parts.append(
            f"{name}: {e.get('model')} on {e.get('dataset')}, lr {e.get('lr')}, batch {e.get('batch_size')}, "
            f"{e.get('epochs')} epochs, {_count(e.get('seeds', 0))} seeds x {_count(e.get('replace_indices', 0))} D_i, "
            f"init {'/'.join(e.get('init_modes', []))}"
        )
    return "Config slice: " + ("; ".join(parts) if parts else "(not given)") + "."


def analysis_settings(inputs: Inputs, keys: list[str]) -> str:
    """The analysis settings a figure or table depends on."""
    a = inputs.config.get("analysis") or {}
    shown = [f"{k} = {a[k]}" for k in keys if k in a]
    return ("Analysis settings: " + ", ".join(shown) + ".") if shown else ""


def experiment_T(inputs: Inputs) -> dict[str, int]:
    """Each experiment's T (from the convergence tables, else from the distances at T)."""
    if inputs.has("convergence") and {"experiment", "T"} <= set(inputs.tables["convergence"].columns):
        c = inputs.tables["convergence"]
        return {str(k): int(v) for k, v in zip(c["experiment"], c["T"], strict=True)}
    if inputs.has("distances_at_T") and "t" in inputs.tables["distances_at_T"]:
        at = inputs.tables["distances_at_T"]
        return {str(k): int(g["t"].iloc[0]) for k, g in at.groupby("experiment")}
    return {}


def stage_settings(inputs: Inputs, key: str) -> str:
    """The config slice of a stage (`key` in the report's config params), or a note that it was not passed."""
    value = inputs.config.get(key)
    if value is None:
        return f"Config slice: the '{key}' settings were not passed to the report."
    shown = ", ".join(f"{k} = {v}" for k, v in value.items()) if isinstance(value, dict) else str(value)
    return f"Config slice ({key}): {shown}."


def _fmt(x: float) -> str:
    return f"{x:.3g}"


# ---------------------------------------------------------------- data and grid (Tables 1-3)


def data_tables(inputs: Inputs) -> list[Block]:
    """Datasets (`dataset_meta`: dataset, n_train, n_val, n_test, n_features) beside Table 1."""
    table = tb.dataset_table(inputs.get("dataset_meta"))
    proxies = [f"{d}: {sv.PROXY_NOTE[d]}" for d in table["dataset"] if d in sv.PROXY_NOTE]
    caption = "Rows after the validation split; study values from the intrinsic-privacy study's Table 1."
    blocks: list[Block] = [TableBlock("datasets", "Datasets and sizes (study Table 1)", table, caption)]
    blocks += [Note(f"Not like for like: {p}.") for p in proxies]
    return blocks


def grid_tables(inputs: Inputs) -> list[Block]:
    """Grid and accuracy at T (`runs`: experiment, seed, replace_index, init, diverged;
    `convergence`: experiment, T, val_acc_at_T) beside Tables 2 and 3."""
    runs, conv = inputs.get("runs"), inputs.get("convergence")
    table = tb.grid_table(runs, conv, inputs.experiments())
    caption = (
        f"{describe_experiments(inputs, list(table['experiment']))} Accuracy: mean validation accuracy over the "
        f"non-diverged runs at T ({len(runs)} runs in all); the study does not say which split its Table 2 uses. "
        "Study grid sizes from its Table 3."
    )
    blocks: list[Block] = [TableBlock("grid", "Models, grid and accuracy at T (study Tables 2 and 3)", table, caption)]
    for rec in table.to_dict("records"):
        if np.isfinite(rec["study_accuracy"]) and np.isfinite(rec["val_accuracy_at_T"]):
            gap = rec["val_accuracy_at_T"] - rec["study_accuracy"]
            blocks.append(
                comparison(
                    abs(gap) <= 0.02,
                    f"{rec['experiment']} reaches {rec['val_accuracy_at_T']:.3f} at T = {rec['T']} "
                    f"({rec['models']} models) against the study's {rec['study_accuracy']:.3f} for "
                    f"{rec['model']} on {rec['study_dataset']} ({gap:+.3f}; agreement means within 0.02).",
                )
            )
    return blocks


# ---------------------------------------------------------------- distances (Figures 2, 3)


def distance_figures(inputs: Inputs) -> list[Block]:
    """Distances over t and at T (`distances_over_t`: experiment, kind, t, n_pairs, q05, median, q95;
    `distances_at_T`: experiment, kind, distance)."""
    over_t = inputs.get("distances_over_t", ["experiment", "kind", "t", "median", "q05", "q95"])
    at_T = inputs.get("distances_at_T", ["experiment", "kind", "distance"])
    T = experiment_T(inputs)
    names = sorted(over_t["experiment"].unique())
    pairs = at_T.groupby(["experiment", "kind"]).size()
    n_text = "; ".join(f"{e} {k}: {n}" for e, k, n in pairs.reset_index().itertuples(index=False))
    slice_text = f"{describe_experiments(inputs, names)} {analysis_settings(inputs, ['n_pairs', 'pair_seed'])}"
    table = tb.distances_table(at_T, over_t, T)
    blocks: list[Block] = [
        FigureBlock(
            "distances_over_t",
            "Distances between weights over training (study Figure 2)",
            fg.distances_over_time(over_t, T),
            f"Line: median over sampled pairs; band: 5% to 95%; dashed: bolt-on bound (logistic regression); "
            f"dotted: T. {slice_text} Pairs per kind: {n_text}.",
        ),
        FigureBlock(
            "distances_at_T",
            "All distances at T (study Figure 3)",
            fg.distances_at_T(at_T, tb.theory_at_T(over_t, T)),
            f"Density of the pair distances at each experiment's T (log x); dashed: bolt-on bound. {slice_text} "
            f"Pairs per kind: {n_text}.",
        ),
        TableBlock("distances_at_T", "Distances at T", table, slice_text),
    ]
    lo, hi = sv.SECTION_RANGES["theory_over_empirical"]
    for rec in table[table["bound_over_max_sensitivity"].notna()].to_dict("records"):
        r = rec["bound_over_max_sensitivity"]
        blocks.append(
            comparison(
                lo <= r <= hi,
                f"{rec['experiment']}: the bolt-on bound is {r:.3g} times the largest of {rec['pairs']} sensitivity "
                f"distances at T; the study found {lo} to {hi} for its convex models.",
            )
        )
    for name, g in at_T.groupby("experiment"):
        sens = np.sort(g.loc[g["kind"] == "sensitivity", "distance"].to_numpy(dtype=float))
        var = g.loc[g["kind"] == "variability_variable_init", "distance"].to_numpy(dtype=float)
        if len(sens) and len(var):
            share = 1.0 - np.searchsorted(sens, var, side="right").mean() / len(sens)
            blocks.append(
                comparison(
                    share <= 0.05,
                    f"{name}: a sensitivity distance exceeds a variable-init variability distance in {share:.1%} of "
                    f"the {len(sens)} x {len(var)} comparisons; the study: the seed moves the weights more than "
                    "one example in almost all cases.",
                )
            )
    return blocks


# ---------------------------------------------------------------- UMAP, k-means (Figure 4)


def umap_figures(inputs: Inputs) -> list[Block]:
    """UMAP coloured by seed and replace index (`umap`: experiment, seed, replace_index, umap_1, umap_2)."""
    umap = inputs.get("umap", ["experiment", "seed", "replace_index", "umap_1", "umap_2"])
    sizes = "; ".join(
        f"{e}: {len(g)} runs ({g['seed'].nunique()} seeds x {g['replace_index'].nunique()} D_i)"
        for e, g in umap.groupby("experiment")
    )
    caption = (
        f"UMAP (15 neighbours, min_dist 0.1) of every variable-init run's weights at T. "
        f"{describe_experiments(inputs, list(umap['experiment'].unique()))} {analysis_settings(inputs, ['seed'])} "
        f"Runs: {sizes}."
    )
    return [
        FigureBlock(
            "umap", "UMAP of the weights at T by seed and by dataset (study Figure 4)", fg.umap_scatter(umap), caption
        )
    ]


def kmeans_tables(inputs: Inputs) -> list[Block]:
    """k-means cluster spans (`kmeans_spans`: experiment, by, value, clusters, k)."""
    table = tb.kmeans_table(inputs.get("kmeans_spans"))
    blocks: list[Block] = [
        TableBlock(
            "kmeans_spans",
            "k-means on the weights at T: clusters spanned by a seed and by a dataset",
            table,
            f"k = max(runs per seed, runs per dataset D_i); groups: seeds or datasets counted. "
            f"{describe_experiments(inputs, list(table['experiment'].unique()))} {analysis_settings(inputs, ['seed'])}",
        )
    ]
    for name, g in table.groupby("experiment"):
        by = g.set_index("by")
        if {"seed", "replace_index"} <= set(by.index):
            s, r = by.loc["seed"], by.loc["replace_index"]
            blocks.append(
                comparison(
                    bool(s["max_clusters"] == 1 and r["mean_clusters"] > 1),
                    f"{name}: a seed's runs span at most {s['max_clusters']} of k = {s['k']} clusters "
                    f"({s['groups']} seeds), a dataset's runs {r['mean_clusters']:.3g} on average "
                    f"({r['groups']} datasets); the study: one cluster per seed, datasets spread over clusters.",
                )
            )
    return blocks


# ---------------------------------------------------------------- weight distribution (Figure 5, section 6)


def distribution_parts(inputs: Inputs) -> list[Block]:
    """Distribution tests (`distribution_tests`: experiment, replace_index, n_seeds, n_params, hz_p_min,
    shapiro_rejected(_bonferroni), laplace_rejected(_bonferroni), tail_index)."""
    tests = inputs.get("distribution_tests", ["experiment", "replace_index", "n_seeds", "n_params"])
    exps = inputs.experiments()
    table = tb.distribution_table(tests, exps)
    caption = (
        f"Each row: one dataset D_i's centred variable-init weights at T. "
        f"{describe_experiments(inputs, list(table['experiment'].unique()))} "
        f"{analysis_settings(inputs, ['distribution_datasets', 'ad_simulations', 'seed'])} "
        f"Study: {sv.DISTRIBUTION_SEEDS} seeds per dataset."
    )
    blocks: list[Block] = [
        TableBlock("distribution_tests", "Normality, Laplace and tail tests (study section 6)", table, caption)
    ]
    hz_lo, hz_hi = sv.SECTION_RANGES["hz_p_convex"]
    la_lo, la_hi = sv.SECTION_RANGES["laplace_rejected_bonferroni"]
    al_lo, al_hi = sv.SECTION_RANGES["tail_index_convex"]
    n_study = sv.DISTRIBUTION_SEEDS
    for rec in table.to_dict("records"):
        who = f"{rec['experiment']} (D_{rec['replace_index']}, {rec['n_seeds']} seeds, {rec['n_params']} parameters)"
        convex = tb.experiment_info(exps, rec["experiment"])["model"] == "logreg"
        p = rec.get("hz_p_min", np.nan)
        if p is not None and np.isfinite(p):
            rejects = p < 0.05
            if convex:
                blocks.append(
                    comparison(
                        not rejects,
                        f"{who}: Henze-Zirkler {'rejects' if rejects else 'does not reject'} normality "
                        f"(minimum p = {_fmt(p)}); the study did not reject for convex models (p {hz_lo} to {hz_hi}, "
                        f"{n_study} seeds).",
                    )
                )
            else:
                blocks.append(
                    comparison(
                        rejects,
                        f"{who}: Henze-Zirkler {'rejects' if rejects else 'does not reject'} normality "
                        f"(minimum p = {_fmt(p)}); the study rejected it for neural networks ({n_study} seeds).",
                    )
                )
        elif rec.get("hz_note"):
            blocks.append(Note(f"{who}: Henze-Zirkler not available: {rec['hz_note']}."))
        frac = rec.get("laplace_rejected_bonferroni", np.nan)
        if frac is not None and np.isfinite(frac):
            blocks.append(
                comparison(
                    la_lo <= frac <= la_hi,
                    f"{who}: {frac:.0%} of weights rejected as Laplace after Bonferroni; the study: "
                    f"{la_lo:.0%} to {la_hi:.0%} ({n_study} seeds).",
                )
            )
        alpha = rec.get("tail_index", np.nan)
        if convex and alpha is not None and np.isfinite(alpha):
            blocks.append(
                comparison(
                    al_lo - 0.05 <= alpha <= al_hi + 0.05,
                    f"{who}: tail index alpha = {alpha:.3g}; the study: {al_lo} to {al_hi} for convex models "
                    "(agreement means within 0.05 of that range).",
                )
            )
    return blocks


def nonnormal_figure(inputs: Inputs) -> list[Block]:
    """Least normal weights (`nonnormal_weights`: experiment, replace_index, weight, shapiro_p, seed, value)."""
    ex = inputs.get("nonnormal_weights", ["experiment", "weight", "shapiro_p", "value"])
    if ex.empty:
        return [Note("No weights were tested (no dataset had enough seeds).")]
    sizes = "; ".join(
        f"{e}: {g['weight'].nunique()} weights x {len(g) // max(g['weight'].nunique(), 1)} seeds"
        for e, g in ex.groupby("experiment")
    )
    return [
        FigureBlock(
            "nonnormal_weights",
            "The least normal weights (study Figure 5)",
            fg.nonnormal_weights(ex),
            f"Values over seeds of the weights with the lowest Shapiro-Wilk p-value at T (one dataset D_i each). "
            f"{describe_experiments(inputs, list(ex['experiment'].unique()))} Samples: {sizes}.",
        )
    ]


# ---------------------------------------------------------------- intrinsic epsilon (Tables 4, 5, Figure 6)


def epsilon_parts(inputs: Inputs) -> list[Block]:
    """Table 4 (`epsilon`: experiment, T, N, n_seeds, n_datasets, sigma, sigma_max, sigma_ci_*,
    delta_theory, delta_empirical, epsilon_theory/empirical with _ci_* and _weight_min, theorem_applies)."""
    eps = inputs.get("epsilon", ["experiment", "T", "N", "n_seeds", "n_datasets", "sigma", "epsilon_theory"])
    exps = inputs.experiments()
    table = tb.epsilon_table(eps, exps)
    caption = (
        "epsilon = c Delta / sigma with c = sqrt(2 ln(1.25 / delta)), delta = 1/N^2; CI: 2.5%-97.5% over seed "
        f"bootstrap resamples. {describe_experiments(inputs, list(eps['experiment']))} "
        f"{analysis_settings(inputs, ['bootstrap', 'bootstrap_seed', 'n_pairs'])} Study values: logistic "
        "regression, intrinsic-privacy study Table 4."
    )
    blocks: list[Block] = [TableBlock("epsilon", "Intrinsic epsilon (study Table 4)", table, caption)]
    for rec in eps.to_dict("records"):
        e_t, e_e = rec.get("epsilon_theory", np.nan), rec.get("epsilon_empirical", np.nan)
        if np.isfinite(e_t) and np.isfinite(e_e):
            blocks.append(
                comparison(
                    e_t > e_e,
                    f"{rec['experiment']}: epsilon with the bolt-on bound is {_fmt(e_t)}, with the empirical sensitivity "
                    f"{_fmt(e_e)} ({rec['n_seeds']} seeds x {rec['n_datasets']} D_i); the study: the theoretical "
                    "epsilon greatly exceeds the empirical one.",
                )
            )
        if "theorem_applies" in rec and not rec["theorem_applies"]:
            blocks.append(
                Note(
                    f"{rec['experiment']}: epsilon >= 1, outside the range where the Gaussian-mechanism theorem holds "
                    "(reported by analogy, as in the study)."
                )
            )
    return blocks


def sigma_range_parts(inputs: Inputs) -> list[Block]:
    """Table 5 (`epsilon`: sigma_dataset_min/max, n_datasets; `sigma_per_dataset`: experiment, replace_index, sigma)."""
    eps = inputs.get("epsilon")
    table = tb.sigma_range_table(eps, inputs.experiments())
    blocks: list[Block] = [
        TableBlock(
            "sigma_range",
            "sigma over datasets D_i (study Table 5)",
            table,
            f"sigma estimated on each dataset D_i alone. {describe_experiments(inputs, list(table['experiment']))}",
        )
    ]
    if inputs.has("sigma_per_dataset"):
        per = inputs.get("sigma_per_dataset", ["experiment", "replace_index", "sigma"])
        blocks.append(
            FigureBlock(
                "sigma_per_dataset",
                "sigma on each dataset D_i",
                fg.sigma_per_dataset(per),
                f"One point per dataset D_i. {describe_experiments(inputs, list(per['experiment'].unique()))}",
            )
        )
    for rec in table.to_dict("records"):
        ours = rec["relative_spread"]
        ref = rec["study_relative_spread"]
        limit = 0.05
        blocks.append(
            comparison(
                bool(ours <= limit),
                f"{rec['experiment']}: sigma ranges {_fmt(rec['sigma_min'])} to {_fmt(rec['sigma_max'])} over "
                f"{rec['datasets_D_i']} datasets of {rec['seeds_per_D_i']} seeds (spread {ours:.1%}); the study found "
                f"a narrow range (at most 5% apart"
                + (
                    f"; {ref:.1%} on {rec['study_dataset']} with {rec['study_datasets_D_i']:.0f} datasets"
                    if np.isfinite(ref)
                    else ""
                )
                + ").",
            )
        )
    return blocks


def stability_figure(inputs: Inputs) -> list[Block]:
    """Figure 6 (`stability`: experiment, quantity in {sigma, delta_empirical}, n, repeat, value)."""
    stab = inputs.get("stability", ["experiment", "quantity", "n", "value"])
    repeats = stab["repeat"].nunique() if "repeat" in stab else 1
    return [
        FigureBlock(
            "stability",
            "Did we run enough experiments? (study Figure 6)",
            fg.stability(stab),
            f"Mean and range over {repeats} random subsets per count. "
            f"{describe_experiments(inputs, list(stab['experiment'].unique()))} "
            f"{analysis_settings(inputs, ['stability_seeds', 'stability_pairs', 'stability_repeats'])}",
        )
    ]


# ---------------------------------------------------------------- membership inference (Table 6)


def mia_settings(inputs: Inputs, keys: list[str]) -> str:
    """The membership-inference settings a figure or table depends on (the report's `mia` slice)."""
    m = inputs.config.get("mia")
    if not m:
        return "Config slice: the 'mia' settings were not passed to the report."
    return "Config slice (mia): " + ", ".join(f"{k} = {m[k]}" for k in keys if k in m) + "."


def study_setup() -> str:
    """The study's Table 6 set-up in words."""
    s = sv.TABLE6_SETUP
    return (
        f"the study attacked a {s['model']} on {s['dataset']} ({s['n_members']} members and {s['n_nonmembers']} "
        f"non-members per model, at least 1,000 models per step, steps {', '.join(str(r['T']) for r in sv.TABLE6_MIA)})"
    )


def mia_parts(inputs: Inputs) -> list[Block]:
    """Seed known vs hidden per attacked experiment and step (`mia_table6`: experiment, t, n_runs, n_members,
    n_nonmembers, accuracy_known/hidden/diff, p_value_accuracy, epsilon_accuracy_known/hidden/diff,
    p_value_epsilon_accuracy, loss_ratio) beside the study's Table 6."""
    exps = inputs.experiments()
    table = tb.mia_table(inputs.get("mia_table6"), exps, experiment_T(inputs))
    names = list(table["experiment"].unique())
    slice_text = f"{describe_experiments(inputs, names)} {mia_settings(inputs, ['experiments', 'n_members', 'n_nonmembers', 'n_threshold'])}"
    sizes = "; ".join(
        f"{r['experiment']} t = {r['t']}: {r['n_runs']} runs x ({r['n_members']} members + {r['n_nonmembers']} "
        "non-members)"
        for r in table.to_dict("records")
    )
    caption = (
        "Loss-threshold attack (member if loss <= tau); seed known: tau from the attacked run, hidden: from a run "
        "with another seed, the same D_i and init. Means over attacked runs; diff = known - hidden; p: one-sided "
        "paired t-test over runs (known > hidden); epsilon = ln(acc / (1 - acc)); loss_ratio: train / validation "
        "loss as the stage writes it, val_over_train_loss its inverse (the study's loss ratio grows as the model "
        "overfits, 1.13 to 5.23, so it compares with val_over_train_loss). T_converged: the experiment's "
        "convergence step. study_*: the study's Table 6 row at study_T, the "
        "same step, else the study's row at the nearest multiple of the convergence point (study: 2000 = T, 4000 "
        f"= 2T, 8000 = 4T; the study gives one p-value per step, compared with p_value_epsilon_accuracy). "
        f"Study set-up: {study_setup()}. Samples: {sizes}. {slice_text}"
    )
    blocks: list[Block] = [
        TableBlock("mia_table6", "Loss-threshold attack, seed known vs hidden (study Table 6)", table, caption)
    ]
    for name in names:
        info = tb.experiment_info(exps, name)
        if (info["model"], info["dataset"]) != (sv.TABLE6_SETUP["model"], sv.TABLE6_SETUP["dataset"]):
            blocks.append(
                Note(
                    f"Not like for like: {name} is a {info['model']} on {info['dataset']}; {study_setup()}.",
                    "missing",
                )
            )
    for rec in table.to_dict("records"):
        diff, p = rec["epsilon_accuracy_diff"], rec["p_value_epsilon_accuracy"]
        who = (
            f"{rec['experiment']} at t = {rec['t']} ({rec['n_runs']} runs, {rec['n_members']} members and "
            f"{rec['n_nonmembers']} non-members each)"
        )
        p_text = f"p = {_fmt(p)}" if np.isfinite(p) else "no p-value (fewer than two runs, or all differences equal)"
        study = ""
        if np.isfinite(rec["study_T"]):
            study = (
                f" (study at T = {int(rec['study_T'])}: {rec['study_epsilon_diff']:.3g}, p = "
                f"{_fmt(rec['study_p_value'])}, {int(rec['study_n_models'])} models)"
            )
        blocks.append(
            comparison(
                bool(np.isfinite(p) and p < 0.05 and diff > 0),
                f"{who}: hiding the seed changes the attack epsilon by {-diff:+.3g} (known {rec['epsilon_accuracy_known']:.3g}, "
                f"hidden {rec['epsilon_accuracy_hidden']:.3g}; {p_text}); the study found a significant decrease at "
                f"every step{study}.",
            )
        )
    return blocks


def mia_figure(inputs: Inputs) -> list[Block]:
    """Attack accuracy and epsilon per step, seed known vs hidden, with intervals over runs (`mia_attacks`:
    experiment, t, diverged, accuracy_known/hidden, epsilon_accuracy_known/hidden)."""
    intervals = tb.run_intervals(inputs.get("mia_attacks"))
    names = list(intervals["experiment"].unique())
    sizes = "; ".join(
        f"{e}: {int(g['n_runs'].max())} runs per step at t = {', '.join(str(t) for t in sorted(g['t'].unique()))}"
        for e, g in intervals.groupby("experiment")
    )
    return [
        FigureBlock(
            "mia_known_hidden",
            "Attack accuracy and epsilon per step, seed known vs hidden",
            fg.mia_known_hidden(intervals),
            "Mean over the attacked (non-diverged) runs; bars: 95% Student-t intervals over runs (the paired test is "
            f"in the table above). Samples: {sizes}. {describe_experiments(inputs, names)} "
            f"{mia_settings(inputs, ['experiments', 'n_members', 'n_nonmembers', 'n_threshold'])}",
        )
    ]


def lira_name(inputs: Inputs) -> str:
    """The LiRA experiment named in the report's `mia` slice ('LiRA' when the slice was not passed)."""
    return str(((inputs.config.get("mia") or {}).get("lira") or {}).get("experiment") or "LiRA")


def roc_parts(inputs: Inputs) -> list[Block]:
    """LiRA's ROC curves (`lira_roc`: variant, setting, fpr, tpr) and summary (`lira_summary`: variant,
    setting, n_targets, n_members, n_nonmembers, auc, auc_target_mean/lo/hi, tpr_at_*, p_value_known_gt_hidden)."""
    roc = inputs.get("lira_roc", ["variant", "setting", "fpr", "tpr"])
    summary = tb.lira_table(inputs.get("lira_summary"))
    name = lira_name(inputs)
    first = summary.iloc[0]
    sizes = (
        f"{int(first['n_targets'])} target runs, {int(first['n_members'])} member and {int(first['n_nonmembers'])} "
        "non-member (target, example) pairs pooled per setting"
    )
    slice_text = f"{describe_experiments(inputs, [name])} {mia_settings(inputs, ['lira', 'confidence'])}"
    auc = "; ".join(f"{r['variant']} {SETTING_WORDS[r['setting']]} {r['auc']:.3f}" for r in summary.to_dict("records"))
    blocks: list[Block] = [
        FigureBlock(
            "lira_roc",
            "LiRA ROC curves, seed known vs hidden (log-log)",
            fg.roc_curves(roc),
            "Pooled over target runs; each target's shadows are the other subsets' runs with its own seed (known) or "
            f"another seed (hidden); online: IN/OUT likelihood ratio, offline: OUT fit only; dashed: chance; below FPR = 1 / {int(first['n_nonmembers'])} the "
            f"curve rests on no false positive. AUC: {auc}. "
            f"Samples: {sizes}. {slice_text}",
        ),
        TableBlock(
            "lira_summary",
            "LiRA: AUC and TPR at low FPR, seed known vs hidden",
            summary,
            "auc: pooled; auc_target_*: mean over targets with its interval; tpr_at_Xpct: TPR at X% FPR with "
            "Clopper-Pearson interval (_lo, _hi); p: one-sided paired test over targets that the seed-known AUC is "
            f"larger. The study ran no LiRA (an extension of its Table 6). Samples: {sizes}. {slice_text}",
        ),
    ]
    for variant, g in summary.groupby("variant"):
        by = {str(r["setting"]): r for r in g.to_dict("records")}
        if {"known", "hidden"} <= set(by):
            known, hidden = by["known"], by["hidden"]
            p = float(known["p_value_known_gt_hidden"])
            blocks.append(
                comparison(
                    bool(np.isfinite(p) and p < 0.05 and known["auc"] > hidden["auc"]),
                    f"LiRA {variant} on {name}: AUC {known['auc']:.3f} with the seed known, {hidden['auc']:.3f} hidden "
                    f"(p = {_fmt(p)} over {int(known['n_targets'])} targets); the study found that hiding the seed "
                    "weakens its loss-threshold attack.",
                )
            )
    return blocks


SETTING_WORDS = {"known": "seed known", "hidden": "seed hidden"}


def bounds_parts(inputs: Inputs) -> list[Block]:
    """Epsilon lower bounds (`mia_bounds`: experiment, t, attack, setting, n_calibration_runs,
    n_evaluation_runs, counts, fpr, fnr, threshold, epsilon_lower_bound, note; `lira_bounds`: the same
    without experiment, step and run counts)."""
    yeom = inputs.get("mia_bounds") if inputs.has("mia_bounds") else None
    lira = inputs.get("lira_bounds") if inputs.has("lira_bounds") else None
    if yeom is None and lira is None:
        return [Note("No epsilon lower bounds were given (mia_bounds, lira_bounds).", "missing")]
    table = tb.bounds_table(yeom, lira, lira_name(inputs))
    m = inputs.config.get("mia") or {}
    blocks: list[Block] = [
        TableBlock(
            "epsilon_bounds",
            "Epsilon lower bounds from the attacks",
            table,
            "The threshold is chosen on the runs of the first half of the seeds (calibration) and the errors are "
            "counted on the other runs; one-sided Clopper-Pearson bounds on FPR and FNR at confidence "
            f"{m.get('confidence', '?')} give epsilon >= max(ln((1 - delta - FPR) / FNR), ln((1 - delta - FNR) / FPR)) "
            f"at delta = {m.get('delta', '?')}. n_members, n_nonmembers: the counted (run, example) trials. The note "
            "column says what each bound assumes. "
            f"{mia_settings(inputs, ['delta', 'confidence', 'bound_candidates'])}",
        )
    ]
    blocks += [Note(f"{', '.join(sorted(g['attack'].unique()))}: {note}.") for note, g in table.groupby("note")]
    return blocks


# ---------------------------------------------------------------- DP-SGD / SAM


def describe_dp(inputs: Inputs, configurations: list[str]) -> str:
    """The DP study's config slice behind a figure or table: delta, repeats and each configuration's settings."""
    dp = inputs.config.get("dp")
    if not dp:
        return "Config slice: the 'dp' settings were not passed to the report."
    confs = dp.get("configurations") or {}
    shown = [
        f"{name}: " + ", ".join(f"{k} {v}" for k, v in confs[name].items()) if name in confs else name
        for name in sorted(set(configurations))
    ]
    return f"Config slice (dp): delta = {dp.get('delta')}, repeats = {dp.get('repeats')}; " + "; ".join(shown) + "."


def dp_epoch_parts(inputs: Inputs) -> list[Block]:
    """Per-epoch privacy-utility (`dp_summary`: configuration, epoch, attack, algorithm, repeats,
    test_accuracy, p_err, advantage, each with _lo/_hi)."""
    summary = inputs.get("dp_summary", ["configuration", "epoch", "attack", "repeats"])
    names = list(summary["configuration"].unique())
    reps = "/".join(str(r) for r in sorted(summary["repeats"].unique()))
    sizes = (
        f"{reps} repeats per point; epochs {int(summary['epoch'].min())} to {int(summary['epoch'].max())} "
        f"(epoch 0: before training). {describe_dp(inputs, names)}"
    )
    crosses = "Crosses: 95% Student-t confidence intervals over repeats (clipped to the metric's range); circle: first epoch, star: last epoch."
    return [
        FigureBlock(
            "dp_privacy_utility",
            "Privacy (attack error P_err) against utility per epoch",
            fg.privacy_utility(summary, "p_err"),
            f"One panel per membership attack. {crosses} Right and up is better. {sizes}",
        ),
        FigureBlock(
            "dp_advantage_utility",
            "Attack advantage against utility per epoch",
            fg.privacy_utility(summary, "advantage"),
            f"Advantage = TPR - FPR of the attack at its threshold (left is more private). {crosses} {sizes}",
        ),
        TableBlock(
            "dp_final",
            "Each configuration at its last epoch",
            tb.dp_final_table(summary),
            f"Means and 95% CIs (_lo, _hi) over repeats; epsilon: RDP accountant at delta (inf: no noise). {sizes}",
        ),
    ]


def dp_sweep_parts(inputs: Inputs) -> list[Block]:
    """Sweeps (`dp_sweeps`: sweep, configuration, label, key, the summary's columns, dominated) at their
    last epoch, beside the lab report's Tables 1 (epsilon) and 2 (clipping norm) where the key matches."""
    sweeps = inputs.get("dp_sweeps", ["sweep", "configuration", "key"])
    blocks: list[Block] = []
    for name, rows in sweeps.groupby("sweep", sort=True):
        table = tb.sweep_table(sweeps, str(name))
        key = rows["key"].dropna().unique()
        swept = f"swept key {key[0]}" if len(key) else "named variants"
        study = ""
        if len(key) and key[0] in tb.STUDY_SWEEPS:
            source = "DP_EPSILON_SWEEP" if key[0] == "target_epsilon" else "DP_CLIPPING_SWEEP"
            study = f" Study columns: {sv.SOURCES[source]} (MNIST CNN, 50 epochs, batch 256)."
        blocks.append(
            TableBlock(
                f"dp_sweep_{name}",
                f"Sweep {name} ({swept})",
                table,
                f"Last epoch of each point, per attack; dominated: another (point, epoch) of the sweep has higher P_err "
                f"and no lower test accuracy, or the reverse.{study} "
                f"{describe_dp(inputs, list(rows['configuration'].unique()))}",
            )
        )
        if len(key) and key[0] == "target_epsilon":
            per_point = table.groupby("target_epsilon")["test_accuracy"].first().reset_index()
            rho = tb.rank_correlation(per_point["target_epsilon"], per_point["test_accuracy"])
            if np.isfinite(rho):
                blocks.append(
                    comparison(
                        rho > 0,
                        f"sweep {name}: test accuracy against target epsilon has rank correlation {rho:.2f} over "
                        f"{len(per_point)} points ({table['repeats'].max()} repeats each); the lab report's accuracy "
                        "falls as epsilon falls (0.992 at inf to 0.842 at 0.5).",
                    )
                )
    if not any(tb.STUDY_SWEEPS.keys() & set(sweeps["key"].dropna())):
        blocks.append(
            Note(
                "No epsilon or clipping sweep in this config (dp.sweeps with key target_epsilon or max_grad_norm), so "
                "the lab report's Tables 1 and 2 are not compared; config/study.yaml has both.",
                "missing",
            )
        )
    return blocks


def outlier_parts(inputs: Inputs) -> list[Block]:
    """Outliers (`dp_outliers`: configuration, epoch, attack, member, outliers, examples)."""
    out = inputs.get("dp_outliers", ["configuration", "epoch", "attack", "member", "outliers", "examples"])
    reps = (inputs.config.get("dp") or {}).get("repeats", "all")
    return [
        TableBlock(
            "dp_outliers",
            "Outliers: examples the attack identifies in every repeat",
            tb.outlier_table(out),
            f"At each configuration's last epoch: members (non-members) the attack classifies correctly in all {reps} "
            f"repeats, of the examples attacked. {describe_dp(inputs, list(out['configuration'].unique()))}",
        )
    ]


# ---------------------------------------------------------------- output perturbation


def output_perturbation_parts(inputs: Inputs) -> list[Block]:
    """Accuracy against epsilon (`bolt_on`: experiment, init, sensitivity, heuristic, mechanism, epsilon,
    noise_added, accuracy_unperturbed, accuracy_perturbed, mean_diff, ci_low, ci_high, n_runs, n_draws)."""
    bolt_on = inputs.get("bolt_on", ["experiment", "n_runs", "n_draws"])
    table = tb.bolt_on_table(bolt_on)
    names = list(bolt_on["experiment"].unique())
    sizes = "; ".join(
        f"{e}: {int(g['n_runs'].max())} runs x {int(g['n_draws'].max())} noise draws per point"
        for e, g in bolt_on.groupby("experiment")
    )
    slice_text = f"{describe_experiments(inputs, names)} {stage_settings(inputs, 'perturbation')}"
    blocks: list[Block] = [
        FigureBlock(
            "bolt_on_accuracy",
            "Output perturbation: test accuracy against epsilon",
            fg.output_perturbation(bolt_on),
            "Gaussian noise s = c Delta / epsilon on the released weights (bolt_on); augmented: only the part "
            "of s the seed's own spread sigma_intrinsic does not already supply. Line: mean test accuracy; band: 95% "
            f"CI of the mean change in accuracy; dotted: no output noise. Samples: {sizes}. {slice_text}",
        ),
        TableBlock("bolt_on", "Output perturbation: noise and accuracy", table, f"Samples: {sizes}. {slice_text}"),
    ]
    if table["heuristic"].any():
        blocks.append(
            Note(
                "Rows calibrated to Delta_empirical are a heuristic: the largest observed distance is not a bound on "
                "the sensitivity, so they carry no DP guarantee."
            )
        )
    return blocks


def repeated_query_parts(inputs: Inputs) -> list[Block]:
    """Repeated queries (`query_attack`: experiment, api, attack, k, rmse, advantage, auc, n_members,
    n_nonmembers, query_noise, dp_epsilon, advantage_bound)."""
    attack = inputs.get("query_attack", ["experiment", "api", "attack", "k", "rmse", "n_members", "n_nonmembers"])
    names = list(attack["experiment"].unique())
    sizes = "; ".join(
        f"{e}: {int(g['n_members'].max())} members and {int(g['n_nonmembers'].max())} non-members"
        for e, g in attack.groupby("experiment")
    )
    slice_text = f"{describe_experiments(inputs, names)} {stage_settings(inputs, 'perturbation')}"
    blocks: list[Block] = [
        FigureBlock(
            "query_attack",
            "A noisy prediction API under repeated queries",
            fg.repeated_queries(attack),
            "APIs: exact (no noise), fresh (new noise each query), fixed (noise fixed per input), dp_sgd (a model "
            "trained with DP-SGD, answering exactly); attacks: repeat (the same query k times), nearby (k slightly "
            "perturbed copies of the input). Left: RMSE of the averaged score against the true one (log-log; noiseless "
            f"APIs, RMSE 0, are not drawn); right: membership advantage. Attacked: {sizes}. {slice_text}",
        ),
        TableBlock(
            "query_attack",
            "Repeated queries at the smallest and largest k",
            tb.query_table(attack),
            f"Attacked: {sizes}. {slice_text}",
        ),
    ]
    for (name, api, how), g in attack.groupby(["experiment", "api", "attack"]):
        noisy = g[g["rmse"] > fg.NOISELESS]
        if len(noisy) >= 3 and noisy["rmse"].nunique() > 1:
            slope = tb.log_log_slope(noisy["k"].to_numpy(), noisy["rmse"].to_numpy())
            blocks.append(
                Note(
                    f"{name}, {api} API, {how} attack: the error falls as k^{slope:.2f} over k = {int(noisy['k'].min())} "
                    f"to {int(noisy['k'].max())} (averaging independent noise gives k^-0.5)."
                )
            )
    return blocks


# ---------------------------------------------------------------- ledger


def ledger_parts(inputs: Inputs) -> list[Block]:
    """Privacy ledger (`ledger`: dataset, runs, dp_runs, non_private_runs, basic_epsilon, basic_delta,
    rdp_epsilon, rdp_delta, largest_run_epsilon, epsilon_all_runs)."""
    led = inputs.get("ledger", ["dataset", "runs", "dp_runs", "non_private_runs"])
    dp = inputs.config.get("dp") or {}
    slice_text = describe_dp(inputs, list(dp.get("configurations") or {}))
    sizes = "; ".join(
        f"{r['dataset']}: {r['runs']} runs, {r['dp_runs']} with DP, {r['non_private_runs']} without"
        for r in led.to_dict("records")
    )
    return [
        TableBlock(
            "ledger",
            "Privacy ledger: epsilon spent on each dataset",
            led,
            "Basic composition: sums of the DP runs' epsilons and deltas; RDP: the runs' Renyi curves added and "
            "converted once at the ledger's delta; epsilon_all_runs is infinite when any run had no noise. "
            f"Runs: {sizes}. {slice_text}",
        ),
        FigureBlock(
            "ledger",
            "Epsilon per dataset: one run against all runs",
            fg.ledger(led),
            f"Infinite values are not drawn. Runs: {sizes}. {slice_text}",
        ),
    ]


INTRINSIC = sv.INTRINSIC
SECTIONS: tuple[Section, ...] = (
    Section(
        "data",
        "Data and training grid",
        INTRINSIC,
        ("dataset_meta", "runs", "convergence"),
        "data, training",
        (data_tables, grid_tables),
    ),
    Section(
        "distances",
        "Seed variability against data sensitivity",
        INTRINSIC,
        ("distances_over_t", "distances_at_T"),
        "distances",
        (distance_figures,),
    ),
    Section(
        "embedding",
        "UMAP and k-means of the weights",
        INTRINSIC,
        ("umap", "kmeans_spans"),
        "weight_embedding",
        (umap_figures, kmeans_tables),
    ),
    Section(
        "distribution",
        "Shape of the weight distribution",
        INTRINSIC,
        ("distribution_tests", "nonnormal_weights"),
        "distribution_tests",
        (distribution_parts, nonnormal_figure),
    ),
    Section(
        "epsilon",
        "Intrinsic epsilon and its stability",
        INTRINSIC,
        ("epsilon", "sigma_per_dataset", "stability"),
        "intrinsic_epsilon",
        (epsilon_parts, sigma_range_parts, stability_figure),
    ),
    Section(
        "mia",
        "Membership inference: seed known vs hidden",
        INTRINSIC,
        ("mia_table6", "mia_attacks", "mia_bounds", "lira_summary", "lira_roc", "lira_bounds"),
        "membership inference",
        (mia_parts, mia_figure, roc_parts, bounds_parts),
    ),
    Section(
        "dp",
        "DP-SGD and SAM: privacy against utility",
        "DP vs generalisation against MIA; DP-SGD lab report",
        ("dp_summary", "dp_sweeps", "dp_outliers"),
        "DP-SGD / SAM",
        (dp_epoch_parts, dp_sweep_parts, outlier_parts),
    ),
    Section(
        "output_perturbation",
        "Output perturbation and repeated queries",
        "Output noise vs DP-SGD",
        ("bolt_on", "query_attack"),
        "output perturbation",
        (output_perturbation_parts, repeated_query_parts),
    ),
    Section(
        "ledger", "Privacy ledger", "DP vs generalisation against MIA", ("ledger",), "privacy ledger", (ledger_parts,)
    ),
)


def section_kinds() -> dict[str, tuple[str, ...]]:
    """Every section's table kinds, by section key."""
    return {s.key: tuple(s.kinds) for s in SECTIONS}
