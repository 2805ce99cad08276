"""The membership-inference section: Table 6 seed known vs hidden, LiRA, epsilon lower bounds."""

from __future__ import annotations

import numpy as np

from ...attacks.metrics import mean_ci
from .. import figures as fg
from .. import study_values as sv
from .. import tables as tb
from ..blocks import Block, FigureBlock, Note, TableBlock, comparison
from ..frames import Inputs
from ..verdict import direction_verdict, effect_verdict, interval_from_one_sided_p
from .common import describe_experiments, experiment_T, fmt

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
        f"the study attacked a {s['model']} on {s['dataset']} (trained on a {s['train_subset']:,}-example subset, "
        f"1,000 to 1,500 models per step, steps {', '.join(str(r['T']) for r in sv.TABLE6_MIA)})"
    )


def init_text(row: dict) -> str:
    """' (variable init)' for a Table 6 row that names its init mode, else ''."""
    return f" ({row['init']} init)" if isinstance(row.get("init"), str) else ""


def mia_parts(inputs: Inputs) -> list[Block]:
    """Seed known vs hidden per attacked experiment and step (`mia_table6`: experiment, t, n_runs, n_members,
    n_nonmembers, accuracy_known/hidden/diff, p_value_accuracy, epsilon_accuracy_known/hidden/diff,
    p_value_epsilon_accuracy, loss_ratio) beside the study's Table 6."""
    exps = inputs.experiments()
    table = tb.mia_table(inputs.get("mia_table6"), exps, experiment_T(inputs))
    names = list(table["experiment"].unique())
    slice_text = (
        describe_experiments(inputs, names),
        mia_settings(inputs, ["experiments", "n_members", "n_nonmembers", "n_threshold"]),
    )
    sizes = "; ".join(
        f"{r['experiment']}{init_text(r)} t = {r['t']}: {r['n_runs']} runs x ({r['n_members']} members + {r['n_nonmembers']} "
        "non-members)"
        for r in table.to_dict("records")
    )
    caption = (
        "Loss-threshold attack (member if loss <= tau); seed known: tau from the attacked run, hidden: from a run "
        "with another seed, the same D_i and init. Means over attacked runs; diff = known - hidden; p: one-sided "
        "paired t-test over runs (known > hidden); epsilon = ln(acc / (1 - acc)); loss_ratio: train / validation "
        "loss as the stage writes it, val_over_train_loss its inverse (the study's loss ratio grows as the model "
        "overfits, 1.13 to 5.23, so it compares with val_over_train_loss). T_experiment: the experiment's T "
        "(see the data section for how it was found; a CNN's T may be set in the config). study_*: the study's Table 6 row at study_T, the "
        "same step, else the study's row at the nearest multiple of the convergence point (study: 2000 = T, 4000 "
        f"= 2T, 8000 = 4T; the study gives one p-value per step, compared with p_value_epsilon_accuracy). "
        f"Study set-up: {study_setup()}. Samples: {sizes}."
    )
    blocks: list[Block] = [
        TableBlock(
            "mia_table6",
            "Loss-threshold attack, seed known vs hidden (study Table 6)",
            table,
            caption,
            config_slice=slice_text,
        )
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
            f"{rec['experiment']}{init_text(rec)} at t = {rec['t']} ({rec['n_runs']} runs, {rec['n_members']} members and "
            f"{rec['n_nonmembers']} non-members each)"
        )
        p_text = f"p = {fmt(p)}" if np.isfinite(p) else "no p-value (fewer than two runs, or all differences equal)"
        study = ""
        if np.isfinite(rec["study_T"]):
            study = (
                f" (study at T = {int(rec['study_T'])}: {rec['study_epsilon_diff']:.3g}, p = "
                f"{fmt(rec['study_p_value'])}, {int(rec['study_n_models'])} models)"
            )
        lo, hi = diff_interval(inputs, rec)
        effect = rec["study_epsilon_diff"] if np.isfinite(rec["study_T"]) else None
        blocks.append(
            comparison(
                effect_verdict(lo, hi, effect),
                f"{who}: hiding the seed changes the attack epsilon by {-diff:+.3g} (known {rec['epsilon_accuracy_known']:.3g}, "
                f"hidden {rec['epsilon_accuracy_hidden']:.3g}; {p_text}; 95% interval of known - hidden {fmt(lo)} to "
                f"{fmt(hi)}); the study found a significant decrease at every step{study}.",
            )
        )
    return blocks


