"""Figures of the report: each one is drawn by seaborn from a DataFrame onto a fresh Agg figure.

No pyplot state is used: every function builds its own `matplotlib.figure.Figure` with an Agg
canvas and returns it, so figures can be made in any order, in tests and in jobs alike.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import NullFormatter, ScalarFormatter

from .frames import require

# An averaged score this close to the true one is exact (deterministic APIs); log axes cannot show it.
NOISELESS = 1e-9
PAIR_LABELS = {
    "sensitivity": "sensitivity (same seed, neighbouring D_i)",
    "variability_fixed_init": "variability, fixed init (same D_i, other seed)",
    "variability_variable_init": "variability, variable init (same D_i, other seed)",
    "sensitivity_theory": "bolt-on bound (theory)",
}
PAIR_COLOURS = {
    "sensitivity": "#c9a227",
    "variability_fixed_init": "#4c9f70",
    "variability_variable_init": "#6a3d9a",
    "sensitivity_theory": "#c9a227",
}
THEME: dict[str, Any] = {
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "font.size": 9,
}


def new_figure(n_panels: int, ncols: int = 3, panel: tuple[float, float] = (4.2, 3.2)) -> tuple[Figure, list[Axes]]:
    """An Agg figure with `n_panels` axes on a grid of at most `ncols` columns (extra cells hidden)."""
    ncols = max(1, min(ncols, n_panels))
    nrows = max(1, math.ceil(n_panels / ncols))
    with mpl.rc_context(THEME):  # type: ignore[arg-type]
        fig = Figure(figsize=(panel[0] * ncols, panel[1] * nrows), layout="constrained")
        FigureCanvasAgg(fig)
        grid = fig.subplots(nrows, ncols, squeeze=False)
    axes = list(grid.ravel())
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


def _panels(frame: pd.DataFrame, by: str) -> list[tuple[str, pd.DataFrame]]:
    """Sub-frames per value of `by`, in sorted order (one panel each)."""
    return [(str(k), g) for k, g in frame.groupby(by, sort=True)]


def _style(ax: Axes) -> None:
    ax.grid(True, alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)


def _legend_below(fig: Figure, axes: Sequence[Axes], extra: Sequence[tuple[Artist, str]] = ()) -> None:
    """Move the first panel's legend (plus `extra` entries) below all panels, so it hides no data."""
    legend = axes[0].get_legend() if axes else None
    if legend is None:
        return
    handles = [h for h in legend.legend_handles if h is not None] + [h for h, _ in extra]
    labels = [t.get_text() for t in legend.get_texts()] + [label for _, label in extra]
    legend.remove()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 3), frameon=False, fontsize=8)


def _palette_legend(fig: Figure, palette: dict, extra: Sequence[tuple[Artist, str]] = ()) -> None:
    """One legend below all panels: a line per `palette` entry (name -> colour) plus `extra` entries."""
    handles: list[Artist] = [Line2D([], [], color=c, marker="o", ms=3) for c in palette.values()]
    handles += [h for h, _ in extra]
    labels = [str(n) for n in palette] + [label for _, label in extra]
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 3), frameon=False, fontsize=8)


def _plain_log_ticks(ax: Axes, values: np.ndarray) -> None:
    """Log x axis ticked at `values` with plain numbers (no overlapping minor labels)."""
    ax.set_xscale("log")
    values = np.asarray(values, dtype=float)
    ax.set_xticks(np.unique(values[np.isfinite(values) & (values > 0)]))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())


def distances_over_time(over_t: pd.DataFrame, T: dict[str, int] | None = None) -> Figure:
    """Figure 2: median L2 distance per pair kind against the step t (band: 5%-95% of pairs),
    the bolt-on bound dashed, T as a vertical line; one panel per experiment, log y."""
    require(over_t, ["experiment", "kind", "t", "median", "q05", "q95"], "distances_over_t")
    panels = _panels(over_t, "experiment")
    fig, axes = new_figure(len(panels))
    for ax, (name, g) in zip(axes, panels, strict=True):
        pairs = g[g["kind"] != "sensitivity_theory"]
        sns.lineplot(
            data=pairs.assign(pair=pairs["kind"].map(PAIR_LABELS).fillna(pairs["kind"])),
            x="t",
            y="median",
            hue="pair",
            palette={PAIR_LABELS.get(k, k): PAIR_COLOURS.get(k, "grey") for k in pairs["kind"].unique()},
            ax=ax,
            legend=ax is axes[0],
        )
        for kind, k in pairs.groupby("kind"):
            ax.fill_between(k["t"], k["q05"], k["q95"], color=PAIR_COLOURS.get(str(kind), "grey"), alpha=0.2, lw=0)
        theory = g[g["kind"] == "sensitivity_theory"]
        if len(theory):
            sns.lineplot(
                data=theory, x="t", y="median", ax=ax, color=PAIR_COLOURS["sensitivity_theory"], linestyle="--"
            )
        if T and name in T:
            ax.axvline(T[name], color="black", lw=0.8, linestyle=":")
        ax.set_yscale("log")
        ax.set(title=name, xlabel="step t", ylabel="L2 distance between weights")
        _style(ax)
    bound = Line2D([], [], color=PAIR_COLOURS["sensitivity_theory"], linestyle="--")
    has_bound = bool((over_t["kind"] == "sensitivity_theory").any())
    _legend_below(fig, axes, [(bound, PAIR_LABELS["sensitivity_theory"])] if has_bound else ())
    return fig


