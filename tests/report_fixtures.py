"""Small tables of every kind the report reads, in the stages' formats, for the report tests."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from sgd_privacy.attacks import lira, yeom
from sgd_privacy.attacks.mia import fixed_lists, lira_bounds, yeom_bounds, yeom_tables
from sgd_privacy.dp import ledger as dp_ledger
from sgd_privacy.dp import summary as dp_summary
from sgd_privacy.io import write_json, write_table

EXPERIMENTS = {
    "exp_lr": {
        "dataset": "mnist_binary",
        "model": "logreg",
        "lr": 0.5,
        "batch_size": 32,
        "epochs": 3,
        "seeds": 6,
        "replace_indices": 3,
        "init_modes": ["variable", "fixed"],
    },
    "exp_mlp": {
        "dataset": "mnist_binary",
        "model": "mlp",
        "lr": 0.5,
        "batch_size": 32,
        "epochs": 3,
        "seeds": 6,
        "replace_indices": 3,
        "init_modes": ["variable", "fixed"],
    },
}
CONFIG = {
    "experiments": EXPERIMENTS,
    "analysis": {"n_pairs": 30, "bootstrap": 20, "pair_seed": 0, "seed": 0},
    "dp": {
        "delta": 1e-5,
        "repeats": 3,
        "configurations": {"cmp-sgd": {"algorithm": "sgd", "epochs": 3}, "cmp-dpsgd": {"algorithm": "dpsgd"}},
    },
    "perturbation": {"epsilons": [0.5, 1, 2], "noise_draws": 5, "k_values": [1, 4, 16, 64]},
    "mia": {
        "experiments": {"exp_mlp": [20, 40]},
        "n_members": 30,
        "n_nonmembers": 30,
        "n_threshold": None,
        **{"delta": 1e-5, "confidence": 0.95, "bound_candidates": 50},
        "lira": {"experiment": "exp_mlp", "seeds": 2, "shadows": 4, "pool_size": 40, "subset_seed": 0, "epochs": 3},
    },
}
T = 20
SEEDS, REPLACE = range(6), (1, 2, 3)


def intrinsic_tables(rng: np.random.Generator) -> dict[str, pd.DataFrame]:
    """Tables of the data, training and intrinsic-privacy stages for two experiments."""
    t: dict[str, list[pd.DataFrame]] = {}

    def add(kind: str, frame: pd.DataFrame) -> None:
        t.setdefault(kind, []).append(frame)

    for name in EXPERIMENTS:
        grid = pd.MultiIndex.from_product(
            [[name], SEEDS, REPLACE, ["variable", "fixed"]], names=["experiment", "seed", "replace_index", "init"]
        ).to_frame(index=False)
        add("runs", grid.assign(T_run=T, converged=True, diverged=False, final_val_acc=0.9))
        add(
            "convergence", pd.DataFrame({"experiment": [name], "T": [T], "val_acc_at_T": [0.91], "n_runs": [len(grid)]})
        )
        kinds = {"sensitivity": 0.02, "variability_fixed_init": 0.3, "variability_variable_init": 1.0}
        rows = []
        for kind, scale in kinds.items():
            for step in (0, 10, 20, 30):
                rows.append(
                    {"experiment": name, "kind": kind, "t": step, "n_pairs": 30, "min": scale * 0.5, "q05": scale * 0.6}
                    | {"median": scale, "q95": scale * 1.5, "max": scale * 2, "mean": scale}
                )
            add(
                "distances_at_T",
                pd.DataFrame(
                    {"experiment": name, "kind": kind, "t": T, "distance": scale * rng.uniform(0.5, 2, 30)}
                ).assign(init="variable"),
            )
        if name == "exp_lr":
            for step in (0, 10, 20, 30):
                rows.append(
                    {"experiment": name, "kind": "sensitivity_theory", "t": step, "n_pairs": 0}
                    | dict.fromkeys(["min", "q05", "median", "q95", "max", "mean"], 0.01 * step)
                )
        add("distances_over_t", pd.DataFrame(rows))
        add(
            "epsilon",
            pd.DataFrame(
                [
                    {
                        "experiment": name,
                        "T": T,
                        "N": 100,
                        "n_seeds": 6,
                        "n_datasets": 3,
                        "sigma": 0.05,
                        "sigma_max": 0.2,
                        "sigma_ci_low": 0.04,
                        "sigma_ci_high": 0.06,
                        "delta_theory": 0.2 if name == "exp_lr" else np.nan,
                        "delta_empirical": 0.04,
                        "epsilon_theory": 12.0 if name == "exp_lr" else np.nan,
                        "epsilon_empirical": 2.4,
                        "epsilon_theory_ci_low": 10.0,
                        "epsilon_theory_ci_high": 14.0,
                        "epsilon_empirical_ci_low": 2.0,
                        "epsilon_empirical_ci_high": 3.0,
                        "epsilon_theory_weight_min": 3.0,
                        "epsilon_empirical_weight_min": 0.6,
                        "theorem_applies": False,
                        "sigma_dataset_min": 0.05,
                        "sigma_dataset_max": 0.06,
                    }
                ]
            ),
        )
        add(
            "sigma_per_dataset",
            pd.DataFrame({"experiment": name, "replace_index": REPLACE, "sigma": [0.05, 0.055, 0.06], "n_seeds": 6}),
        )
        stab = [
            {"experiment": name, "quantity": q, "n": n, "repeat": r, "value": v * (1 + 0.1 * r)}
            for q, v in (("sigma", 0.05), ("delta_empirical", 0.03))
            for n in (2, 5)
            for r in range(3)
        ]
        add("stability", pd.DataFrame(stab))
        add(
            "distribution_tests",
            pd.DataFrame(
                [
                    {
                        "experiment": name,
                        "T": T,
                        "replace_index": 1,
                        "n_seeds": 6,
                        "n_params": 4,
                        "hz_p_min": 0.01,
                        "hz_note": "",
                        "shapiro_rejected": 0.5,
                        "shapiro_rejected_bonferroni": 0.25,
                        "laplace_rejected": 0.5,
                        "laplace_rejected_bonferroni": 0.5,
                        "tail_index": 1.9 if name == "exp_lr" else np.nan,
                    }
                ]
            ),
        )
        add(
            "nonnormal_weights",
            pd.DataFrame(
                {
                    "experiment": name,
                    "replace_index": 1,
                    "weight": np.repeat([0, 3], 6),
                    "shapiro_p": np.repeat([0.01, 0.2], 6),
                }
            ).assign(seed=np.tile(SEEDS, 2), value=rng.normal(size=12)),
        )
        variable = grid[grid["init"] == "variable"]
        add(
            "umap",
            variable.assign(
                umap_1=rng.normal(size=len(variable)), umap_2=rng.normal(size=len(variable)), cluster=0, T=T
            ),
        )
        spans = [{"by": "seed", "value": s, "clusters": 1, "k": 6} for s in SEEDS]
        spans += [{"by": "replace_index", "value": r, "clusters": 4, "k": 6} for r in REPLACE]
        add("kmeans_spans", pd.DataFrame(spans).assign(experiment=name))
    return {k: pd.concat(v, ignore_index=True) for k, v in t.items()}


def dp_tables(rng: np.random.Generator) -> dict[str, pd.DataFrame]:
    """The DP stage's summary, sweeps, outliers and ledger, made by the stage's own summary functions from
    per-run rows (so their columns are the real tables'): SGD and DP-SGD variants and an epsilon sweep."""
    points = [("cmp", "sgd", "sgd", np.inf, 0.0, None), ("cmp", "dpsgd", "dpsgd", 3.0, 0.9, None)]
    points += [("eps", label, "dpsgd", e, 1.0 / e, "target_epsilon") for label, e in (("3", 3.0), ("1", 1.0))]
    runs, examples, final = [], [], []
    for sweep, label, algorithm, eps, noise, _ in points:
        for repeat in range(3):
            for epoch in range(3):
                acc = 0.5 + 0.1 * epoch - 0.05 * noise + 0.01 * repeat
                for attack, shift in (("loss_threshold", 0.0), ("nn_shadow", 0.02)):
                    p_err = 0.45 + shift + 0.02 * noise - 0.01 * epoch + 0.005 * repeat
                    runs.append(
                        {"configuration": f"{sweep}-{label}", "epoch": epoch, "attack": attack, "dataset": "mnist5k"}
                        | {"algorithm": algorithm, "noise_multiplier": noise, "test_accuracy": acc}
                        | {"train_accuracy": acc + 0.05, "p_err": p_err, "fpr": 0.4, "fnr": 0.5}
                        | {"advantage": 1 - 2 * p_err, "max_advantage": 1.1 - 2 * p_err, "auc": 1.5 - 2 * p_err}
                        | {"epsilon": eps * epoch / 2 if np.isfinite(eps) else eps, "p_err_floor": 0.1}
                    )
                    for example, member in enumerate([True] * 4 + [False] * 2):
                        identified = example in (0, 1, 4) or repeat == 0  # outliers: members 0, 1; non-member 4
                        examples.append(
                            {"configuration": f"{sweep}-{label}", "epoch": epoch, "attack": attack}
                            | {"member": member, "example": example, "identified": identified}
                        )
            final.append(
                {"dataset": "mnist5k", "epsilon": eps, "delta": 1e-5, "noise_multiplier": noise}
                | {"sample_rate": 0.01, "noisy_releases": 300}
                | {"accounted_noise_multiplier": noise, "accounted_steps": 300}
            )
    summary = dp_summary.summary_table(pd.DataFrame(runs))
    membership = [
        {"sweep": sweep, "configuration": f"{sweep}-{label}", "label": label, "key": key}
        for sweep, label, *_, key in points
    ]
    return {
        "dp_summary": summary,
        "dp_sweeps": dp_summary.sweep_table(summary, membership),
        "dp_outliers": dp_summary.outlier_table(pd.DataFrame(examples), 3),
        "ledger": dp_ledger.ledger_table(pd.DataFrame(final), 1e-5),
    }


def perturbation_tables(rng: np.random.Generator) -> dict[str, pd.DataFrame]:
    """The output-perturbation stage's bolt_on and query_attack tables (the real columns) for exp_lr."""
    bolt_on = pd.DataFrame(
        [
            {"experiment": "exp_lr", "sensitivity": sens, "heuristic": sens == "empirical", "mechanism": mech}
            | {"init": init, "epsilon": e, "sensitivity_value": 1.0, "scale": 2.0 / e, "sigma_intrinsic": 0.1}
            | {"noise_added": 2.0 / e, "no_extra_noise": False, "note": "", "sigma_source": "epsilon table"}
            | {"n_runs": 12, "n_draws": 5, "accuracy_unperturbed": 0.9, "accuracy_perturbed": 0.9 - 0.2 / e}
            | {"mean_diff": -0.2 / e, "ci_low": -0.2 / e - 0.01, "ci_high": -0.2 / e + 0.01, "t": -5.0, "p_value": 1e-4}
            for sens in ("theory", "empirical")
            for mech in ("bolt_on", "augmented")
            for init in ("variable", "fixed")
            for e in (0.5, 1.0, 2.0)
        ]
    )
    ks = (1, 4, 16, 64)
    query = pd.DataFrame(
        [
            {"experiment": "exp_lr", "target_seed": 0, "target_replace_index": 1, "api": api, "attack": attack, "k": k}
            | {"rmse": rmse(k), "advantage": 0.1 + rng.normal(0, 0.01), "auc": 0.55, "advantage_p_value": 0.3}
            | {"query_noise": 1.0, "n_members": 20, "n_nonmembers": 20, "nearby_radius": 0.01}
            | {"dp_epsilon": 2.0 if api == "dp_sgd" else np.nan, "dp_delta": 1e-5 if api == "dp_sgd" else np.nan}
            | {"advantage_bound": 0.76 if api == "dp_sgd" else np.nan}
            for api, attack, rmse in (
                ("exact", "none", lambda k: 0.0),
                ("fresh", "repeat", lambda k: 1 / np.sqrt(k)),
                ("fixed", "repeat", lambda k: 1.0),
                ("dp_sgd", "repeat", lambda k: 1e-16 * k),
            )
            for k in ks
        ]
    )
    return {"bolt_on": bolt_on, "query_attack": query}


MIA_STEPS = (20, 40)  # T and 2 T of the fixtures' convergence point: the study's rows at 2000 and 4000
MIA_N, LIRA_SEEDS, LIRA_SUBSETS, LIRA_POOL = 30, 2, 4, 40
BOUNDS = {"delta": 1e-5, "confidence": 0.95, "bound_candidates": 50}


def loss_table(rng: np.random.Generator) -> pa.Table:
    """exp_mlp's per-example losses at MIA_STEPS in the loss job's format: members' losses fall with the
    step, and each seed shifts its own threshold loss, so knowing the seed helps."""
    grid = pd.MultiIndex.from_product(
        [["exp_mlp"], SEEDS, REPLACE, ["variable", "fixed"], MIA_STEPS],
        names=["experiment", "seed", "replace_index", "init", "t"],
    ).to_frame(index=False)
    r = len(grid)
    shift = 0.05 * grid["seed"].to_numpy()[:, None]
    member = rng.exponential(1.0, (r, MIA_N)) * (40 / (grid["t"].to_numpy()[:, None] + 20)) + shift
    nonmember = rng.exponential(1.0, (r, MIA_N)) + shift
    columns = {k: pa.array(grid[k].to_numpy()) for k in grid}
    columns |= {
        "diverged": pa.array(np.zeros(r, dtype=bool)),
        "train_loss": pa.array(member.mean(axis=1)),
        "val_loss": pa.array(nonmember.mean(axis=1)),
        "threshold_loss": pa.array(0.8 + shift[:, 0]),
        "member_loss": fixed_lists(member.astype(np.float32)),
        "nonmember_loss": fixed_lists(nonmember.astype(np.float32)),
    }
    return pa.table(columns)


def mia_tables(rng: np.random.Generator) -> dict[str, pd.DataFrame]:
    """The membership-inference stage's tables, made by the stage's own functions: Yeom's attacks, Table 6 and
    bounds from a loss table of exp_mlp, and LiRA's ROC, summary and bounds from synthetic confidences."""
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "losses.parquet")
        pq.write_table(loss_table(rng), path)
        attacks = yeom_tables([path])
        bounds = yeom_bounds([path], BOUNDS)
    member = lira.membership(lira.subset_rows(0, range(LIRA_SUBSETS), LIRA_POOL), LIRA_POOL)
    per_seed = rng.normal(0, 1, (LIRA_SEEDS, 1, LIRA_POOL))  # a seed's own offset per example
    confidence = per_seed + 1.5 * member[None] + rng.normal(0, 0.5, (LIRA_SEEDS, LIRA_SUBSETS, LIRA_POOL))
    scores = lira.attack_scores(confidence, member, list(range(LIRA_SEEDS)), True)
    return {
        "mia_attacks": attacks,
        "mia_table6": yeom.table6(attacks),
        "mia_bounds": bounds,
        "lira_summary": lira.summary_table(scores, [0.1, 0.01], BOUNDS["confidence"]),
        "lira_roc": lira.roc_table(scores, n_points=50),
        "lira_bounds": lira_bounds(scores, BOUNDS, (np.arange(LIRA_SEEDS), confidence, member), True),
    }


