"""Sections of the intrinsic-privacy study: data and grid, distances, UMAP and k-means, the weight distribution, intrinsic epsilon."""

from __future__ import annotations

import numpy as np

from ...analysis.distribution import HZ_MAX_DIM
from .. import figures as fg
from .. import study_values as sv
from .. import tables as tb
from ..blocks import Block, FigureBlock, Note, TableBlock, comparison
from ..frames import Inputs
from ..verdict import (
    MIN_POWER,
    Verdict,
    chance_verdict,
    clopper_pearson,
    effect_verdict,
    interval_verdict,
    one_cluster_chance,
    outcome_verdict,
    point_verdict,
    std_relative_se,
)
from .common import analysis_settings, describe_experiments, experiment_T, fmt, stage_settings

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
        f"Accuracy: mean validation accuracy over the non-diverged runs at T ({len(runs)} runs in all); the study "
        "does not say which split its Table 2 uses. Study grid sizes from its Table 3."
    )
    blocks: list[Block] = [
        TableBlock(
            "grid",
            "Models, grid and accuracy at T (study Tables 2 and 3)",
            table,
            caption,
            config_slice=(describe_experiments(inputs, list(table["experiment"])),),
        )
    ]
    blocks += convergence_parts(inputs)
    n_val = validation_sizes(inputs)
    for rec in table.to_dict("records"):
        if np.isfinite(rec["study_accuracy"]) and np.isfinite(rec["val_accuracy_at_T"]):
            gap = rec["val_accuracy_at_T"] - rec["study_accuracy"]
            n = n_val.get(str(rec["dataset"]), 0)
            lo, hi = clopper_pearson(round(rec["val_accuracy_at_T"] * n), n)
            verdict = interval_verdict(lo, hi, rec["study_accuracy"], rec["study_accuracy"], ACCURACY_TOLERANCE)
            interval = f"95% interval {lo:.3f} to {hi:.3f} over {n} validation examples" if n else "no interval"
            blocks.append(
                comparison(
                    verdict,
                    f"{rec['experiment']} reaches {rec['val_accuracy_at_T']:.3f} at T = {rec['T']} "
                    f"({rec['models']} models; {interval}) against the study's {rec['study_accuracy']:.3f} for "
                    f"{rec['model']} on {rec['study_dataset']} ({gap:+.3f}; tolerance {ACCURACY_TOLERANCE}).",
                )
            )
    return blocks


ACCURACY_TOLERANCE = 0.02


def validation_sizes(inputs: Inputs) -> dict[str, int]:
    """Validation rows per dataset from the dataset sidecars (empty when not given)."""
    if not inputs.has("dataset_meta"):
        return {}
    meta = inputs.tables["dataset_meta"]
    if not {"dataset", "n_val"} <= set(meta.columns):
        return {}
    return {str(d): int(n) for d, n in zip(meta["dataset"], meta["n_val"], strict=True) if np.isfinite(n)}


