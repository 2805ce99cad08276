"""Membership-inference jobs: per-example losses of trained runs, the Yeom tables, LiRA shadow training.

Members of a run are the first `n_members` rows of its own training set D_i, non-members the
first `n_nonmembers` test rows (the numbers used are capped so that both sets have the same
size, at most half of D_i and at most the test set), and the threshold examples are the
following `n_threshold` rows of D_i (all the rest when null).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..train.history import RUN_KEYS, read_histories, read_weights
from .bounds import TRIAL_SEED, pooled_score, trial_bound, unit_bound
from .lira import VARIANTS, membership, subset_rows, target_scores
from .yeom import SETTINGS, attack_table, partner_rows

LOSS_COLUMNS = ["member_loss", "nonmember_loss"]
YEOM_BOUND_NOTE = (
    "epsilon_lower_bound: one member and one non-member example drawn at random from one run of each evaluation "
    "seed, independent trials given the calibration runs; it bounds epsilon when members and non-members are "
    "exchangeable (a random split of one distribution). epsilon_score_pooled counts every (run, example) pair of "
    "the evaluation runs, which share seeds and examples: a score without a confidence level"
)
LIRA_BOUND_NOTE = (
    "epsilon_lower_bound: one target run per evaluation seed on its own random subset, shadows and threshold from "
    "calibration seeds on other subsets, one member and one non-member example drawn at random: independent "
    "trials; seed known bounds the release of a model with its seed. epsilon_score_pooled counts every "
    "(target, example) pair of the evaluation seeds, which share shadows, seeds and examples: a score"
)


def fixed_lists(matrix: np.ndarray) -> pa.FixedSizeListArray:
    """Rows of a 2-D array as a fixed-size list column (the array's dtype)."""
    return pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(matrix).reshape(-1)), matrix.shape[1])


def list_matrix(table: pa.Table, column: str) -> np.ndarray:
    """A fixed-size list column back as a 2-D array."""
    col = table[column].combine_chunks()
    return col.flatten().to_numpy(zero_copy_only=False).reshape(len(col), col.type.list_size)


