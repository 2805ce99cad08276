"""The privacy ledger: cumulative epsilon per dataset over every DP run (basic and RDP composition).

Basic composition: k runs at (eps_i, delta_i) are (sum eps_i, sum delta_i)-DP. RDP composition:
the RDP curves of the runs' sampled Gaussian mechanisms add up order by order, and the sum is
converted once to epsilon at the ledger's delta. Each run enters as what its accountant booked:
`accounted_steps` sampled steps at `accounted_noise_multiplier` (sigma for DP-SGD, sigma / sqrt(2)
for DP-SAM, whose two releases per batch are one sampled mechanism; see `accounting`).
Runs without noise (plain SGD, SAM, noise 0) have epsilon = inf: they are counted, and any one of
them makes the dataset's overall epsilon infinite.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

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


def ledger_table(final: pd.DataFrame, delta: float) -> pd.DataFrame:
    """Per dataset: runs, DP runs, basic composition (sum of epsilons and deltas) and RDP composition at `delta`.

    `final` has one row per run (its last epoch) with dataset, epsilon, delta, accounted_noise_multiplier,
    sample_rate and accounted_steps."""
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
        rdp = composed_rdp_epsilon(
            zip(dp["accounted_noise_multiplier"], dp["sample_rate"], dp["accounted_steps"], strict=True), delta
        )
        rows.append(
            {
                "dataset": dataset,
                "runs": len(runs),
                "dp_runs": len(dp),
                "non_private_runs": non_private,
                "basic_epsilon": float(dp["epsilon"].sum()),
                "basic_delta": float(dp["delta"].sum()),
                "rdp_epsilon": rdp,
                "rdp_delta": delta,
                "largest_run_epsilon": float(dp["epsilon"].max()) if len(dp) else 0.0,
                "epsilon_all_runs": math.inf if non_private else rdp,
            }
        )
    return pd.DataFrame(rows)