def distances_at_T(at_T: pd.DataFrame, bound: dict[str, float] | None = None) -> Figure:
    """Figure 3: distribution of the pair distances at T per pair kind (log x), bolt-on bound dashed."""
    require(at_T, ["experiment", "kind", "distance"], "distances_at_T")
    panels = _panels(at_T[at_T["distance"] > 0], "experiment")
    fig, axes = new_figure(len(panels))
    for ax, (name, g) in zip(axes, panels, strict=True):
        kinds = [k for k in PAIR_LABELS if k in set(g["kind"])]
        sns.histplot(
            data=g.assign(pair=g["kind"].map(PAIR_LABELS)),
            x="distance",
            hue="pair",
            hue_order=[PAIR_LABELS[k] for k in kinds],
            palette=[PAIR_COLOURS[k] for k in kinds],
            log_scale=True,
            element="step",
            stat="density",
            common_norm=False,
            bins=30,
            ax=ax,
            legend=ax is axes[0],
        )
        if bound and name in bound and np.isfinite(bound[name]):
            ax.axvline(bound[name], color=PAIR_COLOURS["sensitivity_theory"], linestyle="--", label="bolt-on bound")
        ax.set(title=name, xlabel="L2 distance at T", ylabel="density")
        _style(ax)
    _legend_below(fig, axes)
    return fig


def umap_scatter(umap: pd.DataFrame) -> Figure:
    """Figure 4: UMAP of the weights at T, coloured by seed (left) and by replace index (right); a row per experiment."""
    require(umap, ["experiment", "seed", "replace_index", "umap_1", "umap_2"], "umap")
    panels = _panels(umap, "experiment")
    fig, axes = new_figure(2 * len(panels), ncols=2, panel=(4.4, 3.6))
    for k, (name, g) in enumerate(panels):
        for ax, colour in zip(axes[2 * k : 2 * k + 2], ("seed", "replace_index"), strict=True):
            n_colours = g[colour].nunique()
            sns.scatterplot(
                data=g.assign(**{colour: g[colour].astype(str)}),
                x="umap_1",
                y="umap_2",
                hue=colour,
                palette=sns.color_palette("husl" if n_colours > 10 else "tab10", n_colours),
                s=14,
                linewidth=0,
                ax=ax,
                legend=n_colours <= 12,
            )
            if ax.get_legend() is not None:
                sns.move_legend(ax, "upper left", bbox_to_anchor=(1, 1), fontsize=6, title=colour, frameon=False)
            ax.set(title=f"{name}: coloured by {colour.replace('_', ' ')}", xlabel="UMAP 1", ylabel="UMAP 2")
            _style(ax)
    return fig


def nonnormal_weights(examples: pd.DataFrame) -> Figure:
    """Figure 5: histograms over seeds of the least normal weights (lowest Shapiro-Wilk p), one panel per
    experiment, dataset D_i and weight (a weight among the least normal on two D_i gets two panels)."""
    require(examples, ["experiment", "weight", "shapiro_p", "value"], "nonnormal_weights")
    by = ["experiment", "replace_index", "weight"] if "replace_index" in examples else ["experiment", "weight"]
    panels = [(key, g) for key, g in examples.groupby(by, sort=True)]
    fig, axes = new_figure(len(panels), ncols=4, panel=(3.2, 2.6))
    for ax, (key, g) in zip(axes, panels, strict=True):
        sns.histplot(data=g, x="value", bins=20, kde=len(g) > 2, ax=ax, color="#3b6ea8")
        where = f" D_{key[1]}" if len(by) == 3 else ""
        ax.set(
            title=f"{key[0]}{where} w{key[-1]} ({len(g)} seeds)\nShapiro p = {g['shapiro_p'].iloc[0]:.2g}",
            xlabel="weight value",
            ylabel="seeds",
        )
        _style(ax)
    return fig


