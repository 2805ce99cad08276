"""The DP-SGD / SAM section and the privacy ledger."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import figures as fg
from .. import study_values as sv
from .. import tables as tb
from ..blocks import Block, FigureBlock, Note, TableBlock, comparison
from ..frames import Inputs
from ..verdict import direction_verdict, rank_correlation_p

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
    final = tb.dp_final_table(summary)
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
            final,
            "Means and 95% CIs (_lo, _hi) over repeats, clipped to each metric's range; epsilon: RDP accountant at "
            "delta (inf: no noise); generalisation_gap: train - test accuracy; p_err_floor: the attack error "
            f"that the DP guarantee alone allows at this epsilon (no attack can do better). {sizes}",
        ),
        *gap_notes(final),
    ]


CHANCE_GAP = 0.02


def gap_notes(final: pd.DataFrame) -> list[Block]:
    """Per configuration at its last epoch: the generalisation gap beside the attacks' advantage, and what an
    attack at chance means on a model with and without a gap."""
    if "generalisation_gap" not in final:
        return [Note("No train accuracy in the DP summary: the generalisation gap cannot be shown.", "missing")]
    notes: list[Block] = []
    for name, g in final.groupby("configuration", sort=True):
        gap = float(g["generalisation_gap"].mean())
        at_chance = bool(((g["advantage_lo"] <= 0) | g["advantage_lo"].isna()).all())
        words = (
            "the attacks are at chance, as expected for a model that does not overfit"
            if at_chance and abs(gap) <= CHANCE_GAP
            else "the attacks are at chance despite the gap"
            if at_chance
            else "an attack does better than chance"
        )
        notes.append(Note(f"{name}: generalisation gap {gap:+.3f} (train - test accuracy); {words}."))
    return notes


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
        shown = set(inputs.tables["dp_summary"]["configuration"]) if inputs.has("dp_summary") else set()
        if not len(key) and set(rows["configuration"]) <= shown:
            dominated = sorted(
                {f"{r['configuration']} ({r['attack']})" for r in table.to_dict("records") if r["dominated"]}
            )
            blocks.append(
                Note(
                    f"Sweep {name} (named variants): the same configurations at their last epoch as the table above, "
                    "not repeated; dominated (another point has higher P_err and no lower test accuracy): "
                    + (", ".join(dominated) or "none")
                    + "."
                )
            )
            continue
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
                p_pos, p_neg = rank_correlation_p(
                    per_point["target_epsilon"].to_numpy(), per_point["test_accuracy"].to_numpy()
                )
                blocks.append(
                    comparison(
                        direction_verdict(p_pos, p_neg),
                        f"sweep {name}: test accuracy against target epsilon has rank correlation {rho:.2f} over "
                        f"{len(per_point)} points ({table['repeats'].max()} repeats each; one-sided exact p = "
                        f"{p_pos:.3g}); the lab report's accuracy falls as epsilon falls (0.992 at inf to 0.842 at 0.5).",
                    )
                )
        for col in ("verdict_test_accuracy", "verdict_advantage"):
            if col in table and table[col].astype(bool).any():
                counts = table[col][table[col] != ""].value_counts()
                blocks.append(
                    Note(
                        f"sweep {name}, {col.removeprefix('verdict_').replace('_', ' ')} against the lab report's row "
                        "at the same setting (95% interval against the study value ± "
                        f"{tb.SWEEP_TOLERANCE}): " + ", ".join(f"{n} {v}" for v, n in counts.items()) + ".",
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
    note: list[Block] = []
    if inputs.has("dp_summary") and "advantage_lo" in inputs.tables["dp_summary"]:
        final = tb.last_epoch(inputs.tables["dp_summary"])
        chance = final[(final["advantage_lo"] <= 0) | final["advantage_lo"].isna()]
        if len(chance):
            pairs = sorted({f"{r['configuration']} / {r['attack']}" for r in chance.to_dict("records")})
            note.append(
                Note(
                    "Outlier counts of an attack at chance (advantage interval includes 0) carry no information: "
                    f"an example is then 'identified in every repeat' by luck alone ({', '.join(pairs)}).",
                    "missing",
                )
            )
    return note + [
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
