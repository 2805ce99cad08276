"""The privacy ledger: cumulative epsilon per dataset over every DP run (basic and RDP composition).

Basic composition: k runs at (eps_i, delta_i) are (sum eps_i, sum delta_i)-DP. RDP composition:
the RDP curves of the runs' sampled Gaussian mechanisms add up order by order, and the sum is
converted once to epsilon at the ledger's delta. Each run enters as what its accountant booked:
`accounted_steps` sampled steps at `accounted_noise_multiplier` (sigma for DP-SGD, sigma / sqrt(2)
for DP-SAM, whose two releases per batch are one sampled mechanism; see `accounting`).
Runs without noise (plain SGD, SAM, noise 0) have epsilon = inf: they are counted, and any one of
them makes the dataset's overall epsilon infinite.

The ledger holds every DP model the pipeline trains: the DP stage's runs (`stage` "dp") and the
DP-SGD contrast model of each output-perturbation query experiment (`stage` "perturbation",
`query_stage_runs`). The RDP composition of a dataset is converted at the ledger's delta or at the
smallest delta of its DP runs, whichever is smaller, so a dataset's composed guarantee is never at a
larger delta than any of its runs' own.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd
from opacus.accountants.analysis import rdp as rdp_analysis
from opacus.accountants.rdp import RDPAccountant

ORDERS = RDPAccountant.DEFAULT_ALPHAS


def composed_rdp_epsilon(runs: Iterable[tuple[float, float, int]], delta: float) -> float:
    """Epsilon at `delta` of the composition of sampled Gaussian mechanisms (noise, sample_rate, steps)."""
    total = np.zeros(len(ORDERS))
    for noise, rate, steps in runs:
        if noise <= 0:
            return math.inf
        total = total + np.asarray(
            rdp_analysis.compute_rdp(q=rate, noise_multiplier=noise, steps=int(steps), orders=ORDERS)
        )
    if not total.any():
        return 0.0
    eps, _ = rdp_analysis.get_privacy_spent(orders=ORDERS, rdp=total, delta=delta)
    return float(eps)


def rdp_epsilon(noise_multiplier: float, sample_rate: float, steps: int, delta: float) -> float:
    """Epsilon at `delta` of one run: `steps` sampled Gaussian steps at (noise_multiplier, sample_rate)."""
    return composed_rdp_epsilon([(noise_multiplier, sample_rate, steps)], delta)


LEDGER_RUN_COLUMNS = ["accounted_noise_multiplier", "sample_rate", "accounted_steps"]


QUERY_ACCOUNTING = ["dp_epsilon", "dp_delta", "dp_noise_multiplier", "dp_sample_rate", "dp_accounted_steps"]


def query_stage_runs(query: pd.DataFrame, datasets: Mapping[str, str]) -> pd.DataFrame:
    """The output-perturbation stage's DP-SGD models as ledger runs: one per experiment of its `query_attack`
    tables (the `dp_sgd` rows), on the experiment's dataset (`datasets`: experiment -> dataset)."""
    missing = sorted(set(QUERY_ACCOUNTING) - set(query.columns))
    if missing:
        raise ValueError(
            f"the query_attack tables lack {', '.join(missing)} (written before the ledger read them); rerun the "
            "query_attack jobs (e.g. snakemake --forcerun query_attack)"
        )
    rows = []
    for experiment, g in query[query["api"] == "dp_sgd"].groupby("experiment", sort=True):
        if experiment not in datasets:
            raise ValueError(f"no dataset given for the query experiment {experiment!r}")
        first = g.iloc[0]
        rows.append(
            {
                "stage": "perturbation",
                "configuration": f"{experiment} (query experiment's DP-SGD model)",
                "dataset": datasets[str(experiment)],
                "epsilon": float(first["dp_epsilon"]),
                "delta": float(first["dp_delta"]),
                "accounted_noise_multiplier": float(first["dp_noise_multiplier"]),
                "sample_rate": float(first["dp_sample_rate"]),
                "accounted_steps": int(first["dp_accounted_steps"]),
            }
        )
    return pd.DataFrame(rows, columns=["stage", "configuration", "dataset", "epsilon", "delta"] + LEDGER_RUN_COLUMNS)


def ledger_runs(dp_final: pd.DataFrame | None, query_runs: pd.DataFrame | None) -> pd.DataFrame:
    """Every trained run the ledger composes: the DP stage's (one row per run, its last epoch; `stage` "dp")
    and the output-perturbation stage's DP-SGD models (`query_stage_runs`)."""
    frames = []
    if dp_final is not None and len(dp_final):
        frames.append(dp_final.assign(stage="dp"))
    if query_runs is not None and len(query_runs):
        frames.append(query_runs)
    if not frames:
        raise ValueError("the privacy ledger has no runs: neither the DP stage nor the query experiment trained one")
    return pd.concat(frames, ignore_index=True)


def ledger_table(final: pd.DataFrame, delta: float | None) -> pd.DataFrame:
    """Per dataset: runs, DP runs, basic composition (sum of epsilons and deltas) and RDP composition at the
    smaller of `delta` (None: none given) and the smallest delta of the dataset's DP runs.

    `final` has one row per run (its last epoch) with dataset, epsilon, delta, accounted_noise_multiplier,
    sample_rate and accounted_steps, and optionally `stage` (the stage that trained the run)."""
    missing = sorted({"accounted_noise_multiplier", "accounted_steps"} - set(final.columns))
    if missing:
        raise ValueError(
            f"the DP runs' tables lack {', '.join(missing)} (written before DP-SAM was booked as one sampled step "
            "per batch); rerun the dp_train jobs (e.g. snakemake --forcerun dp_train)"
        )
    rows = []
    for dataset, runs in final.groupby("dataset", sort=True):
        dp = runs[np.isfinite(runs["epsilon"]) & (runs["accounted_noise_multiplier"] > 0)]
        non_private = len(runs) - len(dp)
        deltas = [float(d) for d in dp["delta"]] + ([float(delta)] if delta is not None else [])
        at = min(deltas) if deltas else math.nan
        rdp = composed_rdp_epsilon(
            zip(dp["accounted_noise_multiplier"], dp["sample_rate"], dp["accounted_steps"], strict=True), at
        )
        stages = runs["stage"] if "stage" in runs else pd.Series(["dp"] * len(runs))
        rows.append(
            {
                "dataset": dataset,
                "runs": len(runs),
                "dp_runs": len(dp),
                "non_private_runs": non_private,
                "basic_epsilon": float(dp["epsilon"].sum()),
                "basic_delta": float(dp["delta"].sum()),
                "rdp_epsilon": rdp,
                "rdp_delta": at,
                "largest_run_epsilon": float(dp["epsilon"].max()) if len(dp) else 0.0,
                "epsilon_all_runs": math.inf if non_private else rdp,
                "stages": ", ".join(f"{s} {n}" for s, n in stages.value_counts(sort=False).sort_index().items()),
            }
        )
    return pd.DataFrame(rows)