def convergence_parts(inputs: Inputs) -> list[Block]:
    """How each experiment's T was found and how many runs converged (`convergence`: experiment, T, T_source,
    n_runs, n_converged, n_not_converged, n_diverged; else counted from `runs`: converged, diverged)."""
    table = tb.convergence_table(inputs.get("runs"), inputs.get("convergence"))
    blocks: list[Block] = [
        TableBlock(
            "convergence",
            "How T was found and how many runs converged",
            table,
            "T_source: how the training stage chose T (a convergence point, the last logged step when no run "
            "converged, or set in the config). Delta_theory grows linearly with T, so where T is not a convergence "
            "point the bound and the epsilon built on it are for that step only.",
        )
    ]
    for rec in table.to_dict("records"):
        blocks.append(
            Note(f"{rec['experiment']}: {tb.convergence_words(rec)}", "note" if rec["converged_T"] else "missing")
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
    slice_text = (describe_experiments(inputs, names), analysis_settings(inputs, ["n_pairs", "pair_seed"]))
    table = tb.distances_table(at_T, over_t, T)
    blocks: list[Block] = [
        FigureBlock(
            "distances_over_t",
            "Distances between weights over training (study Figure 2)",
            fg.distances_over_time(over_t, T),
            f"Line: median over sampled pairs; band: 5% to 95%; dashed: bolt-on bound (logistic regression); "
            f"dotted: T. Pairs per kind: {n_text}.",
            config_slice=slice_text,
        ),
        FigureBlock(
            "distances_at_T",
            "All distances at T (study Figure 3)",
            fg.distances_at_T(at_T, tb.theory_at_T(over_t, T)),
            f"Density of the pair distances at each experiment's T (log x); dashed: bolt-on bound. "
            f"Pairs per kind: {n_text}.",
            config_slice=slice_text,
        ),
        TableBlock("distances_at_T", "Distances at T", table, f"Pairs per kind: {n_text}.", config_slice=slice_text),
    ]
    lo, hi = sv.SECTION_RANGES["theory_over_empirical"]
    for rec in table[table["bound_over_max_sensitivity"].notna()].to_dict("records"):
        r = rec["bound_over_max_sensitivity"]
        study_models = tb.study_grid(inputs.experiments(), str(rec["experiment"])).get("models", np.inf)
        few = rec["pairs"] < study_models
        blocks.append(
            comparison(
                interval_verdict(r, r, lo, hi, high_side_explained_by_size=few),
                f"{rec['experiment']}: the bolt-on bound is {r:.3g} times the largest of {rec['pairs']} sensitivity "
                f"distances at T; the study found {lo} to {hi} for its convex models"
                + (
                    " (a maximum over fewer pairs than the study's models is smaller, so a larger ratio is expected "
                    "at this size)."
                    if few
                    else "."
                ),
            )
        )
    for name, g in at_T.groupby("experiment"):
        sens = np.sort(g.loc[g["kind"] == "sensitivity", "distance"].to_numpy(dtype=float))
        var = g.loc[g["kind"] == "variability_variable_init", "distance"].to_numpy(dtype=float)
        if len(sens) and len(var):
            share = 1.0 - np.searchsorted(sens, var, side="right").mean() / len(sens)
            n = min(len(sens), len(var))
            s_lo, s_hi = clopper_pearson(round(share * n), n)
            blocks.append(
                comparison(
                    interval_verdict(s_lo, s_hi, 0.0, 0.05),
                    f"{name}: a sensitivity distance exceeds a variable-init variability distance in {share:.1%} of "
                    f"the {len(sens)} x {len(var)} comparisons (95% interval {s_lo:.1%} to {s_hi:.1%}, counting the "
                    f"smaller sample, {n}, as independent draws); the study: the seed moves the weights more than "
                    "one example in almost all cases (taken as at most 5%).",
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
    caption = f"UMAP (15 neighbours, min_dist 0.1) of every variable-init run's weights at T. Runs: {sizes}."
    return [
        FigureBlock(
            "umap",
            "UMAP of the weights at T by seed and by dataset (study Figure 4)",
            fg.umap_scatter(umap),
            caption,
            config_slice=(
                describe_experiments(inputs, list(umap["experiment"].unique())),
                analysis_settings(inputs, ["seed"]),
            ),
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
            "k = max(runs per seed, runs per dataset D_i); groups: seeds or datasets counted.",
            config_slice=(
                describe_experiments(inputs, list(table["experiment"].unique())),
                analysis_settings(inputs, ["seed"]),
            ),
        )
    ]
    for name, g in table.groupby("experiment"):
        by = g.set_index("by")
        if {"seed", "replace_index"} <= set(by.index):
            s, r = by.loc["seed"], by.loc["replace_index"]
            chance = one_cluster_chance(
                int(np.asarray(s["k"])), int(np.asarray(r["groups"])), int(np.asarray(s["groups"]))
            )
            blocks.append(
                comparison(
                    chance_verdict(bool(s["max_clusters"] == 1 and r["mean_clusters"] > 1), chance),
                    f"{name}: a seed's runs span at most {s['max_clusters']} of k = {s['k']} clusters "
                    f"({s['groups']} seeds), a dataset's runs {r['mean_clusters']:.3g} on average "
                    f"({r['groups']} datasets); the study: one cluster per seed, datasets spread over clusters. By chance "
                    f"alone every seed's {r['groups']} runs share a cluster with probability {fmt(chance)}.",
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
        f"Each row: one dataset D_i's centred variable-init weights at T. Study: {sv.DISTRIBUTION_SEEDS} seeds per "
        "dataset."
    )
    blocks: list[Block] = [
        TableBlock(
            "distribution_tests",
            "Normality, Laplace and tail tests (study section 6)",
            table,
            caption,
            config_slice=(
                describe_experiments(inputs, list(table["experiment"].unique())),
                analysis_settings(inputs, ["distribution_datasets", "ad_simulations", "seed"]),
            ),
        )
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
            power = hz_power_at(inputs, int(rec["n_seeds"]), int(rec["n_params"]))
            power_text = (
                f"simulated power against a Laplace at {rec['n_seeds']} seeds: {power:.0%}"
                if power is not None
                else "power at this size unknown (no HZ power simulation in this config)"
            )
            study_text = (
                f"the study did not reject for convex models (p {hz_lo} to {hz_hi}, {n_study} seeds)"
                if convex
                else f"the study rejected it for neural networks ({n_study} seeds)"
            )
            blocks.append(
                comparison(
                    outcome_verdict(rejects, not convex, power),
                    f"{who}: Henze-Zirkler {'rejects' if rejects else 'does not reject'} normality "
                    f"(minimum p = {fmt(p)}; {power_text}); {study_text}.",
                )
            )
        elif rec.get("hz_note"):
            blocks.append(Note(f"{who}: Henze-Zirkler not available: {rec['hz_note']}."))
        frac = rec.get("laplace_rejected_bonferroni", np.nan)
        if frac is not None and np.isfinite(frac):
            n_w = int(rec["n_params"])
            f_lo, f_hi = clopper_pearson(round(frac * n_w), n_w)
            few = rec["n_seeds"] < n_study
            blocks.append(
                comparison(
                    interval_verdict(f_lo, f_hi, la_lo, la_hi, low_side_explained_by_size=few),
                    f"{who}: {frac:.0%} of weights rejected as Laplace after Bonferroni (95% interval {f_lo:.0%} to "
                    f"{f_hi:.0%} over {n_w} weights); the study: {la_lo:.0%} to {la_hi:.0%} ({n_study} seeds)"
                    + (
                        "; with fewer seeds the test rejects less often, so a lower fraction is expected."
                        if few
                        else "."
                    ),
                )
            )
        alpha = rec.get("tail_index", np.nan)
        if convex and alpha is not None and np.isfinite(alpha):
            blocks.append(
                comparison(
                    point_verdict(alpha, al_lo, al_hi, rec["n_seeds"], n_study, 0.05),
                    f"{who}: tail index alpha = {alpha:.3g} (no interval); the study: {al_lo} to {al_hi} for convex "
                    f"models with {n_study} seeds (tolerance 0.05).",
                )
            )
    return blocks


def hz_power_at(inputs: Inputs, n_seeds: int, n_params: int) -> float | None:
    """The simulated Henze-Zirkler power against a Laplace at `n_seeds` seeds and the tested dimension
    (`hz_power`: distribution, n_seeds, dimension, power) at the simulated dimension nearest the tested one,
    linearly interpolated in the seed count; None where the simulation is absent or does not cover that size."""
    if not inputs.has("hz_power"):
        return None
    table = inputs.tables["hz_power"]
    if not {"distribution", "n_seeds", "dimension", "power"} <= set(table.columns):
        return None
    lap = table[table["distribution"] == "laplace"]
    if lap.empty:
        return None
    tested = min(n_params, HZ_MAX_DIM)  # the HZ test runs on subsets of at most HZ_MAX_DIM weights
    dims = np.unique(lap["dimension"].to_numpy())
    dim = dims[np.argmin(np.abs(dims - tested))]
    rows = lap[(lap["dimension"] == dim) & np.isfinite(lap["power"])].sort_values("n_seeds")
    if rows.empty:
        return None
    # power grows with the seeds: below the simulated range the first point bounds it from above (usable only
    # when that bound is already low), above it the last point bounds it from below
    power = float(np.interp(n_seeds, rows["n_seeds"], rows["power"]))
    if n_seeds < rows["n_seeds"].min() and power >= MIN_POWER:
        return None
    return power


def hz_power_parts(inputs: Inputs) -> list[Block]:
    """The HZ power simulation (`hz_power`: distribution, dimension, n_seeds, replicates, power, power_lo,
    power_hi) as the study's Figure 7, beside the seed counts this run tested."""
    if not inputs.has("hz_power"):
        return [
            Note(
                "The Henze-Zirkler power simulation is not in this config (hz_power.enabled: false), so an HZ "
                "non-rejection cannot be weighed by the test's power: it is 'cannot tell at this size'.",
                "missing",
            )
        ]
    power = inputs.get("hz_power", ["distribution", "dimension", "n_seeds", "replicates", "power"])
    if power.empty:
        return [Note("The HZ power simulation wrote no rows.", "missing")]
    reps = "/".join(str(r) for r in sorted(power.loc[power["replicates"] > 0, "replicates"].unique()))
    tested = ""
    if inputs.has("distribution_tests") and "n_seeds" in inputs.tables["distribution_tests"]:
        seeds = sorted({int(n) for n in inputs.tables["distribution_tests"]["n_seeds"]})
        tested = f" This run tested {', '.join(map(str, seeds))} seeds per dataset D_i."
    lap = power[power["distribution"] == "laplace"].sort_values("n_seeds")
    enough = lap[lap["power"] >= MIN_POWER]
    first = (
        f"Against a Laplace the simulated power reaches {MIN_POWER:.0%} at {int(enough['n_seeds'].iloc[0])} seeds "
        f"(dimension {int(enough['dimension'].iloc[0])})."
        if len(enough)
        else f"Against a Laplace the simulated power stays below {MIN_POWER:.0%} at every simulated seed count."
    )
    return [
        FigureBlock(
            "hz_power",
            "Henze-Zirkler power against the number of seeds (study Figure 7)",
            fg.hz_power(power),
            "Share of replicates (seeds x dimension) in which the HZ test rejects normality at 5%, with 95% "
            "Clopper-Pearson intervals: under a normal with inverse-Wishart covariance (full) or independent "
            f"coordinates (diagonal) this is the test's size, under a Laplace its power. {reps} replicates per point. "
            f"{first}{tested}",
            config_slice=(stage_settings(inputs, "hz_power"),),
        ),
        Note(
            f"{first} A Henze-Zirkler non-rejection at a seed count where this power is below {MIN_POWER:.0%} is "
            "'cannot tell at this size', not 'agrees'."
        ),
    ]


def nonnormal_figure(inputs: Inputs) -> list[Block]:
    """Least normal weights (`nonnormal_weights`: experiment, replace_index, weight, shapiro_p, seed, value)."""
    ex = inputs.get("nonnormal_weights", allow_empty=True)
    if not ex.empty:
        ex = inputs.get("nonnormal_weights", ["experiment", "weight", "shapiro_p", "value"])
    if ex.empty:
        return [Note("No weights were tested (no dataset had enough seeds).")]
    by = ["experiment", "replace_index"] if "replace_index" in ex else ["experiment"]
    sizes = "; ".join(
        f"{' D_'.join(map(str, key if isinstance(key, tuple) else (key,)))}: {g['weight'].nunique()} weights, "
        f"{'/'.join(str(n) for n in sorted(g.groupby('weight').size().unique()))} seeds each"
        for key, g in ex.groupby(by)
    )
    return [
        FigureBlock(
            "nonnormal_weights",
            "The least normal weights (study Figure 5)",
            fg.nonnormal_weights(ex),
            f"Values over seeds of the weights with the lowest Shapiro-Wilk p-value at T: one panel per dataset D_i "
            "and weight, its p-value from that D_i's seeds (a weight least normal on two D_i has two panels). "
            f"Samples: {sizes}.",
            config_slice=(describe_experiments(inputs, list(ex["experiment"].unique())),),
        )
    ]


# ---------------------------------------------------------------- intrinsic epsilon (Tables 4, 5, Figure 6)


def epsilon_parts(inputs: Inputs) -> list[Block]:
    """Table 4 (`epsilon`: experiment, T, N, n_seeds, n_datasets, sigma, sigma_max, sigma_ci_*,
    delta_theory, delta_empirical, epsilon_theory/empirical with _ci_* and _weight_min, theorem_applies)."""
    eps = inputs.get("epsilon", ["experiment", "T", "N", "n_seeds", "n_datasets", "sigma", "epsilon_theory"])
    exps = inputs.experiments()
    table = tb.epsilon_table(eps, exps)
    method = "; ".join(sorted(set(eps["ci_method"].dropna().astype(str)))) if "ci_method" in eps else ""
    caption = (
        "epsilon = c Delta / sigma with c = sqrt(2 ln(1.25 / delta)), delta = 1/N^2. Intervals: "
        + (method or "as the analysis stage wrote them (no ci_method column)")
        + "; boot_low/boot_high: the bootstrap band over seeds where the stage wrote one. Neither interval includes "
        "the uncertainty of Delta (Delta_empirical is a maximum over the sampled pairs and grows with more pairs). "
        "Study values: logistic regression, intrinsic-privacy study Table 4."
    )
    eps_slice = (
        describe_experiments(inputs, list(eps["experiment"])),
        analysis_settings(inputs, ["bootstrap", "bootstrap_seed", "n_pairs"]),
    )
    blocks: list[Block] = [
        TableBlock("epsilon", "Intrinsic epsilon (study Table 4)", table, caption, config_slice=eps_slice)
    ]
    for rec in eps.to_dict("records"):
        e_t, e_e = rec.get("epsilon_theory", np.nan), rec.get("epsilon_empirical", np.nan)
        if np.isfinite(e_t) and np.isfinite(e_e):
            t_lo, t_hi = rec.get("epsilon_theory_ci_low", np.nan), rec.get("epsilon_theory_ci_high", np.nan)
            m_lo, m_hi = rec.get("epsilon_empirical_ci_low", np.nan), rec.get("epsilon_empirical_ci_high", np.nan)
            # the ratio's interval from the two (same sigma, so the ratio is Delta_theory / Delta_empirical)
            verdict = effect_verdict(t_lo - m_hi, t_hi - m_lo, None)
            blocks.append(
                comparison(
                    verdict,
                    f"{rec['experiment']}: epsilon with the bolt-on bound is {fmt(e_t)} ({fmt(t_lo)} to {fmt(t_hi)}), "
                    f"with the empirical sensitivity {fmt(e_e)} ({fmt(m_lo)} to {fmt(m_hi)}; {rec['n_seeds']} seeds x "
                    f"{rec['n_datasets']} D_i); the study: the theoretical epsilon greatly exceeds the empirical one.",
                )
            )
        blocks += table4_scale_notes(rec, exps)
        blocks += delta_empirical_note(inputs, rec)
        if rec.get("T_is_convergence_point") is False or T_not_converged(inputs, str(rec["experiment"])):
            blocks.append(
                Note(
                    f"{rec['experiment']}: T = {rec['T']} is not a convergence point ({T_source(inputs, str(rec['experiment']))}); "
                    "Delta_theory grows linearly with T, so this bound and its epsilon hold at that step only.",
                    "missing",
                )
            )
        if (
            not np.isfinite(rec.get("delta_theory", np.nan))
            and tb.experiment_info(exps, str(rec["experiment"]))["model"] == "logreg"
        ):
            why = str(rec.get("notes") or "").strip() or "the bound is not defined for this run (e.g. lr > 2 / beta)"
            blocks.append(
                Note(
                    f"{rec['experiment']}: no bolt-on bound at T, so no Delta_theory or epsilon with it: {why}.",
                    "missing",
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
            "sigma estimated on each dataset D_i alone.",
            config_slice=(describe_experiments(inputs, list(table["experiment"])),),
        )
    ]
    if inputs.has("sigma_per_dataset"):
        per = inputs.get("sigma_per_dataset", ["experiment", "replace_index", "sigma"])
        blocks.append(
            FigureBlock(
                "sigma_per_dataset",
                "sigma on each dataset D_i",
                fg.sigma_per_dataset(per),
                "One point per dataset D_i.",
                config_slice=(describe_experiments(inputs, list(per["experiment"].unique())),),
            )
        )
    for rec in table.to_dict("records"):
        ours = rec["relative_spread"]
        ref = rec["study_relative_spread"]
        limit = 0.05
        # two sigma estimates from n seeds each differ by noise alone by about 1.96 sqrt(2) relative SEs
        noise = 1.96 * np.sqrt(2) * std_relative_se(int(rec["seeds_per_D_i"]))
        if not np.isfinite(ours) or rec["datasets_D_i"] < 2:  # a range needs two datasets
            verdict = Verdict.CANNOT_TELL
        elif ours <= limit:
            verdict = Verdict.AGREES
        else:
            verdict = Verdict.DIFFERS if ours > limit + noise else Verdict.CANNOT_TELL
        blocks.append(
            comparison(
                verdict,
                f"{rec['experiment']}: sigma ranges {fmt(rec['sigma_min'])} to {fmt(rec['sigma_max'])} over "
                f"{rec['datasets_D_i']} datasets of {rec['seeds_per_D_i']} seeds (spread {ours:.1%}; seed noise "
                f"alone spreads two estimates by up to {noise:.1%}); the study found "
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


STABLE_CHANGE = 0.05


def T_not_converged(inputs: Inputs, name: str) -> bool:
    """Whether an experiment's T was not found as a convergence point (convergence `T_median` < 0 or its
    `T_source` says the last logged step or the config set it)."""
    return tb.T_kind(inputs.tables.get("convergence"), name) in ("last logged step", "set in the config")


def T_source(inputs: Inputs, name: str) -> str:
    """How an experiment's T was found, in words ('unknown' without a convergence table)."""
    return tb.T_source_words(inputs.tables.get("convergence"), name)


def delta_empirical_note(inputs: Inputs, rec: dict) -> list[Block]:
    """Where Delta_empirical (from the pairs of one init mode) differs from the distances table's largest
    sensitivity distance at T (all init modes, sampled pairs), say which pairs each number comes from."""
    if not inputs.has("distances_at_T") or not np.isfinite(rec.get("delta_empirical", np.nan)):
        return []
    at = inputs.tables["distances_at_T"]
    if not {"experiment", "kind", "distance"} <= set(at.columns):
        return []
    sens = at[(at["experiment"] == rec["experiment"]) & (at["kind"] == "sensitivity")]
    if sens.empty or np.isclose(sens["distance"].max(), rec["delta_empirical"], rtol=1e-6):
        return []
    top = sens.loc[sens["distance"].idxmax()]
    init = f" ({top['init']}-init pair)" if "init" in sens else ""
    pairs = rec.get("n_pairs_empirical")
    source = f"{int(pairs)} " if pairs is not None and np.isfinite(pairs) else ""
    used = rec.get("init_empirical", "")
    return [
        Note(
            f"{rec['experiment']}: Delta_empirical = {fmt(rec['delta_empirical'])} is the largest of {source}"
            f"{used + '-init ' if used else ''}sensitivity pairs at T (the runs sigma is estimated from); the "
            f"distances table's largest sensitivity distance, {fmt(top['distance'])}{init}, includes the other "
            "init mode's pairs."
        )
    ]


def table4_scale_notes(rec: dict, experiments: dict) -> list[Block]:
    """Why this run's Delta_theory and epsilon are far from the study's Table 4: its training-set size N."""
    info = tb.experiment_info(experiments, str(rec["experiment"]))
    study = sv.study_dataset(info["dataset"])
    ref = sv.TABLE4_EPSILON.get(study or "", {}) if info["model"] == "logreg" else {}
    n_study = sv.TABLE1_SIZES.get(study or "", {}).get("n_train")
    if not ref or not n_study or not np.isfinite(rec.get("delta_theory", np.nan)):
        return []
    ratio = rec["delta_theory"] / ref["delta_theory"]
    return [
        Note(
            f"{rec['experiment']}: Delta_theory is {ratio:.2g} times the study's and epsilon with it "
            f"{rec['epsilon_theory'] / ref['epsilon_theory']:.2g} times: the bolt-on bound scales as T / N and "
            f"this run trains on N = {int(rec['N'])} examples against the study's {n_study:,} (and delta = 1/N^2 "
            "changes c); the comparison is of method, not of value."
        )
    ]


def stability_figure(inputs: Inputs) -> list[Block]:
    """Figure 6 (`stability`: experiment, quantity in {sigma, delta_empirical}, n, repeat, value)."""
    stab = inputs.get("stability", ["experiment", "quantity", "n", "value"])
    repeats = stab["repeat"].nunique() if "repeat" in stab else 1
    notes: list[Block] = []
    for (name, quantity), g in stab.groupby(["experiment", "quantity"]):
        means = g.groupby("n")["value"].mean().sort_index()
        if len(means) < 2:
            notes.append(
                Note(f"{name}: {quantity} at one count only ({int(means.index[0])}): no trend to read.", "missing")
            )
            continue
        rise = (means.iloc[-1] - means.iloc[-2]) / abs(means.iloc[-2]) if means.iloc[-2] else np.inf
        if rise > STABLE_CHANGE:
            notes.append(
                Note(
                    f"{name}: {quantity} still changes by {rise:+.0%} between the two largest counts "
                    f"({int(means.index[-2])} and {int(means.index[-1])}): not enough "
                    f"{'seeds' if quantity == 'sigma' else 'pairs'} yet for a stable value.",
                    "missing",
                )
            )
    return notes + [
        FigureBlock(
            "stability",
            "Did we run enough experiments? (study Figure 6)",
            fg.stability(stab),
            f"Mean and range over {repeats} random subsets per count.",
            config_slice=(
                describe_experiments(inputs, list(stab["experiment"].unique())),
                analysis_settings(inputs, ["stability_seeds", "stability_pairs", "stability_repeats"]),
            ),
        )
    ]
