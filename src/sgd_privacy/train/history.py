"""Reading shard histories back: metrics per run, weights at a step, convergence tables."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import TrainingError
from .convergence import convergence_index, experiment_T

log = logging.getLogger(__name__)

RUN_KEYS = ["experiment", "seed", "replace_index", "init"]
# per-run metrics the trainer logs (here, not in the trainer, so reading histories needs no torch)
METRICS = ("train_loss", "train_acc", "val_loss", "val_acc")


def read_histories(paths: Sequence[str], with_weights: bool = False) -> pd.DataFrame:
    """All shards' rows (without weights unless asked), sorted by run and step."""
    columns = RUN_KEYS + ["t"] + list(METRICS) + ["diverged"] + (["weights"] if with_weights else [])
    frame = pa.concat_tables([pq.read_table(p, columns=columns) for p in paths]).to_pandas()
    for col in ("experiment", "init"):
        frame[col] = frame[col].astype(str)
    return frame.sort_values(RUN_KEYS[1:] + ["t"], kind="stable").reset_index(drop=True)


def read_weights(
    paths: Sequence[str], t: int | None = None, dtype: type = np.float64
) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows with kept weights (run identity, t, diverged) and their weights (rows x params, in `dtype`;
    stored as float32), at step t or at every step."""
    filters = None if t is None else [("t", "==", t)]
    table = pa.concat_tables(
        [pq.read_table(p, columns=RUN_KEYS + ["t", "diverged", "weights"], filters=filters) for p in paths]
    )
    table = table.filter(pc.is_valid(table["weights"]))
    if table.num_rows == 0:
        where = "at any step" if t is None else f"at step {t}"
        raise TrainingError(f"no weights were kept {where}; add the step to log_weights_at or choose a logged step")
    n_params = table.schema.field("weights").type.list_size
    flat = table["weights"].combine_chunks().flatten().to_numpy(zero_copy_only=False)
    frame = table.drop_columns(["weights"]).to_pandas()
    for col in ("experiment", "init"):
        frame[col] = frame[col].astype(str)
    return frame, flat.reshape(-1, n_params).astype(dtype, copy=False)


def weights_at(paths: Sequence[str], t: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Run identities (with diverged flag) and their weights (runs x params, float64) at step t."""
    frame, weights = read_weights(paths, t)
    return frame.drop(columns=["t"]), weights


def convergence_tables(
    history: pd.DataFrame, patience: int = 3, T: int | None = None, convergence_rule: str = "previous"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-run convergence step and final metrics, and the experiment's T (config override, or the
    median over converged runs; runs that never converged are counted, not used)."""
    steps = np.sort(history["t"].unique())
    wide = history.pivot(index=RUN_KEYS, columns="t", values="val_loss").reindex(columns=steps)
    index, converged = convergence_index(wide.to_numpy(), patience, convergence_rule)
    runs = wide.index.to_frame(index=False)
    runs["T_run"] = steps[index]
    runs["converged"] = converged
    last = history[history["t"] == steps[-1]].set_index(RUN_KEYS)
    final = last[list(METRICS) + ["diverged"]].reindex(wide.index).reset_index(drop=True)
    runs = pd.concat([runs, final.add_prefix("final_").rename(columns={"final_diverged": "diverged"})], axis=1)
    if T is not None and T not in set(steps.tolist()):
        raise TrainingError(
            f"configured T = {T} is not a logged step; logged steps run {steps[0]}..{steps[-1]} "
            f"every {steps[1] - steps[0] if len(steps) > 1 else 0} (plus log_weights_at)"
        )
    median_args = (
        runs["T_run"].to_numpy(),
        (runs["init"] == "variable").to_numpy(),
        runs["diverged"].to_numpy(),
        runs["converged"].to_numpy(),
    )
    median_T = experiment_T(*median_args)
    if T is not None:
        chosen, source = int(T), "config"
    elif median_T is not None:
        chosen, source = median_T, "median over converged variable-init runs"
    else:
        chosen, source = int(steps[-1]), "last logged step: no run converged (train longer or set T)"
        log.warning("%s: no run converged; T is the last logged step %d", history["experiment"].iloc[0], chosen)
    counted = ~runs["diverged"].to_numpy()
    at_T = history[(history["t"] == chosen) & ~history["diverged"]]
    summary = pd.DataFrame(
        [
            {
                "experiment": runs["experiment"].iloc[0],
                "T": chosen,
                "T_source": source,
                "T_median": -1 if median_T is None else median_T,
                "convergence_rule": convergence_rule,
                "n_runs": len(runs),
                "n_diverged": int(runs["diverged"].sum()),
                "n_converged": int(runs["converged"].sum()),
                "n_not_converged": int((counted & ~runs["converged"].to_numpy()).sum()),
                "val_acc_at_T": float(at_T["val_acc"].mean()),
                "train_loss_at_T": float(at_T["train_loss"].mean()),
                "val_loss_at_T": float(at_T["val_loss"].mean()),
                "last_step": int(steps[-1]),
            }
        ]
    )
    return runs, summary


def device_record(metadata: dict[bytes, bytes] | None) -> dict[str, str]:
    """The device record (device, GPU, CUDA, cuDNN, torch) a shard's Parquet metadata carries ({} for older shards)."""
    raw = (metadata or {}).get(b"device")
    return json.loads(raw) if raw else {}


def shard_devices(paths: Sequence[str]) -> dict[str, int]:
    """How many shards each device record trained, read from the files' metadata only (no table is loaded)."""
    counts: dict[str, int] = {}
    for path in paths:
        rec = device_record(pq.read_schema(path).metadata)
        key = (
            f"{rec['device']} (GPU {rec['gpu']}, CUDA {rec['cuda']}, cuDNN {rec['cudnn']}, torch {rec['torch']})"
            if rec
            else "not recorded (a shard written before device records)"
        )
        counts[key] = counts.get(key, 0) + 1
    return counts