def stability(stab: pd.DataFrame) -> Figure:
    """Figure 6: sigma against the number of seeds and Delta_empirical against the number of pairs
    (mean and range over repeated random subsets), log x; one panel per quantity."""
    require(stab, ["experiment", "quantity", "n", "value"], "stability")
    labels = {
        "sigma": ("seeds used", "sigma (min per-weight spread)"),
        "delta_empirical": ("pairs used", "Delta_empirical"),
    }
    panels = [(q, stab[stab["quantity"] == q]) for q in labels if q in set(stab["quantity"])]
    fig, axes = new_figure(len(panels), ncols=2)
    for ax, (q, g) in zip(axes, panels, strict=True):
        sns.lineplot(
            data=g, x="n", y="value", hue="experiment", errorbar=("pi", 100), marker="o", ax=ax, legend=ax is axes[0]
        )
        _plain_log_ticks(ax, g["n"].to_numpy())
        ax.set(title=q, xlabel=labels[q][0], ylabel=labels[q][1])
        _style(ax)
    _legend_below(fig, axes)
    return fig


def sigma_per_dataset(per_dataset: pd.DataFrame) -> Figure:
    """Table 5 as a figure: sigma estimated on each dataset D_i separately, one strip per experiment."""
    require(per_dataset, ["experiment", "replace_index", "sigma"], "sigma_per_dataset")
    fig, axes = new_figure(1, panel=(6.0, 0.5 + 0.6 * per_dataset["experiment"].nunique()))
    # seaborn jitters from numpy's global generator: seed it here (same bytes on a rebuild), restore it after
    state = np.random.get_state()  # noqa: NPY002
    np.random.seed(0)  # noqa: NPY002
    try:
        sns.stripplot(data=per_dataset, x="sigma", y="experiment", hue="experiment", legend=False, ax=axes[0], size=5)
    finally:
        np.random.set_state(state)  # noqa: NPY002
    axes[0].set(xlabel="sigma on one dataset D_i", ylabel="")
    _style(axes[0])
    return fig


SETTING_COLOURS = {"known": "#b2182b", "hidden": "#2166ac"}
SETTING_LABELS = {"known": "seed known", "hidden": "seed hidden"}