def other_stage_tables(rng: np.random.Generator) -> dict[str, pd.DataFrame]:
    """Tables of the membership-inference, DP-SGD / SAM (with the ledger) and output-perturbation stages."""
    return mia_tables(rng) | dp_tables(rng) | perturbation_tables(rng)


def fixture_tables(kinds: set[str] | None = None) -> dict[str, pd.DataFrame]:
    """Every fixture table (or only `kinds`) by kind, to change before writing with `write_frames`."""
    rng = np.random.default_rng(0)
    tables = intrinsic_tables(rng) | other_stage_tables(rng) | {"hz_power": hz_power_table()}
    return {k: v for k, v in tables.items() if kinds is None or k in kinds}


def hz_power_table() -> pd.DataFrame:
    """The HZ power simulation's table: power against a Laplace rising with the seeds, size 5% under normals."""
    rows = []
    for n, power in ((3, 0.1), (6, 0.3), (12, 0.9)):
        for distribution, p in (("laplace", power), ("normal_full", 0.05), ("normal_diagonal", 0.05)):
            rows.append(
                {"distribution": distribution, "dimension": 4, "n_seeds": n, "replicates": 20, "power": p}
                | {"power_lo": max(p - 0.1, 0), "power_hi": min(p + 0.1, 1), "p_median": 0.3, "alpha": 0.05}
            )
    return pd.DataFrame(rows)


