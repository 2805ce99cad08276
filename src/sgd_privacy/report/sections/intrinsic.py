"""Sections of the intrinsic-privacy study: data and grid, distances, UMAP and k-means, the weight distribution, intrinsic epsilon."""

from __future__ import annotations

import numpy as np

from .. import figures as fg
from .. import study_values as sv
from .. import tables as tb
from ..blocks import Block, FigureBlock, Note, TableBlock, comparison
from ..frames import Inputs
from .common import analysis_settings, describe_experiments, experiment_T, fmt

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
                        f"(minimum p = {fmt(p)}); the study did not reject for convex models (p {hz_lo} to {hz_hi}, "
                        f"{n_study} seeds).",
                    )
                )
            else:
                blocks.append(
                    comparison(
                        rejects,
                        f"{who}: Henze-Zirkler {'rejects' if rejects else 'does not reject'} normality "
                        f"(minimum p = {fmt(p)}); the study rejected it for neural networks ({n_study} seeds).",
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
                    f"{rec['experiment']}: epsilon with the bolt-on bound is {fmt(e_t)}, with the empirical sensitivity "
                    f"{fmt(e_e)} ({rec['n_seeds']} seeds x {rec['n_datasets']} D_i); the study: the theoretical "
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
                f"{rec['experiment']}: sigma ranges {fmt(rec['sigma_min'])} to {fmt(rec['sigma_max'])} over "
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
