"""The DP-SGD / SAM section and the privacy ledger."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import figures as fg
from .. import study_compare as sc
from .. import study_values as sv
from .. import tables as tb
from ..blocks import Block, FigureBlock, Note, TableBlock, comparison
from ..frames import Inputs
from ..verdict import Verdict, direction_verdict, rank_correlation_p
from .common import stage_settings

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


def all_configurations(inputs: Inputs, shown: list[str]) -> list[str]:
    """Every configuration of the config slice (else the ones shown): the section states one slice for all."""
    confs = list((inputs.config.get("dp") or {}).get("configurations") or {})
    return confs or shown


def dp_epoch_parts(inputs: Inputs) -> list[Block]:
    """Per-epoch privacy-utility (`dp_summary`: configuration, epoch, attack, algorithm, repeats,
    test_accuracy, p_err, advantage, each with _lo/_hi)."""
    summary = inputs.get("dp_summary", ["configuration", "epoch", "attack", "repeats"])
    names = list(summary["configuration"].unique())
    reps = "/".join(str(r) for r in sorted(summary["repeats"].unique()))
    sizes = (
        f"{reps} repeats per point; epochs {int(summary['epoch'].min())} to {int(summary['epoch'].max())} "
        "(epoch 0: before training)."
    )
    slice_text = (describe_dp(inputs, all_configurations(inputs, names)),)
    final = tb.dp_final_table(summary)
    crosses = "Crosses: 95% Student-t confidence intervals over repeats (clipped to the metric's range); circle: first epoch, star: last epoch."
    return [
        FigureBlock(
            "dp_privacy_utility",
            "Privacy (attack error P_err) against utility per epoch",
            fg.privacy_utility(summary, "p_err"),
            f"One panel per membership attack. {crosses} Right and up is better. {sizes}",
            config_slice=slice_text,
        ),
        FigureBlock(
            "dp_advantage_utility",
            "Attack advantage against utility per epoch",
            fg.privacy_utility(summary, "advantage"),
            f"Advantage = TPR - FPR of the attack at its threshold (left is more private). {crosses} {sizes}",
            config_slice=slice_text,
        ),
        TableBlock(
            "dp_final",
            "Each configuration at its last epoch",
            final,
            "Means and 95% CIs (_lo, _hi) over repeats, clipped to each metric's range; epsilon: RDP accountant at "
            "delta (inf: no noise); generalisation_gap: train - test accuracy; p_err_floor: the attack error "
            f"that the DP guarantee alone allows at this epsilon (no attack can do better). {sizes}",
            config_slice=slice_text,
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
    configurations = (inputs.config.get("dp") or {}).get("configurations") or {}
    settings = sc.run_settings(inputs.tables["dp_summary"], configurations) if inputs.has("dp_summary") else None
    for name, rows in sweeps.groupby("sweep", sort=True):
        table = tb.sweep_table(sweeps, str(name), settings)
        key = rows["key"].dropna().unique()
        swept = f"swept key {key[0]}" if len(key) else "named variants"
        study = ""
        if len(key) and key[0] in tb.STUDY_SWEEPS:
            source = "DP_EPSILON_SWEEP" if key[0] == "target_epsilon" else "DP_CLIPPING_SWEEP"
            study = (
                f" Study columns: {sv.SOURCES[source]} (MNIST CNN, 50 epochs, batch 256, the loss-threshold attack): "
                "test accuracy on every attack's rows; its MI advantage (the best threshold's |TPR - FPR|) beside "
                "max_advantage and its MI AUC beside auc on the loss_threshold rows only"
                + (" (Table 2 prints no AUC)" if source == "DP_CLIPPING_SWEEP" else "")
                + f". verdict_*: the 95% interval against the study value ± {tb.SWEEP_TOLERANCE}; 'not comparable' "
                "where the point's set-up differs from the lab's (not_comparable names the settings)."
            )
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
                f"and no lower test accuracy, or the reverse.{study}",
                config_slice=(describe_dp(inputs, all_configurations(inputs, list(rows["configuration"].unique()))),),
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
        blocks += sweep_verdict_notes(str(name), table)
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
            "repeats, of the examples attacked.",
            config_slice=(describe_dp(inputs, all_configurations(inputs, list(out["configuration"].unique()))),),
        )
    ]


# ---------------------------------------------------------------- ledger


def ledger_parts(inputs: Inputs) -> list[Block]:
    """Privacy ledger (`ledger`: dataset, runs, dp_runs, non_private_runs, basic_epsilon, basic_delta,
    rdp_epsilon, rdp_delta, largest_run_epsilon, epsilon_all_runs, and `stages` where the ledger names them)."""
    led = inputs.get("ledger", ["dataset", "runs", "dp_runs", "non_private_runs"])
    dp = inputs.config.get("dp") or {}
    slice_text = tuple(
        text
        for text in (
            describe_dp(inputs, list(dp.get("configurations") or {})) if dp else "",
            stage_settings(inputs, "perturbation") if inputs.config.get("perturbation") else "",
        )
        if text
    )
    sizes = "; ".join(
        f"{r['dataset']}: {r['runs']} runs, {r['dp_runs']} with DP, {r['non_private_runs']} without"
        + (f" (by stage: {r['stages']})" if isinstance(r.get("stages"), str) else "")
        for r in led.to_dict("records")
    )
    return [
        TableBlock(
            "ledger",
            "Privacy ledger: epsilon spent on each dataset",
            led,
            "Every DP model the pipeline trained: the DP stage's runs (dp) and the DP-SGD model of each "
            "output-perturbation query experiment (perturbation). Basic composition: sums of the DP runs' epsilons "
            "and deltas; RDP: the runs' Renyi curves added and converted once at rdp_delta (the smaller of the DP "
            "stage's delta and the runs' own); epsilon_all_runs is infinite when any run had no noise. The bolt-on "
            "releases of the output-perturbation stage are utility measurements over many noise draws, not "
            f"released models, and are not in the ledger. Runs: {sizes}.",
            config_slice=slice_text,
        ),
        FigureBlock(
            "ledger",
            "Epsilon per dataset: one run against all runs",
            fg.ledger(led),
            f"Infinite values are not drawn. Runs: {sizes}.",
            config_slice=slice_text,
        ),
    ]


def sweep_verdict_notes(name: str, table: pd.DataFrame) -> list[Block]:
    """Per verdict column of a sweep table: how many points agree, differ, cannot tell or are not comparable
    with the lab report's row at the same setting, and what differs for the points that are not comparable."""
    blocks: list[Block] = []
    for col in [c for c in table.columns if c.startswith("verdict_")]:
        given = table[col][table[col] != ""]
        if given.empty:
            continue
        counts = given.value_counts()
        blocks.append(
            Note(
                f"sweep {name}, {col.removeprefix('verdict_').replace('_', ' ')} against the lab report's row at the "
                f"same setting (95% interval against the study value ± {tb.SWEEP_TOLERANCE}): "
                + ", ".join(f"{n} {v}" for v, n in counts.items())
                + "."
            )
        )
    if "not_comparable" in table and table["not_comparable"].astype(bool).any():
        reasons = table[table["not_comparable"].astype(bool)].drop_duplicates("configuration")
        blocks.append(
            Note(
                f"sweep {name}: not comparable with the lab report, whose rows are an MNIST CNN trained 50 epochs at "
                "batch 256: "
                + "; ".join(f"{r['configuration']}: {r['not_comparable']}" for r in reasons.to_dict("records"))
                + ".",
                "missing",
            )
        )
    return blocks