def write_frames(root: Path, tables: dict[str, pd.DataFrame]) -> dict[str, list[str]]:
    """Write `tables` (kind -> frame) under `root` plus the dataset sidecar; the files by kind."""
    return _write(root, tables, None)


def write_fixtures(root: Path, kinds: set[str] | None = None) -> dict[str, list[str]]:
    """Write every table (or only `kinds`) under `root`; return the files by kind, as the report rule gives them."""
    return _write(root, fixture_tables(), kinds)


def _write(root: Path, tables: dict[str, pd.DataFrame], kinds: set[str] | None) -> dict[str, list[str]]:
    """Write the tables of `kinds` (all when None) and the dataset sidecar; the files by kind."""
    files: dict[str, list[str]] = {}
    meta = root / "data" / "mnist_binary.json"
    write_json(
        {
            "dataset": "mnist_binary",
            "description": "tiny",
            "n_train": 100,
            "n_val": 10,
            "n_test": 20,
            "n_features": 5,
            "shapes": {"x": [100, 5]},
        },
        meta,
    )
    if kinds is None or "dataset_meta" in kinds:
        files["dataset_meta"] = [str(meta)]
    for kind, frame in tables.items():
        if kinds is not None and kind not in kinds:
            continue
        if "experiment" in frame and len(frame):
            files[kind] = []
            for name, g in frame.groupby("experiment"):
                path = root / str(name) / f"{kind}.parquet"
                write_table(g.reset_index(drop=True), path)
                files[kind].append(str(path))
        else:
            path = root / f"{kind}.parquet"
            write_table(frame, path)
            files[kind] = [str(path)]
    return files


# How the page words each of the three verdicts (docs/methods.md, section 10), by the note's CSS class.
VERDICT_WORDS = {
    "agrees": "Agrees with the study: ",
    "differs": "Differs from the study: ",
    "cannot_tell": "Cannot tell at this size: ",
}
