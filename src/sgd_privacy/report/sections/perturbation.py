"""The output-perturbation section: bolt-on accuracy against epsilon and repeated queries."""

from __future__ import annotations

import pandas as pd

from .. import figures as fg
from .. import tables as tb
from ..blocks import Block, FigureBlock, Note, TableBlock
from ..frames import Inputs
from .common import describe_experiments, stage_settings

# ---------------------------------------------------------------- output perturbation


def output_perturbation_parts(inputs: Inputs) -> list[Block]:
    """Accuracy against epsilon (`bolt_on`: experiment, init, sensitivity, heuristic, mechanism, epsilon,
    noise_added, accuracy_unperturbed, accuracy_perturbed, mean_diff, ci_low, ci_high, n_runs, n_draws)."""
    given = inputs.get("bolt_on", ["experiment", "n_runs", "n_draws", "epsilon"])
    # rows the stage skipped (a NaN sensitivity, e.g. no bolt-on bound with lr > 2 / beta) have no epsilon
    skipped = given[given["epsilon"].isna()]
    bolt_on = given[given["epsilon"].notna()]
    if bolt_on.empty:
        return [
            Note(f"Output perturbation: every variant was skipped ({'; '.join(skipped_words(skipped))}).", "missing")
        ]
    table = tb.bolt_on_table(bolt_on)
    names = list(bolt_on["experiment"].unique())
    sizes = "; ".join(
        f"{e}: {int(g['n_runs'].max())} runs x {int(g['n_draws'].max())} noise draws per point"
        for e, g in bolt_on.groupby("experiment")
    )
    slice_text = (describe_experiments(inputs, names), stage_settings(inputs, "perturbation"))
    blocks: list[Block] = [
        FigureBlock(
            "bolt_on_accuracy",
            "Output perturbation: test accuracy against epsilon",
            fg.output_perturbation(bolt_on),
            "Gaussian noise s = c Delta / epsilon on the released weights (bolt_on); augmented: only the part "
            "of s the seed's own spread sigma_intrinsic does not already supply. The augmented figure is the study's "
            "suggestion that intrinsic noise could replace part of the added noise, measured, not proved: its "
            "guarantee is 'heuristic' and provable_epsilon (in the tables) is what the added noise alone proves "
            "(infinite when none is added). Line: mean test accuracy; band: 95% "
            f"CI of the mean change in accuracy; dotted: no output noise. Samples: {sizes}.",
            config_slice=slice_text,
        ),
        TableBlock(
            "bolt_on",
            "Output perturbation: test accuracy at each epsilon",
            tb.bolt_on_pivot(table),
            "One row per variant; accuracy_at_epsilon_X: mean test accuracy with the output noise calibrated to "
            "epsilon X (the noise, intervals and p-values of every point are in the CSV tables/"
            f"output_perturbation_bolt_on_points.csv). Samples: {sizes}.",
            config_slice=slice_text,
        ),
        TableBlock("bolt_on_points", "Output perturbation: every point", table, f"Samples: {sizes}.", in_page=False),
    ]
    blocks += [Note(f"Not drawn: {w}.", "missing") for w in skipped_words(skipped)]
    if table["heuristic"].any():
        blocks.append(
            Note(
                "Rows calibrated to Delta_empirical are a heuristic: the largest observed distance is not a bound on "
                "the sensitivity, so they carry no DP guarantee. Augmented rows are a heuristic too: the seed's "
                "spread is neither data-independent nor isotropic Gaussian (guarantee = heuristic; provable_epsilon "
                "is the epsilon their added noise proves)."
            )
        )
    return blocks


def skipped_words(skipped: pd.DataFrame) -> list[str]:
    """Per experiment and sensitivity, the variants the stage skipped and why (its `note`)."""
    out = []
    for (name, sens), g in skipped.groupby(["experiment", "sensitivity"], sort=True):
        notes = sorted({str(n) for n in g["note"].dropna()} if "note" in g else set())
        out.append(f"{name}, Delta_{sens}: {'; '.join(notes) or 'no epsilon'}")
    return out


def repeated_query_parts(inputs: Inputs) -> list[Block]:
    """Repeated queries (`query_attack`: experiment, api, attack, k, rmse, advantage, auc, n_members,
    n_nonmembers, query_noise, dp_epsilon, advantage_bound)."""
    attack = inputs.get("query_attack", ["experiment", "api", "attack", "k", "rmse", "n_members", "n_nonmembers"])
    names = list(attack["experiment"].unique())
    sizes = "; ".join(
        f"{e}: {int(g['n_members'].max())} members and {int(g['n_nonmembers'].max())} non-members"
        for e, g in attack.groupby("experiment")
    )
    slice_text = (describe_experiments(inputs, names), stage_settings(inputs, "perturbation"))
    n_min = int(min(attack["n_members"].min(), attack["n_nonmembers"].min()))
    blocks: list[Block] = [
        FigureBlock(
            "query_attack",
            "A noisy prediction API under repeated queries",
            fg.repeated_queries(tb.query_intervals(attack)),
            "APIs: exact (no noise), fresh (new noise each query), fixed (noise fixed per input), dp_sgd (a model "
            "trained with DP-SGD, answering exactly); attacks: repeat (the same query k times), nearby (k slightly "
            "perturbed copies of the input). Left: RMSE of the averaged score against the true one (log-log; noiseless "
            "APIs, RMSE 0, are not drawn); band: 95% chi-square interval over the n members + n non-members "
            "recovered scores, drawn for the repeat attack on the fresh and fixed APIs only (their errors are the "
            "API's independent Gaussian noise; the nearby attack's also hold the model's own score differences). "
            "Right: membership advantage (best-threshold TPR - FPR, the two-sample KS statistic); band: 95% "
            "distribution-free interval (Dvoretzky-Kiefer-Wolfowitz, each empirical CDF within "
            f"sqrt(ln(80) / 2n) of its own), wide at n = {n_min}: one attacked run, so the band is over the attacked "
            f"examples, not over repeated runs. Attacked: {sizes}.",
            config_slice=slice_text,
        ),
        TableBlock(
            "query_attack",
            "Repeated queries at the smallest and largest k",
            tb.query_table(attack),
            f"_lo, _hi: the figure's 95% intervals (NaN where none applies). Attacked: {sizes}.",
            config_slice=slice_text,
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