def _by_setting(frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """Sub-frames per attack setting, seed known first, then hidden, then any other."""
    order = {name: i for i, name in enumerate(SETTING_LABELS)}
    groups = [(str(k), g) for k, g in frame.groupby("setting", sort=False)]
    return sorted(groups, key=lambda kg: (order.get(kg[0], len(order)), kg[0]))


def mia_known_hidden(intervals: pd.DataFrame) -> Figure:
    """Per attacked experiment: mean attack accuracy (left) and epsilon = ln(acc / (1 - acc)) (right) at each
    attacked step (evenly spaced, labelled), seed known and hidden side by side, with 95% Student-t intervals
    over the attacked runs as error bars."""
    need = ["experiment", "t", "setting", "n_runs", "accuracy", "accuracy_lo", "accuracy_hi"]
    require(intervals, need + ["epsilon_accuracy", "epsilon_accuracy_lo", "epsilon_accuracy_hi"], "mia_attacks")
    panels = _panels(intervals, "experiment")
    fig, axes = new_figure(2 * len(panels), ncols=2, panel=(4.6, 3.2))
    labels = {"accuracy": "attack accuracy", "epsilon_accuracy": "attack epsilon = ln(acc / (1 - acc))"}
    for i, (name, frame) in enumerate(panels):
        runs = "/".join(str(n) for n in sorted(frame["n_runs"].unique()))
        for j, (metric, label) in enumerate(labels.items()):
            ax = axes[2 * i + j]
            steps = sorted(frame["t"].unique())
            for k, (setting, g) in enumerate(_by_setting(frame)):
                g = g.sort_values("t")
                x = np.searchsorted(steps, g["t"].to_numpy()) + 0.08 * (2 * k - 1)  # known, hidden side by side
                mean = g[metric].to_numpy()
                err = np.vstack([mean - g[f"{metric}_lo"].to_numpy(), g[f"{metric}_hi"].to_numpy() - mean])
                ax.errorbar(
                    x,
                    mean,
                    yerr=np.nan_to_num(err),
                    color=SETTING_COLOURS.get(setting),
                    marker="o",
                    ms=4,
                    capsize=3,
                    label=SETTING_LABELS.get(setting, setting),
                )
            ax.set_xticks(range(len(steps)), [str(t) for t in steps])
            ax.set_xlim(-0.5, len(steps) - 0.5)
            ax.set(title=f"{name} ({runs} runs per step)", xlabel="step t", ylabel=label)
            _style(ax)
    axes[0].legend()
    _legend_below(fig, axes)
    return fig


def roc_curves(roc: pd.DataFrame) -> Figure:
    """LiRA's pooled ROC curves on log-log axes (low false-positive rates visible), one panel per variant
    (online, offline), seed known and hidden, chance dashed."""
    require(roc, ["variant", "setting", "fpr", "tpr"], "lira_roc")
    positive = roc[(roc["fpr"] > 0) & (roc["tpr"] > 0)]
    panels = _panels(positive, "variant")
    fig, axes = new_figure(len(panels), ncols=2, panel=(4.2, 3.8))
    lo = float(positive["fpr"].min()) if len(positive) else 1e-4
    for ax, (name, frame) in zip(axes, panels, strict=True):
        for setting, g in _by_setting(frame):
            g = g.sort_values("fpr")
            ax.plot(
                g["fpr"],
                g["tpr"],
                color=SETTING_COLOURS.get(setting),
                label=SETTING_LABELS.get(setting, setting),
            )
        ax.plot([lo, 1], [lo, 1], color="grey", linestyle="--", lw=0.8, label="chance")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set(title=f"LiRA {name}", xlabel="false positive rate", ylabel="true positive rate")
        _style(ax)
    axes[0].legend()
    _legend_below(fig, axes)
    return fig


def privacy_utility(summary: pd.DataFrame, x: str = "p_err", group: str = "configuration") -> Figure:
    """Per-epoch privacy (attack P_err, or another attack metric `x`) against utility (test accuracy), one
    panel per attack, one line per configuration, with 95% CI crosses (`*_lo`, `*_hi`); the first epoch is
    marked with a circle and the last with a star."""
    need = ["attack", group, "epoch", x, f"{x}_lo", f"{x}_hi", "test_accuracy", "test_accuracy_lo", "test_accuracy_hi"]
    require(summary, need, "dp_summary")
    data = summary.sort_values([group, "epoch"])
    names = sorted(data[group].unique())
    palette = dict(zip(names, sns.color_palette("tab10", len(names)), strict=True))
    panels = _panels(data, "attack")
    fig, axes = new_figure(len(panels), ncols=3, panel=(4.6, 3.8))
    for ax, (attack, frame) in zip(axes, panels, strict=True):
        for name, g in frame.groupby(group):
            colour = palette[name]
            ax.plot(g[x], g["test_accuracy"], color=colour, lw=0.9, label=str(name))
            xci, yci = clip_ci(g, x, -1.0 if x == "advantage" else 0.0), clip_ci(g, "test_accuracy")
            ax.errorbar(
                g[x],
                g["test_accuracy"],
                xerr=[g[x] - xci[0], hi_minus(xci[1], g[x])],
                yerr=[g["test_accuracy"] - yci[0], hi_minus(yci[1], g["test_accuracy"])],
                fmt="none",
                ecolor=colour,
                alpha=0.5,
                lw=0.8,
            )
            ax.scatter(g[x].iloc[:1], g["test_accuracy"].iloc[:1], marker="o", s=45, color=colour, edgecolor="k")
            ax.scatter(g[x].iloc[-1:], g["test_accuracy"].iloc[-1:], marker="*", s=110, color=colour, edgecolor="k")
        label = {"p_err": "attack error P_err (higher is more private)", "advantage": "attack advantage"}.get(x, x)
        ax.set(title=str(attack), xlabel=f"privacy: {label}", ylabel="utility: test accuracy")
        _style(ax)
    marks = [
        (Line2D([], [], marker="o", color="grey", markeredgecolor="k", linestyle=""), "first epoch"),
        (Line2D([], [], marker="*", color="grey", markeredgecolor="k", markersize=10, linestyle=""), "last epoch"),
    ]
    _palette_legend(fig, palette, marks)
    return fig


def clip_ci(frame: pd.DataFrame, column: str, lower: float = 0.0) -> tuple[pd.Series, pd.Series]:
    """The 95% CI (`{column}_lo`, `{column}_hi`) of a rate clipped to [lower, 1] and to contain the mean (drawable)."""
    mean = frame[column]
    lo = frame[f"{column}_lo"].clip(lower, 1.0).clip(upper=mean)
    return lo, frame[f"{column}_hi"].clip(lower, 1.0).clip(lower=mean)


def hi_minus(upper: pd.Series, mean: pd.Series) -> pd.Series:
    """The upper half-width of an interval (never negative)."""
    return (upper - mean).clip(lower=0.0)


def variant_label(frame: pd.DataFrame) -> pd.Series:
    """An output-perturbation variant's name: the mechanism and the sensitivity it is calibrated to."""
    return frame["mechanism"].astype(str) + ", Delta_" + frame["sensitivity"].astype(str)


def output_perturbation(bolt_on: pd.DataFrame) -> Figure:
    """Test accuracy of output-perturbed models against epsilon (log x) per variant, one panel per
    experiment and init mode; band: 95% CI of the mean change in accuracy (over runs and noise draws)
    drawn around the mean; dotted: the unperturbed accuracy."""
    need = ["experiment", "init", "sensitivity", "mechanism", "epsilon", "accuracy_unperturbed"]
    require(bolt_on, need + ["accuracy_perturbed", "ci_low", "ci_high"], "bolt_on")
    data = bolt_on.assign(
        variant=variant_label(bolt_on), panel=bolt_on["experiment"] + ", " + bolt_on["init"] + " init"
    )
    data = data.sort_values(["panel", "variant", "epsilon"])
    sensitivities = sorted(data["sensitivity"].unique())
    colours = dict(zip(sensitivities, sns.color_palette("tab10", len(sensitivities)), strict=True))
    styles: dict[str, Any] = {"bolt_on": "-", "augmented": "--"}
    panels = _panels(data, "panel")
    fig, axes = new_figure(len(panels), ncols=2, panel=(4.8, 3.4))
    handles: dict[str, Line2D] = {}
    for ax, (name, frame) in zip(axes, panels, strict=True):
        for (mechanism, sensitivity, variant), g in frame.groupby(["mechanism", "sensitivity", "variant"]):
            colour, style = colours[sensitivity], styles.get(str(mechanism), ":")
            base = g["accuracy_unperturbed"]
            ax.fill_between(g["epsilon"], base + g["ci_low"], base + g["ci_high"], color=colour, alpha=0.25)
            ax.plot(g["epsilon"], g["accuracy_perturbed"], marker="o", ms=3, color=colour, linestyle=style)
            handles[str(variant)] = Line2D([], [], color=colour, linestyle=style, marker="o", ms=3)
        ax.axhline(float(frame["accuracy_unperturbed"].mean()), color="grey", linestyle=":", lw=1)
        _plain_log_ticks(ax, frame["epsilon"].to_numpy())
        ax.set(title=str(name), xlabel="epsilon", ylabel="test accuracy")
        _style(ax)
    labels = [*sorted(handles), "no output noise"]
    lines = [handles[name] for name in labels[:-1]] + [Line2D([], [], color="grey", linestyle=":")]
    fig.legend(lines, labels, loc="outside lower center", ncols=3, frameon=False, fontsize=8)
    return fig


def repeated_queries(attack: pd.DataFrame) -> Figure:
    """Per experiment: the attacker's error (RMSE of its averaged score) against k, log-log, and its
    membership advantage against k (log x), one line per API and attack, with bands where the frame has
    `rmse_lo`/`rmse_hi` and `advantage_lo`/`advantage_hi` (`tables.query_intervals`)."""
    require(attack, ["experiment", "api", "attack", "k", "rmse", "advantage"], "query_attack")
    data = attack.assign(line=attack["api"] + " / " + attack["attack"]).sort_values(["line", "k"])
    lines = sorted(data["line"].unique())
    palette = dict(zip(lines, sns.color_palette("tab10", len(lines)), strict=True))
    panels = _panels(data, "experiment")
    fig, axes = new_figure(2 * len(panels), ncols=2, panel=(4.8, 3.4))
    for i, (name, frame) in enumerate(panels):
        err, adv = axes[2 * i], axes[2 * i + 1]
        noisy = frame[frame["rmse"] > NOISELESS]
        for line, g in noisy.groupby("line"):
            err.plot(g["k"], g["rmse"], marker="o", ms=3, color=palette[line], label=line)
            if {"rmse_lo", "rmse_hi"} <= set(g.columns) and g["rmse_lo"].notna().any():
                err.fill_between(g["k"], g["rmse_lo"], g["rmse_hi"], color=palette[line], alpha=0.15, lw=0)
        for line, g in frame.groupby("line"):
            adv.plot(g["k"], g["advantage"], marker="o", ms=3, color=palette[line], label=line)
            if {"advantage_lo", "advantage_hi"} <= set(g.columns):
                adv.fill_between(g["k"], g["advantage_lo"], g["advantage_hi"], color=palette[line], alpha=0.12, lw=0)
        if "advantage_bound" in frame and frame["advantage_bound"].notna().any():
            adv.axhline(float(frame["advantage_bound"].max()), color="k", linestyle="--", lw=0.8)
        for ax in (err, adv):
            _plain_log_ticks(ax, frame["k"].to_numpy())
            ax.set_xlabel("answers averaged k")
            _style(ax)
        err.set_yscale("log")
        err.set(title=f"{name}: attacker's error", ylabel="RMSE of the averaged score")
        adv.set(title=f"{name}: membership advantage", ylabel="advantage (TPR - FPR)")
    bound = [(Line2D([], [], color="k", linestyle="--", lw=0.8), "DP-SGD advantage bound")]
    _palette_legend(fig, palette, bound if "advantage_bound" in data else [])
    return fig


def ledger(frame: pd.DataFrame) -> Figure:
    """Epsilon per dataset: the largest single run, RDP composition and basic composition of its DP runs."""
    cols = {
        "largest_run_epsilon": "largest run",
        "rdp_epsilon": "RDP composition",
        "basic_epsilon": "basic composition",
    }
    require(frame, ["dataset", *cols], "ledger")
    long = frame.melt(id_vars=["dataset"], value_vars=list(cols), var_name="composition", value_name="epsilon")
    long["composition"] = long["composition"].map(cols)
    long = long[np.isfinite(long["epsilon"])]
    fig, axes = new_figure(1, panel=(5.4, 3.4))
    sns.barplot(data=long, x="dataset", y="epsilon", hue="composition", hue_order=list(cols.values()), ax=axes[0])
    axes[0].set(xlabel="dataset", ylabel="epsilon spent (at the ledger's delta)")
    _style(axes[0])
    _legend_below(fig, axes)
    return fig


HZ_LABELS = {
    "laplace": "Laplace (power)",
    "normal_full": "normal, inverse-Wishart covariance (size)",
    "normal_diagonal": "normal, diagonal covariance (size)",
}


def hz_power(power: pd.DataFrame) -> Figure:
    """The HZ test's rejection rate at 5% against the number of seeds (log x), one line per distribution and
    a panel per dimension, with Clopper-Pearson intervals; dashed: 80% power, dotted: the 5% level."""
    require(power, ["distribution", "dimension", "n_seeds", "power"], "hz_power")
    panels = _panels(power, "dimension")
    fig, axes = new_figure(len(panels), ncols=2, panel=(5.0, 3.4))
    colours = dict(zip(HZ_LABELS, sns.color_palette("tab10", len(HZ_LABELS)), strict=True))
    for ax, (dim, frame) in zip(axes, panels, strict=True):
        for name, g in frame.groupby("distribution", sort=True):
            g = g.sort_values("n_seeds")
            colour = colours.get(str(name), "grey")
            ax.plot(g["n_seeds"], g["power"], marker="o", ms=3, color=colour, label=HZ_LABELS.get(str(name), str(name)))
            if {"power_lo", "power_hi"} <= set(g.columns):
                ax.fill_between(g["n_seeds"], g["power_lo"], g["power_hi"], color=colour, alpha=0.15, lw=0)
        ax.axhline(0.8, color="k", linestyle="--", lw=0.8)
        ax.axhline(0.05, color="grey", linestyle=":", lw=0.8)
        _plain_log_ticks(ax, frame["n_seeds"].to_numpy())
        ax.set_ylim(-0.02, 1.02)
        ax.set(title=f"dimension {dim}", xlabel="seeds (samples per replicate)", ylabel="share of replicates rejected")
        _style(ax)
    axes[0].legend()
    _legend_below(fig, axes)
    return fig


def axis_labels(fig: Figure) -> list[tuple[str, str]]:
    """(x label, y label) of every visible axes of a figure, for checks."""
    return [(ax.get_xlabel(), ax.get_ylabel()) for ax in fig.axes if ax.get_visible()]


def visible_axes(fig: Figure) -> Sequence[Axes]:
    """The visible axes of a figure."""
    return [ax for ax in fig.axes if ax.get_visible()]
