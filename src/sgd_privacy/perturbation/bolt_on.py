"""Bolt-on output perturbation of trained logistic-regression runs and its cost in test accuracy.

Released weights get N(0, s^2) noise on every weight, s the Gaussian mechanism's noise for (epsilon, delta) at
sensitivity Delta: by the analytic mechanism (exact for every epsilon) or the classic s = c Delta / epsilon,
c = sqrt(2 ln(1.25 / delta)) (proved for epsilon < 1). When the training seed stays secret, the weights already
vary by sigma_intrinsic from run to run, so the "augmented" release adds only sqrt(s^2 - sigma_intrinsic^2)
(nothing when s <= sigma_intrinsic): the study's suggestion, measured, not proved. Every row states the epsilon
that its added noise alone proves at the worst-case Delta_theory (`provable_epsilon`) and whether its target
epsilon is a DP guarantee (`guarantee`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from scipy import stats

from .. import rng
from ..analysis.gaussian import analytic_epsilon, noise_sigma
from ..analysis.privacy import pooled_sigma

# Noise is calibrated on the worst-case bound (passes begun), the one that holds for a partial last pass.
SENSITIVITIES = {"theory": "delta_theory_worst_case", "empirical": "delta_empirical"}
PROVABLE_SENSITIVITY = "delta_theory_worst_case"
FIGURE_COLUMNS = ["seed", "replace_index", "init", "sensitivity", "mechanism", "epsilon"]
FIGURE_COLUMNS += ["accuracy_unperturbed", "accuracy_perturbed"]
HEURISTIC_NOTE = "heuristic: Delta_empirical is the largest observed distance, not a bound (no DP guarantee)"
AUGMENTED_NOTE = (
    "heuristic: the seed's spread is assumed to supply sigma_intrinsic of the noise (measured, not proved); "
    "the added noise alone proves provable_epsilon"
)
CLASSIC_NOTE = "heuristic: the classic constant does not give this epsilon (it is proved for epsilon < 1 only)"


def gaussian_scale(
    sensitivity: float, epsilon: np.ndarray | float, delta: float, calibration: str = "analytic"
) -> np.ndarray:
    """Noise standard deviation s of the Gaussian mechanism for (epsilon, delta) at sensitivity Delta."""
    return noise_sigma(sensitivity, epsilon, delta, calibration)


def provable_epsilon(sensitivity: float, noise_added: np.ndarray | float, delta: float) -> np.ndarray:
    """Epsilon that the added noise alone proves at a proven sensitivity bound (analytic Gaussian mechanism):
    infinite when no noise is added or no bound exists (NaN sensitivity)."""
    added = np.asarray(noise_added, dtype=np.float64)
    if not math.isfinite(sensitivity):
        return np.full(added.shape, math.inf)
    return analytic_epsilon(sensitivity, added, delta)


def augmented_scale(scale: np.ndarray | float, sigma_intrinsic: float) -> np.ndarray:
    """Extra noise sqrt(s^2 - sigma_intrinsic^2) when the seed stays secret; 0 where s <= sigma_intrinsic."""
    s = np.asarray(scale, dtype=np.float64)
    return np.sqrt(np.maximum(s**2 - sigma_intrinsic**2, 0.0))


def fixed_init_sigma(runs: pd.DataFrame, weights: np.ndarray) -> float:
    """sigma_intrinsic of fixed-init runs: min over weights of the spread pooled over datasets (non-diverged runs)."""
    sel = (runs["init"] == "fixed").to_numpy() & ~runs["diverged"].to_numpy()
    if sel.sum() < 3:
        raise ValueError("the fixed-init sigma needs fixed-init runs with at least two seeds per dataset")
    return float(pooled_sigma(weights[sel], runs["replace_index"].to_numpy()[sel]).min())


def intrinsic_sigmas(row: dict, runs: pd.DataFrame, weights: np.ndarray) -> tuple[dict[str, float], dict[str, str]]:
    """sigma_intrinsic per init mode present among the runs, and where each came from: the epsilon table's
    sigma (variable init) and the fixed-init runs' pooled spread (which the table does not hold)."""
    sigmas, sources = {}, {}
    inits = set(runs["init"])
    if "variable" in inits:
        sigmas["variable"], sources["variable"] = float(row["sigma"]), "epsilon table (variable-init runs)"
    if "fixed" in inits:
        sigmas["fixed"] = fixed_init_sigma(runs, weights)
        sources["fixed"] = "pooled_sigma of the fixed-init runs at T (computed here)"
    return sigmas, sources