def split_sizes(n_train: int, n_test: int, settings: dict) -> tuple[int, int]:
    """(members = non-members, threshold examples) for a base set of n_train rows (D_i has n_train - 1)."""
    n = min(settings["n_members"], settings["n_nonmembers"], (n_train - 1) // 2, n_test)
    rest = n_train - 1 - n
    n_thr = rest if settings["n_threshold"] is None else min(settings["n_threshold"], rest)
    if n < 1 or n_thr < 1:
        raise ValueError(
            f"a training set of {n_train - 1} rows and {n_test} test rows leave no members or threshold rows"
        )
    return n, n_thr


def shard_training_slice(path: str) -> dict:
    """The training settings a shard was trained with (stored in its Parquet metadata)."""
    meta = pq.read_schema(path).metadata or {}
    if b"training" not in meta:
        raise ValueError(f"{path}: no training settings in the file's metadata; retrain the shard")
    return json.loads(meta[b"training"])


def shard_losses(
    shard_path: str,
    arrays: dict[str, np.ndarray],
    steps: Sequence[int],
    settings: dict,
    device: str = "auto",
    budget_mb: int = 1024,
    progress: Callable[[str], None] | None = None,
) -> pa.Table:
    """Per run and step of one shard: its metrics, the mean loss on its threshold rows, and the per-example
    losses (float32) of its members and of the non-members, from the weights kept at `steps`."""
    # the training stack (torch) only here and in lira_shadow_table: the attacks on stored tables need none
    import torch

    from ..data.neighbours import neighbour_rows
    from ..train.shard import DTYPES, model_for, pick_device
    from .outputs import example_outputs

    slice_ = shard_training_slice(shard_path)
    dev, dtype = pick_device(device), DTYPES[slice_["dtype"]]
    model = model_for(slice_, arrays)
    n_train = len(arrays["x_train"])
    n, n_thr = split_sizes(n_train, len(arrays["x_test"]), settings)
    history = read_histories([shard_path]).set_index(RUN_KEYS + ["t"])
    tables = []
    for t in steps:
        runs, weights = read_weights([shard_path], int(t), np.float32)
        # Base rows 0..n + n_thr cover positions 0..n + n_thr - 1 of every D_i (row i moves to row 0).
        base = example_outputs(
            model,
            weights,
            arrays["x_train"][: n + n_thr + 1],
            arrays["y_train"][: n + n_thr + 1],
            dev,
            dtype,
            budget_mb,
        )[0]
        positions = torch.arange(n + n_thr).expand(len(runs), -1)
        rows = neighbour_rows(positions, torch.tensor(runs["replace_index"].to_numpy())).numpy()
        own = np.take_along_axis(base, rows, axis=1)
        nonmember = example_outputs(model, weights, arrays["x_test"][:n], arrays["y_test"][:n], dev, dtype, budget_mb)[
            0
        ]
        metrics = history.loc[[(*k, int(t)) for k in runs[RUN_KEYS].itertuples(index=False)]]
        columns = {
            **{k: pa.array(runs[k].to_numpy()) for k in RUN_KEYS + ["t", "diverged"]},
            "train_loss": pa.array(metrics["train_loss"].to_numpy()),
            "val_loss": pa.array(metrics["val_loss"].to_numpy()),
            "threshold_loss": pa.array(own[:, n:].astype(np.float64).mean(axis=1)),
            "member_loss": fixed_lists(own[:, :n]),
            "nonmember_loss": fixed_lists(nonmember),
        }
        tables.append(pa.table(columns))
        if progress:
            progress(f"step {t}: losses of {len(runs)} runs on {n} members, {n} non-members, {n_thr} threshold rows")
    return pa.concat_tables(tables)


def read_losses(paths: Sequence[str]) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """Run identities and metrics, member losses (R, n), non-member losses (R, n), threshold losses (R,)
    of the non-diverged runs in the loss tables, sorted by run and step."""
    table = pa.concat_tables([pq.read_table(p) for p in paths])
    order = pc.sort_indices(table, [(k, "ascending") for k in ["seed", "replace_index", "init", "t"]])
    table = table.take(order)
    table = table.filter(pc.invert(table["diverged"]))
    frame = table.drop_columns(LOSS_COLUMNS).to_pandas()
    for col in ("experiment", "init"):
        frame[col] = frame[col].astype(str)
    return (
        frame,
        list_matrix(table, "member_loss"),
        list_matrix(table, "nonmember_loss"),
        frame["threshold_loss"].to_numpy(),
    )


def yeom_tables(paths: Sequence[str]) -> pd.DataFrame:
    """The per-run attack table (seed known and hidden) of an experiment's loss tables."""
    frame, member, nonmember, threshold = read_losses(paths)
    return attack_table(frame, member, nonmember, threshold)


def calibration_seeds(seeds: np.ndarray) -> np.ndarray:
    """The seeds whose runs choose thresholds: the first half of the sorted distinct seeds."""
    distinct = np.unique(seeds)
    return distinct[: len(distinct) // 2]


def calibration_partners(frame: pd.DataFrame, cal_idx: np.ndarray) -> np.ndarray:
    """For each calibration run (rows `cal_idx` of `frame`), the row of its seed-hidden threshold model among
    the calibration runs alone; the run itself where it has none (a single calibration seed)."""
    pos = partner_rows(frame.loc[cal_idx])
    return np.where(pos >= 0, cal_idx[np.maximum(pos, 0)], cal_idx)


def yeom_unit_runs(
    frame: pd.DataFrame, eval_idx: np.ndarray, cal_idx: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One evaluated run per evaluation seed, drawn at random among the seed's runs in the group, and the
    calibration run with the same replace index that serves as its seed-hidden threshold model (the
    calibration seeds taken in turn); seeds whose replace indices have no calibration run are dropped."""
    seeds = frame["seed"].to_numpy()
    replace = frame["replace_index"].to_numpy()
    runs, partners = [], []
    for u, s in enumerate(np.unique(seeds[eval_idx])):
        own = eval_idx[seeds[eval_idx] == s]
        run = int(own[rng.integers(0, len(own))])
        same = cal_idx[replace[cal_idx] == replace[run]]
        if len(same):
            runs.append(run)
            partners.append(int(same[np.argsort(seeds[same], kind="stable")][u % len(same)]))
    return np.array(runs, dtype=np.int64), np.array(partners, dtype=np.int64)


def yeom_bounds(paths: Sequence[str], settings: dict) -> pd.DataFrame:
    """Epsilon lower bounds of the loss-threshold attack per experiment, step and init mode, seed known and
    hidden: the offset c of the rule "member if loss <= tau - c" is chosen on the runs of the calibration
    seeds; `epsilon_lower_bound` counts one member and one non-member example of one run per evaluation
    seed (independent trials, `bounds.unit_bound`), `epsilon_score_pooled` every (run, example) pair of
    the evaluation runs (not independent: a score)."""
    frame, member, nonmember, threshold = read_losses(paths)
    seeds = frame["seed"].to_numpy()
    cal = np.isin(seeds, calibration_seeds(seeds))
    partner = partner_rows(frame)
    args = (settings["delta"], settings["confidence"], settings["bound_candidates"])
    rows = []
    for (experiment, _t, init), g in frame.groupby(["experiment", "t", "init"], sort=True):
        idx = g.index.to_numpy()
        c, e = idx[cal[idx]], idx[~cal[idx]]
        if not len(c) or not len(e):
            continue
        units, unit_partners = yeom_unit_runs(frame, e, c, np.random.default_rng([TRIAL_SEED, 1]))
        if not len(units):
            continue
        cal_partner = calibration_partners(frame, c)
        paired = idx[partner[idx] >= 0]
        pc_, pe = paired[cal[paired]], paired[~cal[paired]]
        for setting in SETTINGS:
            known = setting == "known"
            tau_c = threshold[c] if known else threshold[cal_partner]
            tau_u = threshold[units] if known else threshold[unit_partners]
            bound = unit_bound(
                (tau_c[:, None] - member[c], tau_c[:, None] - nonmember[c]),
                tau_u[:, None] - member[units],
                tau_u[:, None] - nonmember[units],
                *args,
            )
            tau = threshold if known else threshold[np.maximum(partner, 0)]
            mem_scores, non_scores = tau[:, None] - member, tau[:, None] - nonmember
            pooled = (
                pooled_score((mem_scores[pc_], non_scores[pc_]), (mem_scores[pe], non_scores[pe]), *args)
                if len(pc_) and len(pe)
                else {"epsilon_score_pooled": np.nan}
            )
            rows.append(
                {
                    "experiment": experiment,
                    "t": int(g["t"].iloc[0]),
                    "init": init,
                    "attack": "loss_threshold",
                    "setting": setting,
                    "n_calibration_runs": len(c),
                    "n_evaluation_runs": len(e),
                    **bound,
                    **pooled,
                    "note": YEOM_BOUND_NOTE,
                }
            )
    return pd.DataFrame(rows)


def lira_shadow_table(
    slice_: dict,
    arrays: dict[str, np.ndarray],
    seed: int,
    lira: dict,
    device: str = "auto",
    budget_mb: int = 2048,
    progress: Callable[[str], None] | None = None,
    checkpoint: str | Path | None = None,
    checkpoint_s: float | None = None,
) -> pa.Table:
    """Train one seed's run on each LiRA subset (exact halves of the first `pool_size` training rows) and
    return, per run, the pool's membership, logit-scaled confidences and losses at the end of training.
    With a `checkpoint` path, training resumes from a checkpoint made there under the same settings (one
    made under others is discarded) and saves one every `checkpoint_s` seconds; the caller deletes it."""
    from ..train.batched import DeviceData, Runs, Schedule, train_many
    from ..train.checkpoint import digest, fingerprint, grid_resume
    from ..train.models import CNN
    from ..train.shard import DTYPES, model_for, pick_device
    from .outputs import example_outputs

    dev, dtype = pick_device(device), DTYPES[slice_["dtype"]]
    model = model_for(slice_, arrays)
    pool, b = lira["pool_size"], slice_["batch_size"]
    if pool > len(arrays["x_train"]) or pool // 2 < b:
        raise ValueError(
            f"mia.lira.pool_size = {pool} must lie between twice the batch size ({2 * b}) and the "
            f"{len(arrays['x_train'])} training rows of {slice_['dataset']}"
        )
    rows = subset_rows(lira["subset_seed"], range(lira["shadows"]), pool)
    k = len(rows)
    runs = Runs(np.full(k, seed, dtype=np.int64), np.ones(k, dtype=np.int64), np.zeros(k, dtype=bool), rows=rows)
    total = lira["epochs"] * (rows.shape[1] // b)
    schedule = Schedule(slice_["lr"], b, lira["epochs"], total, (total,))
    x, y = arrays["x_train"][:pool], arrays["y_train"][:pool]
    data = DeviceData.from_arrays({**arrays, "x_train": x, "y_train": y}, dev, dtype)
    resume, saver = None, None
    if checkpoint is not None:
        record = {"job": "lira_shadows", "training": slice_, "seed": seed, "lira": lira, "device": dev.type}
        record |= {"conv": model.path_for(dev) if isinstance(model, CNN) else "", "data": digest(x, y)}
        resume, saver = grid_resume(checkpoint, fingerprint(record), checkpoint_s, progress)
    result = train_many(model, data, runs, schedule, None, budget_mb, progress=progress, resume=resume, on_step=saver)
    loss, confidence = example_outputs(model, result.weights[:, -1], x, y, dev, dtype, budget_mb)
    return pa.table(
        {
            "seed": pa.array(runs.seeds),
            "subset": pa.array(np.arange(k)),
            "diverged": pa.array(result.diverged | ~np.isfinite(confidence).all(axis=1)),
            "member": fixed_lists(membership(rows, pool)),
            "confidence": fixed_lists(confidence),
            "loss": fixed_lists(loss),
        }
    )


def read_shadows(paths: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted seeds (S,), confidences (S, K, n) and subset membership (K, n) of the LiRA shadow tables."""
    table = pa.concat_tables([pq.read_table(p) for p in paths])
    frame = table.select(["seed", "subset", "diverged"]).to_pandas()
    if frame["diverged"].any():
        bad = frame.loc[frame["diverged"], ["seed", "subset"]].to_dict("records")
        raise ValueError(f"LiRA shadow runs diverged (non-finite weights or confidences): {bad}; lower the lr")
    seeds, subsets = np.unique(frame["seed"]), np.unique(frame["subset"])
    order = np.lexsort((frame["subset"].to_numpy(), frame["seed"].to_numpy()))
    confidence = list_matrix(table, "confidence")[order].reshape(len(seeds), len(subsets), -1)
    member = list_matrix(table, "member")[order].reshape(len(seeds), len(subsets), -1)[0]
    return seeds, confidence, member


def lira_design(
    n_seeds: int, n_subsets: int, rng: np.random.Generator
) -> tuple[list[int], list[int], list[int], list[int]]:
    """Seed slots that calibrate (the first half) and that are evaluated (the rest), one distinct evaluation
    subset per evaluated slot (drawn at random), and the other subsets (calibration targets and shadows)."""
    cal = list(range(n_seeds // 2))
    evaluated = list(range(n_seeds // 2, n_seeds))
    if n_seeds < 2 or n_subsets < len(evaluated) + 2:
        raise ValueError(
            f"the LiRA bound needs at least 2 seeds and {len(evaluated) + 2} subsets (one evaluation subset per "
            f"evaluated seed and two for shadows), got {n_seeds} seeds and {n_subsets} subsets; raise "
            "mia.lira.seeds or mia.lira.shadows"
        )
    chosen = rng.choice(n_subsets, size=len(evaluated), replace=False)
    rest = [k for k in range(n_subsets) if k not in set(chosen.tolist())]
    return cal, evaluated, [int(k) for k in chosen], rest


def lira_unit_scores(
    confidence: np.ndarray, member: np.ndarray, fixed_variance: bool, rng: np.random.Generator
) -> dict[tuple[str, str], dict[str, np.ndarray]]:
    """Per (variant, setting): calibration member and non-member scores, and the scores (U,) of one member
    and one non-member example, drawn at random, of the one target run of each evaluated seed. Every shadow and calibration run is a run of a
    calibration seed on a subset other than the evaluated ones, so the evaluated targets are independent
    given them (docs/methods.md, section 6)."""
    cal, evaluated, eval_subsets, rest = lira_design(confidence.shape[0], confidence.shape[1], rng)
    out: dict[tuple[str, str], dict[str, list]] = {
        (v, s): {"cal_m": [], "cal_n": [], "m": [], "n": []} for v in VARIANTS for s in SETTINGS
    }
    for c in cal:
        others = [s for s in cal if s != c] or [c]  # a single calibration seed: hidden calibrated as known
        for k in rest:
            shadows = np.array([j for j in rest if j != k])
            slots = {
                "known": np.full(len(shadows), c),
                "hidden": np.array([others[j % len(others)] for j in range(len(shadows))]),
            }
            for setting, seed_slots in slots.items():
                scored = target_scores(confidence, member, c, k, shadows, seed_slots, fixed_variance)
                for v in VARIANTS:
                    out[(v, setting)]["cal_m"].append(scored[v][member[k]])
                    out[(v, setting)]["cal_n"].append(scored[v][~member[k]])
    shadows = np.array(rest)
    picks = []
    for i, k in zip(evaluated, eval_subsets, strict=True):
        picks.append((rng.choice(np.flatnonzero(member[k])), rng.choice(np.flatnonzero(~member[k]))))
        slots = {
            "known": np.full(len(shadows), i),
            "hidden": np.array([cal[j % len(cal)] for j in range(len(shadows))]),
        }
        for setting, seed_slots in slots.items():
            scored = target_scores(confidence, member, i, k, shadows, seed_slots, fixed_variance)
            for v in VARIANTS:
                out[(v, setting)]["m"].append(scored[v][picks[-1][0]])
                out[(v, setting)]["n"].append(scored[v][picks[-1][1]])
    return {
        key: {
            "cal_m": np.concatenate(d["cal_m"]),
            "cal_n": np.concatenate(d["cal_n"]),
            "m": np.array(d["m"]),
            "n": np.array(d["n"]),
        }
        for key, d in out.items()
    }


def lira_bounds(
    scores: pd.DataFrame, settings: dict, shadows: tuple[np.ndarray, np.ndarray, np.ndarray], fixed_variance: bool
) -> pd.DataFrame:
    """Epsilon lower bounds of each LiRA variant and setting. `epsilon_lower_bound`: one target run per
    evaluated seed (its own subset, shadows and threshold from calibration seeds on other subsets), one
    member and one non-member example drawn at random from it; `epsilon_score_pooled`: the threshold chosen
    on the calibration seeds' targets in `scores` and every (target, example) pair of the others counted
    (not independent: a score). `shadows` is (seeds, confidences, membership) as `read_shadows` gives them."""
    args = (settings["delta"], settings["confidence"], settings["bound_candidates"])
    _, confidence, member = shadows
    units = lira_unit_scores(confidence, member, fixed_variance, np.random.default_rng([TRIAL_SEED, 2]))
    cal = np.isin(scores["target_seed"].to_numpy(), calibration_seeds(scores["target_seed"].to_numpy()))
    rows = []
    for variant in VARIANTS:
        for setting in SETTINGS:
            pick = (scores["setting"] == setting).to_numpy()
            s, m = scores[variant].to_numpy(), scores["member"].to_numpy()

            def part(mask: np.ndarray, s: np.ndarray = s, m: np.ndarray = m) -> tuple[np.ndarray, np.ndarray]:
                return s[mask & m], s[mask & ~m]

            u = units[(variant, setting)]
            bound = trial_bound((u["cal_m"], u["cal_n"]), u["m"], u["n"], *args)
            pooled = pooled_score(part(pick & cal), part(pick & ~cal), *args)
            rows.append({"attack": f"lira_{variant}", "setting": setting, **bound, **pooled, "note": LIRA_BOUND_NOTE})
    return pd.DataFrame(rows)
