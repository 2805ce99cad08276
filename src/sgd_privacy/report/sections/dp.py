"""The DP-SGD / SAM section and the privacy ledger."""

from __future__ import annotations

import numpy as np

from .. import figures as fg
from .. import study_values as sv
from .. import tables as tb
from ..blocks import Block, FigureBlock, Note, TableBlock, comparison
from ..frames import Inputs

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
