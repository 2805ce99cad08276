"""Small tables of every kind the report reads, in the stages' formats, for the report tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

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
    "dp": {"epochs": 4, "repeats": 5},
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


def other_stage_tables(rng: np.random.Generator) -> dict[str, pd.DataFrame]:
    """Tables of the membership-inference, DP-SGD, output-perturbation and ledger stages."""
    fpr = np.linspace(0, 1, 21)
    epochs = pd.DataFrame(
        [
            {"algorithm": a, "epoch": e, "test_accuracy": acc, "p_err": p, "n_repeats": 5}
            | {
                "test_accuracy_ci_low": acc - 0.01,
                "test_accuracy_ci_high": acc + 0.01,
                "p_err_ci_low": p - 0.01,
                "p_err_ci_high": p + 0.01,
            }
            for a, shift in (("sgd", 0.0), ("dp_sgd", 0.1))
            for e in range(1, 5)
            for acc, p in [(0.6 + 0.05 * e - shift, 0.45 - 0.02 * e + shift)]
        ]
    )
    return {
        "mia_summary": pd.DataFrame(
            {
                "T": [2000, 4000],
                "accuracy_known": [0.53, 0.6],
                "accuracy_hidden": [0.52, 0.59],
                "epsilon_known": [0.12, 0.4],
                "epsilon_hidden": [0.08, 0.36],
                "p_value": [0.01, 0.2],
                "n_models": [40, 40],
                "loss_ratio": [1.1, 1.8],
            }
        ),
        "mia_roc": pd.concat(
            [
                pd.DataFrame({"attack": a, "fpr": fpr, "tpr": np.sqrt(fpr) ** p, "auc": 0.6})
                for a, p in (("threshold", 1), ("calibrated", 0.7))
            ]
        ),
        "dp_epochs": epochs,
        "dp_epsilon_sweep": pd.DataFrame(
            {"epsilon": [np.inf, 3.0, 1.0], "test_accuracy": [0.99, 0.97, 0.93], "mi_advantage": [0.1, 0.04, 0.02]}
        ),
        "dp_clipping_sweep": pd.DataFrame(
            {"max_grad_norm": [0.1, 1.0], "test_accuracy": [0.9, 0.97], "mi_advantage": [0.03, 0.04]}
        ),
        "outliers": pd.DataFrame(
            {"algorithm": ["sgd", "dp_sgd"], "members": [12, 30], "non_members": [8, 4], "n_repeats": 10}
        ),
        "output_perturbation": pd.DataFrame(
            [
                {"epsilon": e, "variant": v, "test_accuracy": 0.9 - 0.1 / e + rng.normal(0, 0.01)}
                for e in (0.5, 1, 2)
                for v in ("bolt-on", "augmented")
                for _ in range(3)
            ]
        ),
        "repeated_queries": pd.DataFrame(
            [
                {"k": k, "mode": m, "error": (1 / np.sqrt(k)) if m == "fresh" else 1.0}
                for k in (1, 4, 16)
                for m in ("fresh", "fixed")
            ]
        ),
        "ledger": pd.DataFrame(
            {
                "dataset": ["a", "a", "b"],
                "run": ["r1", "r2", "r3"],
                "epsilon": [1.0, 2.0, 0.5],
                "delta": 1e-5,
                "cumulative_epsilon": [1.0, 3.0, 0.5],
            }
        ),
    }


def write_fixtures(root: Path, kinds: set[str] | None = None) -> dict[str, list[str]]:
    """Write every table (or only `kinds`) under `root`; return the files by kind, as the report rule gives them."""
    rng = np.random.default_rng(0)
    tables = intrinsic_tables(rng) | other_stage_tables(rng)
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
        if "experiment" in frame:
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