def logreg_logits(weights: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Logits (runs, examples) of logistic regressions with weights (runs, d + 1), bias last."""
    w = np.asarray(weights, dtype=np.float64)
    return w[:, :-1] @ np.asarray(x, dtype=np.float64).T + w[:, -1:]


def weight_noise(n_runs: int, n_draws: int, n_params: int, seed: int) -> np.ndarray:
    """Standard normal noise (runs, draws, params), a pure function of (seed, run, draw, weight)."""
    index = torch.arange(n_draws * n_params, dtype=torch.int64).reshape(1, -1)
    runs = torch.arange(n_runs, dtype=torch.int64).reshape(-1, 1)
    return rng.normal(seed, rng.Purpose.OUTPUT_NOISE, runs, index).numpy().reshape(n_runs, n_draws, n_params)


def perturbed_accuracy(
    weights: np.ndarray, x: np.ndarray, y: np.ndarray, scales: np.ndarray, n_draws: int, seed: int
) -> np.ndarray:
    """Test accuracy (scales, runs, draws) of each run with N(0, s^2) added to every weight.

    The same standard-normal draws are scaled for every s (common random numbers), so
    logits are x.w + s (x.z) and each scale costs one comparison.
    """
    w = np.asarray(weights, dtype=np.float64)
    z = weight_noise(len(w), n_draws, w.shape[1], seed)
    base = logreg_logits(w, x)  # (runs, n)
    x1 = np.concatenate([np.asarray(x, dtype=np.float64), np.ones((len(x), 1))], axis=1)
    noise_logits = np.einsum("rdp,np->rdn", z, x1)  # (runs, draws, n)
    labels = np.asarray(y).reshape(1, 1, -1) == 1
    out = np.empty((len(scales), len(w), n_draws))
    for k, s in enumerate(np.asarray(scales, dtype=np.float64)):
        out[k] = ((base[:, None, :] + s * noise_logits > 0) == labels).mean(axis=-1)
    return out


def paired_test(baseline: np.ndarray, treated: np.ndarray, confidence: float = 0.95) -> dict[str, float]:
    """Paired t-test of treated - baseline (one pair per run): mean difference, its CI, t and two-sided p.

    Identical pairs (no noise added) give difference 0 with p = 1 instead of an undefined t.
    """
    d = np.asarray(treated, dtype=np.float64) - np.asarray(baseline, dtype=np.float64)
    n = len(d)
    if n < 2:
        raise ValueError(f"a paired test needs at least two pairs, got {n}")
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    if sd == 0.0:
        return {"mean_diff": mean, "ci_low": mean, "ci_high": mean, "t": math.nan, "p_value": 1.0 if mean == 0 else 0.0}
    se = sd / math.sqrt(n)
    t = mean / se
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1)) * se
    p = float(2 * stats.t.sf(abs(t), n - 1))
    return {"mean_diff": mean, "ci_low": mean - half, "ci_high": mean + half, "t": t, "p_value": p}


def guarantee_labels(
    sensitivity: str, mechanism: str, epsilon: np.ndarray, provable: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """`dp` where the row's noise proves its target epsilon (bolt-on on the worst-case bound, provable_epsilon
    <= epsilon), else `heuristic`; and the note saying why a row is heuristic."""
    proved = (sensitivity == "theory") & (mechanism == "bolt_on") & (provable <= epsilon * (1.0 + 1e-9))
    if sensitivity == "empirical":
        why = HEURISTIC_NOTE
    elif mechanism == "augmented":
        why = AUGMENTED_NOTE
    else:
        why = CLASSIC_NOTE
    return np.where(proved, "dp", "heuristic"), np.where(proved, "", why)


def variant_scales(
    epsilons: Sequence[float], row: dict, sigma_intrinsic: dict[str, float], calibration: str = "analytic"
) -> pd.DataFrame:
    """Every (sensitivity, mechanism, init, epsilon) with its nominal scale s, the noise actually added, the
    epsilon that the added noise proves and the guarantee label.

    `row` is the experiment's epsilon-table row (delta, delta_theory_worst_case, delta_empirical);
    `sigma_intrinsic` maps init mode to its spread; `calibration` is `analytic` or `classic`. A NaN sensitivity
    gives rows with a NaN scale and a note saying why they are skipped.
    """
    eps = np.asarray(epsilons, dtype=np.float64)
    delta = float(row["delta"])
    proven = float(row[PROVABLE_SENSITIVITY])
    rows: list[dict] = []
    for kind, column in SENSITIVITIES.items():
        sens = float(row[column])
        if not math.isfinite(sens):
            note = f"skipped: {column} is NaN (the bound does not apply to this experiment)"
            rows += [
                {
                    "sensitivity": kind,
                    "heuristic": True,
                    "guarantee": "heuristic",
                    "calibration": calibration,
                    "mechanism": m,
                    "init": init,
                    "note": note,
                }
                for init in sigma_intrinsic
                for m in ("bolt_on", "augmented")
            ]
            continue
        s = gaussian_scale(sens, eps, delta, calibration)
        for init, sig in sigma_intrinsic.items():
            for mechanism, added in (("bolt_on", s), ("augmented", augmented_scale(s, sig))):
                provable = provable_epsilon(proven, added, delta)
                labels, notes = guarantee_labels(kind, mechanism, eps, provable)
                for k, (e, nominal, extra) in enumerate(zip(eps, s, added, strict=True)):
                    rows.append(
                        {
                            "sensitivity": kind,
                            "heuristic": bool(labels[k] == "heuristic"),
                            "guarantee": str(labels[k]),
                            "calibration": calibration,
                            "mechanism": mechanism,
                            "init": init,
                            "epsilon": float(e),
                            "sensitivity_value": sens,
                            "scale": float(nominal),
                            "sigma_intrinsic": sig,
                            "noise_added": float(extra),
                            "provable_epsilon": float(provable[k]),
                            "no_extra_noise": bool(mechanism == "augmented" and extra == 0.0),
                            "note": str(notes[k]),
                        }
                    )
    columns = ["sensitivity", "heuristic", "guarantee", "calibration", "mechanism", "init", "epsilon"]
    columns += ["sensitivity_value", "scale", "sigma_intrinsic", "noise_added", "provable_epsilon"]
    columns += ["no_extra_noise", "note"]
    return pd.DataFrame(rows, columns=columns)


def utility_table(
    runs: pd.DataFrame,
    weights: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    row: dict,
    sigma_intrinsic: dict[str, float],
    sigma_source: dict[str, str],
    epsilons: Sequence[float],
    n_draws: int,
    seed: int,
    calibration: str = "analytic",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per variant and epsilon: mean test accuracy of released runs vs unperturbed with a paired test over
    runs (table), and each run's accuracies (figure data). Runs are the non-diverged runs of each init mode."""
    variants = variant_scales(epsilons, row, sigma_intrinsic, calibration)
    skipped = variants["scale"].isna()
    summary, per_run = [variants[skipped]], []
    for init in sigma_intrinsic:
        v = variants[~skipped & (variants["init"] == init)].reset_index(drop=True)
        sel = (runs["init"] == init).to_numpy() & ~runs["diverged"].to_numpy()
        if len(v) == 0:
            continue
        if sel.sum() == 0:
            summary.append(v.assign(note=f"skipped: every {init}-init run diverged"))
            continue
        r, w = runs[sel].reset_index(drop=True), weights[sel]
        clean = ((logreg_logits(w, x_test) > 0) == (np.asarray(y_test) == 1)[None, :]).mean(axis=1)
        added = v["noise_added"].to_numpy()
        acc = perturbed_accuracy(w, x_test, y_test, added, n_draws, seed).mean(axis=2)
        acc[added == 0.0] = clean  # no noise: the release is the trained run (exactly, not up to rounding)
        tests = pd.DataFrame([paired_test(clean, a) for a in acc])
        summary.append(
            v.assign(
                sigma_source=sigma_source[init],
                n_runs=len(w),
                n_draws=n_draws,
                accuracy_unperturbed=float(clean.mean()),
                accuracy_perturbed=acc.mean(axis=1),
            ).join(tests)
        )
        per_run += [
            r[["seed", "replace_index", "init"]].assign(
                sensitivity=var.sensitivity,
                mechanism=var.mechanism,
                epsilon=var.epsilon,
                accuracy_unperturbed=clean,
                accuracy_perturbed=acc[k],
            )
            for k, var in enumerate(v.itertuples())
        ]
    table = pd.concat([t for t in summary if len(t)], ignore_index=True)
    figure = pd.concat(per_run, ignore_index=True) if per_run else pd.DataFrame(columns=FIGURE_COLUMNS)
    experiment = str(runs["experiment"].iloc[0])
    table.insert(0, "experiment", experiment)
    figure.insert(0, "experiment", experiment)
    return table, figure
