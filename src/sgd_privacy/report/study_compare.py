"""The DP studies' printed values beside this run's matching configurations: which configuration matches a
study setting, what differs where none does, and the verdict where one does.

A study value is compared only with a configuration whose settings equal the study's on every key the study
states (dataset, model, epochs, batch size, algorithm, noise, clipping, learning rate); otherwise the row says
"not comparable" and names the settings that differ.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import cast

import numpy as np
import pandas as pd

from . import study_values as sv
from .frames import require
from .verdict import interval_verdict

NOT_COMPARABLE = "not comparable"
# How close a rate (test accuracy, P_err, advantage, AUC) must be to the study's printed value to agree.
RATE_TOLERANCE = 0.02
# How close an accountant's epsilon (no sampling uncertainty) must be to the study's printed one, relative.
EPSILON_REL_TOLERANCE = 0.05
# The attack the DP studies report: the loss-threshold attack (Yeom et al.).
STUDY_ATTACK = "loss_threshold"
# Differences the pipeline makes on purpose, said beside a verdict they explain (docs/methods.md).
KNOWN_DIFFERENCES = {
    ("dpsam", "epsilon"): "deliberate difference: this pipeline books DP-SAM's two noisy releases per batch as one "
    "sampled step at sigma / sqrt(2), the study booked it as DP-SGD (docs/methods.md, deliberate differences)",
}


def same_setting(have: object, want: object) -> bool:
    """Whether a configuration's value equals a study's (numbers to 1e-9 relative, others as text)."""
    if have is None:
        return False
    try:
        return math.isclose(float(have), float(want), rel_tol=1e-9)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(have) == str(want)


def setting_differences(settings: Mapping[str, object], study: Mapping[str, object]) -> list[str]:
    """The study's keys on which a configuration differs: 'key X (study Y)'; a key it lacks is 'not set'."""
    return [
        f"{key} {settings.get(key, 'not set')} (study {want})"
        for key, want in study.items()
        if not same_setting(settings.get(key), want)
    ]


def run_settings(summary: pd.DataFrame, configurations: Mapping[str, Mapping]) -> dict[str, dict[str, object]]:
    """Each configuration's settings: the config slice's, with the dataset, algorithm and the noise multiplier
    the run used (calibrated from a target epsilon where the config gives one) from the summary."""
    out: dict[str, dict[str, object]] = {}
    for name, g in summary.groupby("configuration", sort=True):
        first = g.iloc[0]
        given = dict(configurations.get(str(name), {}))
        noise = float(first["noise_multiplier"])
        out[str(name)] = {**given, "dataset": first["dataset"], "algorithm": first["algorithm"]}
        out[str(name)]["noise_multiplier"] = noise
    return out


def closest(settings: Mapping[str, Mapping[str, object]], study: Mapping[str, object]) -> tuple[str, list[str]]:
    """The configuration with the study's algorithm that differs from the study's setting on fewest keys ('' and
    a reason when the run has no configuration of that algorithm), and its differences."""
    algorithm = study.get("algorithm")
    same_algorithm = {n: s for n, s in settings.items() if algorithm is None or s.get("algorithm") == algorithm}
    if not same_algorithm:
        return "", [f"no {algorithm} configuration in this run"]
    ranked = sorted(same_algorithm, key=lambda n: (len(setting_differences(same_algorithm[n], study)), n))
    return ranked[0], setting_differences(same_algorithm[ranked[0]], study)


def _last_row(summary: pd.DataFrame, name: str) -> pd.Series | None:
    """A configuration's last-epoch row of the study's attack (None where it has none)."""
    rows = summary[(summary["configuration"] == name) & (summary["attack"] == STUDY_ATTACK)]
    if rows.empty:
        return None
    return rows[rows["epoch"] == rows["epoch"].max()].iloc[0]


def metric_verdict(metric: str, lo: float, hi: float, study_lo: float, study_hi: float) -> str:
    """The verdict of a run's interval [lo, hi] of `metric` against the study's printed value or range: a rate
    within RATE_TOLERANCE, an accountant's epsilon within EPSILON_REL_TOLERANCE."""
    if metric == "epsilon":
        return str(
            interval_verdict(lo, hi, study_lo * (1 - EPSILON_REL_TOLERANCE), study_hi * (1 + EPSILON_REL_TOLERANCE))
        )
    return str(interval_verdict(lo, hi, study_lo, study_hi, RATE_TOLERANCE))


def dg_comparison_table(summary: pd.DataFrame, configurations: Mapping[str, Mapping]) -> pd.DataFrame:
    """Every number the DP-vs-generalisation study printed about its runs (`DG_VALUES`) beside this run's
    configuration at the same setting (last epoch, threshold attack, mean and 95% CI over repeats) and the
    verdict; 'not comparable' with the differing settings where no configuration matches."""
    require(
        summary,
        ["configuration", "epoch", "attack", "dataset", "algorithm", "noise_multiplier", "repeats"],
        "dp_summary",
    )
    settings = run_settings(summary, configurations)
    rows = []
    for ref in sv.DG_VALUES:
        setting = {**sv.DG_SETUP, **cast(Mapping[str, object], ref["setting"])}
        name, differences = closest(settings, setting)
        row: dict[str, object] = {
            "study_finding": ref["finding"],
            "study_source": ref["source"],
            "metric": ref["metric"],
            "study_value": ref["value"],
            "verdict": NOT_COMPARABLE,
            "configuration": name,
            "value": np.nan,
            "value_lo": np.nan,
            "value_hi": np.nan,
            "repeats": np.nan,
            "reason": "",
        }
        last = _last_row(summary, name) if name and not differences else None
        if differences or last is None:
            row["reason"] = "settings differ: " + "; ".join(differences) if name else differences[0]
            if name and not differences:
                row["reason"] = f"{name} has no {STUDY_ATTACK} rows"
            rows.append(row)
            continue
        metric = str(ref["metric"])
        value, lo, hi = (float(last[metric]), float(last[f"{metric}_lo"]), float(last[f"{metric}_hi"]))
        if metric != "epsilon":
            lo, hi = max(lo, 0.0), min(hi, 1.0)
        row.update(value=value, value_lo=lo, value_hi=hi, repeats=int(last["repeats"]))
        row["verdict"] = metric_verdict(metric, lo, hi, cast(float, ref["study_lo"]), cast(float, ref["study_hi"]))
        if row["verdict"] == "differs":
            row["reason"] = KNOWN_DIFFERENCES.get((str(setting["algorithm"]), metric), "")
        rows.append(row)
    return pd.DataFrame(rows)


def lab_comparability(settings: Mapping[str, object], key: str) -> list[str]:
    """The settings on which a configuration of a sweep over `key` differs from the lab report's set-up of the
    table for that key (dataset, model, epochs, batch size, and the key the table holds fixed, which the
    non-private baseline, plain SGD, has not)."""
    fixed = {} if settings.get("algorithm") == "sgd" else dict(sv.DP_LAB_FIXED.get(key, {}))
    return setting_differences(settings, {**sv.DP_LAB_SETUP, **fixed})