def dg_study_parts(inputs: Inputs) -> list[Block]:
    """The DP-vs-generalisation study's printed values beside this run's configuration at the same setting
    (`dp_summary`: configuration, epoch, attack, dataset, algorithm, noise_multiplier, repeats, the metrics
    with _lo/_hi), with a verdict, or 'not comparable' and the settings that differ."""
    summary = inputs.get("dp_summary", ["configuration", "epoch", "attack", "dataset", "algorithm", "repeats"])
    configurations = (inputs.config.get("dp") or {}).get("configurations") or {}
    table = sc.dg_comparison_table(summary, configurations)
    setup = sv.DG_SETUP
    blocks: list[Block] = [
        TableBlock(
            "dg_comparison",
            "The DP-vs-generalisation study's printed values beside this run",
            table,
            f"{sv.SOURCES['DG_VALUES']}. The study prints no results table (its privacy-utility results are "
            "figures); these are the numbers its text gives about its runs, at its set-up "
            f"({sv.SOURCES['DG_SETUP']}: ImageNet-pretrained GroupNorm ResNet-50, {setup['epochs']} epochs, batch "
            f"{setup['batch_size']}, 10 repeats, the threshold attack). value, value_lo, value_hi: this run's "
            "configuration at the same setting, last epoch, loss-threshold attack, mean and 95% Student-t interval "
            f"over repeats (clipped to [0, 1]; epsilon: the RDP accountant's, no interval). verdict: a rate agrees "
            f"within ± {sc.RATE_TOLERANCE} of the study's value or range, an epsilon within "
            f"{sc.EPSILON_REL_TOLERANCE:.0%}; 'not comparable': no configuration has the study's setting, and "
            "reason names the settings of the closest one that differ.",
        )
    ]
    verdicts = {v.value: v for v in Verdict}
    for rec in table.to_dict("records"):
        finding = f"{rec['study_finding']} ({rec['study_source']})"
        if rec["verdict"] in verdicts:
            ours = f"{rec['value']:.4g}" + (
                f" (95% interval {rec['value_lo']:.3g} to {rec['value_hi']:.3g}, {int(rec['repeats'])} repeats)"
                if rec["metric"] != "epsilon"
                else " (RDP accountant)"
            )
            why = f"; {rec['reason']}" if rec["reason"] else ""
            blocks.append(
                comparison(
                    verdicts[rec["verdict"]],
                    f"{rec['configuration']}: {rec['metric']} {ours} against the study's '{finding}'{why}.",
                )
            )
        else:
            blocks.append(Note(f"Not comparable: the study's '{finding}': {rec['reason']}.", "missing"))
    blocks.append(
        Note(
            "Not compared: the study's findings read from its figures, without a printed number: "
            + "; ".join(f"{text} ({where})" for where, text in sv.DG_FINDINGS)
            + ". The per-epoch figures above show this run's privacy-utility points for the same comparison.",
            "missing",
        )
    )
    floors = ", ".join(f"{v:g} at epsilon {e:g}" for e, v in sv.DG_PERR_FLOOR.items())
    blocks.append(
        Note(
            f"The study's P_err floor (equation (4), {sv.SOURCES['DG_PERR_FLOOR']}): {floors}; p_err_floor in the "
            "table above is the same bound, (1 - delta) / (1 + e^epsilon), at each configuration's epsilon."
        )
    )
    return blocks