def diff_interval(inputs: Inputs, rec: dict) -> tuple[float, float]:
    """The 95% interval of the mean known - hidden attack epsilon at one experiment and step: Student-t over
    the attacked runs' paired differences (`mia_attacks`), else recovered from the table's one-sided p-value."""
    if inputs.has("mia_attacks"):
        a = inputs.tables["mia_attacks"]
        need = {"experiment", "t", "diverged", "epsilon_accuracy_known", "epsilon_accuracy_hidden"}
        if need <= set(a.columns):
            g = a[(a["experiment"] == rec["experiment"]) & (a["t"] == rec["t"]) & ~a["diverged"].astype(bool)]
            if "init" in rec and "init" in g:
                g = g[g["init"] == rec["init"]]
            if len(g) >= 2:
                d = (g["epsilon_accuracy_known"] - g["epsilon_accuracy_hidden"]).to_numpy(dtype=float)
                _, lo, hi = mean_ci(d, 0.95)
                return float(lo), float(hi)
    return interval_from_one_sided_p(rec["epsilon_accuracy_diff"], rec["p_value_epsilon_accuracy"], int(rec["n_runs"]))


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
            f"in the table above). Samples: {sizes}.",
            config_slice=(
                describe_experiments(inputs, names),
                mia_settings(inputs, ["experiments", "n_members", "n_nonmembers", "n_threshold"]),
            ),
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
    slice_text = (describe_experiments(inputs, [name]), mia_settings(inputs, ["lira", "confidence"]))
    auc = "; ".join(f"{r['variant']} {SETTING_WORDS[r['setting']]} {r['auc']:.3f}" for r in summary.to_dict("records"))
    blocks: list[Block] = [
        FigureBlock(
            "lira_roc",
            "LiRA ROC curves, seed known vs hidden (log-log)",
            fg.roc_curves(roc),
            "Pooled over target runs; each target's shadows are the other subsets' runs with its own seed (known) or "
            f"another seed (hidden); online: IN/OUT likelihood ratio, offline: OUT fit only; dashed: chance; below FPR = 1 / {int(first['n_nonmembers'])} the "
            f"curve rests on no false positive. AUC: {auc}. "
            f"Samples: {sizes}.",
            config_slice=slice_text,
        ),
        TableBlock(
            "lira_summary",
            "LiRA: AUC and TPR at low FPR, seed known vs hidden",
            summary,
            "auc: pooled; auc_target_*: mean over targets with its interval; tpr_at_Xpct: TPR at X% FPR with "
            "Clopper-Pearson interval (_lo, _hi); p: one-sided paired test over targets that the seed-known AUC is "
            f"larger. The study ran no LiRA (an extension of its Table 6). Samples: {sizes}.",
            config_slice=slice_text,
        ),
    ]
    for variant, g in summary.groupby("variant"):
        by = {str(r["setting"]): r for r in g.to_dict("records")}
        if {"known", "hidden"} <= set(by):
            known, hidden = by["known"], by["hidden"]
            p = float(known["p_value_known_gt_hidden"])
            blocks.append(
                comparison(
                    direction_verdict(p, 1.0 - p),
                    f"LiRA {variant} on {name}: AUC {known['auc']:.3f} with the seed known, {hidden['auc']:.3f} hidden "
                    f"(p = {fmt(p)} over {int(known['n_targets'])} targets); the study found that hiding the seed "
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
            f"at delta = {m.get('delta', '?')}. n_members, n_nonmembers: the counted trials, one of each per independent "
            "unit (unit, n_units: an evaluation seed); low_n: fewer than 30 units. The note "
            "column says what each bound assumes. Columns named epsilon_score* (where the stage writes them) are "
            "pooled scores, not bounds: they carry no confidence level.",
            config_slice=(mia_settings(inputs, ["delta", "confidence", "bound_candidates"]),),
        )
    ]
    blocks += [Note(f"{', '.join(sorted(g['attack'].unique()))}: {note}.") for note, g in table.groupby("note")]
    return blocks
